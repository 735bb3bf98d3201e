"""AML fixes: stored as received, then applied as the location of that number's call.

An AML fix is not a report of its own. It is kept in `location_fixes` (once per delivery: a retried
SMS or post is the same row) and handed to the caller's call report through `Intake.update_report`,
so the report and its incident walk the road again with the new place. `match.better_location`
decides what the report shows: a location a call-taker confirmed is never replaced.

Which call: the newest call report from the same E.164 number received in the last
`CALL_WINDOW`. A fix that finds no call waits; when the call report is created (the AMI bridge and
the Twilio voice webhook call `apply_pending`), fixes for that number received in the
`PENDING_WINDOW` before it are applied. Both sides store first and look second, so a fix and a call
arriving at the same moment always find each other (at worst the fix is applied twice, which
changes nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from intake.channels import aml
from intake.core.model import Location, LocationSource
from intake.core.phone import normalise_phone
from intake.pipeline import IngestResult, Intake
from intake.types import Inbound, PayloadError

log = logging.getLogger(__name__)

#: A fix belongs to the newest call from its number received this long before it.
CALL_WINDOW = timedelta(minutes=60)
#: A fix that came before its call is applied when the call appears this soon after it.
PENDING_WINDOW = timedelta(minutes=2)
ACTOR = "aml"


@dataclass(frozen=True, slots=True)
class FixIn:
    """A fix as a door hands it over: verified, parsed, the number in E.164."""

    channel: str  # 'aml_sms' | 'aml_https'
    channel_ref: str  # Twilio MessageSid, or the digest of the HTTPS body
    phone: str  # E.164
    fix: aml.AmlFix
    received_at: datetime
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FixOutcome:
    fix_id: int | None
    status: str  # 'applied' | 'waiting' (no call yet) | 'already_applied' | 'no_location' (nothing stored)
    duplicate: bool = False  # this delivery was stored before
    report_id: int | None = None
    incident_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"fix_id": self.fix_id, "status": self.status, "duplicate": self.duplicate,
                "report_id": self.report_id, "incident_id": self.incident_id}


def e164(raw: str, region: str, field: str) -> str:
    """The number a fix is filed under; PayloadError when it cannot be matched to any call."""
    phone = normalise_phone(raw, region)
    if phone.e164 is None:
        raise PayloadError(f"{field} {raw!r} is not a phone number a call can be matched to", field=field)
    return phone.e164


def fix_location(row: dict[str, Any]) -> Location:
    """A stored fix as a location (source AML)."""
    return Location(row["lat"], row["lon"], row["accuracy_m"], LocationSource.AML, observed_at=row["observed_at"])


async def receive(intake: Intake, fix_in: FixIn) -> FixOutcome:
    """Store a fix (idempotent on channel + reference), then apply it to its number's call if there is one."""
    fix = fix_in.fix
    async with intake.store.transaction() as repo:
        fix_id = await repo.insert_location_fix({
            "channel": fix_in.channel, "channel_ref": fix_in.channel_ref, "phone": fix_in.phone,
            "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m, "source": fix.source.value,
            "observed_at": fix.observed_at, "received_at": fix_in.received_at, "raw": fix_in.raw,
        })
        row = await repo.location_fix_by_ref(fix_in.channel, fix_in.channel_ref)
    assert row is not None  # just inserted, or there before
    duplicate = fix_id is None
    if row["report_id"] is not None:
        return FixOutcome(row["id"], "already_applied", duplicate, row["report_id"])
    async with intake.store.read() as repo:
        call = await repo.latest_call_report(row["phone"], row["received_at"] - CALL_WINDOW)
    if call is None:
        log.info("AML fix %s for %s waits for its call", row["id"], row["phone"])
        return FixOutcome(row["id"], "waiting", duplicate)
    result = await _apply(intake, row, call["id"])
    return FixOutcome(row["id"], "applied", duplicate, call["id"], result.incident_id)


async def apply_pending(intake: Intake, report_id: int) -> IngestResult | None:
    """A call report was just created: apply the fixes for its number that came shortly before it."""
    async with intake.store.read() as repo:
        report = await repo.report(report_id)
        if report is None or report["channel"] != "call" or not report["phone"]:
            return None
        rows = await repo.pending_location_fixes(report["phone"], report["received_at"] - PENDING_WINDOW)
    result = None
    for row in rows:  # oldest first; better_location keeps the best of them
        result = await _apply(intake, row, report_id)
    return result


async def receive_https(intake: Intake, key: str, inbound: Inbound) -> FixOutcome:
    """The AML HTTPS door: verify the HMAC, parse the ELS form, store and apply the fix."""
    aml.verify_https(inbound, key)
    message = aml.parse_https(inbound.body)
    phone = e164(message.device_number, intake.settings.default_region, "device_number")
    if message.fix is None:
        return FixOutcome(None, "no_location")
    return await receive(intake, FixIn("aml_https", aml.https_ref(inbound.body), phone, message.fix,
                                       inbound.received_at, dict(message.fields)))


async def _apply(intake: Intake, row: dict[str, Any], report_id: int) -> IngestResult:
    # Location first, mark second: a crash in between leaves the fix pending, and a retry applies it again.
    result = await intake.update_report(report_id, location=fix_location(row), actor=ACTOR, raw_patch={"aml": {
        "fix_id": row["id"], "channel": row["channel"], "method": row["source"], "lat": row["lat"],
        "lon": row["lon"], "accuracy_m": row["accuracy_m"],
        "observed_at": row["observed_at"].isoformat() if row["observed_at"] else None,
        "received_at": row["received_at"].isoformat(),
    }})
    async with intake.store.transaction() as repo:
        await repo.mark_location_fix_applied(row["id"], report_id, intake.clock())
    log.info("AML fix %s applied to call report %s (incident %s)", row["id"], report_id, result.incident_id)
    return result
