"""The screen-pop: what a call-taker sees the moment a call rings.

Published on the stream (topic `call`, kind `call.ringing`) right after the
call's report is stored: the caller's number, the line dialled, the caller's
earlier reports, the registered facility for that number, the last known
location for that number (its newest AML fix, unless a located report of that
number changed after the fix came), and the active incidents near it.
"""

from __future__ import annotations

from typing import Any

from intake import locfix
from intake.core import geo
from intake.core.phone import normalise_phone
from intake.pipeline import Intake, incident_payload, location_dict, report_payload
from intake.store.repo import row_location

NEARBY_M = 1000.0
EARLIER = 10


async def build(intake: Intake, *, caller_number: str, line: str, report_id: int | None,
                incident_id: int | None, call: dict[str, Any]) -> dict[str, Any]:
    phone = normalise_phone(caller_number, intake.settings.default_region) if caller_number else None
    async with intake.store.read() as repo:
        earlier_rows = [r for r in await repo.reports_of_reporter(phone.key, EARLIER + 1) if r["id"] != report_id] \
            if phone else []
        facility = await repo.facility_by_phone(phone.e164) if phone and phone.e164 else None
        located = next((r for r in earlier_rows if row_location(r) is not None), None)
        last = row_location(located) if located is not None else None
        # The phone's own AML fix is preferred, unless a report's location changed after it arrived
        # (a call-taker confirmed the place, or the caller reported again from somewhere else).
        fix = await repo.latest_location_fix(phone.e164) if phone and phone.e164 else None
        if fix is not None and (located is None or fix["received_at"] >= located["updated_at"]):
            last = locfix.fix_location(fix)
        nearby: list[dict[str, Any]] = []
        if last is not None:
            rows = await repo.list_incidents(statuses=["open", "acknowledged"],
                                             cells=geo.disk_cells(last.lat, last.lon, NEARBY_M), limit=50)
            for row in rows:
                if row["lat"] is None:
                    continue
                d = geo.distance_m(last.lat, last.lon, row["lat"], row["lon"])
                if d <= NEARBY_M:
                    nearby.append({**incident_payload(row), "distance_m": round(d)})
            nearby.sort(key=lambda i: i["distance_m"])
    return {
        "call": call,
        "caller": {"raw": caller_number, "e164": phone.e164 if phone else None,
                   "valid": phone.valid if phone else False},
        "line": line,
        "report_id": report_id,
        "incident_id": incident_id,
        "earlier_reports": [report_payload(r) for r in earlier_rows[:EARLIER]],
        "facility": {k: facility[k] for k in ("id", "name", "address", "lat", "lon", "contact_name",
                                              "contact_phone")} if facility else None,
        "last_location": location_dict(last),
        "nearby_incidents": nearby,
    }


async def publish(intake: Intake, payload: dict[str, Any]) -> None:
    await intake.publish([{"topic": "call", "kind": "call.ringing", "incident_id": payload["incident_id"],
                           "report_id": payload["report_id"], "payload": payload}])
