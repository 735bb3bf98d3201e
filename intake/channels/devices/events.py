"""What every device door does with one event, whatever the wire (SIA DC-09, MQTT, HTTP).

An event's code (``CID:1110``, ``SIA:FA``, ``CAM:smoke``; see core/data/device_codes.toml) decides:

- alarm      → a report through ingest, located at the device's facility;
- restoral   → the device's most recent alarm report for that zone gets ``raw.restored_at``
               (update_report), no new report;
- test, heartbeat, trouble, other → logged: the device's ``last_seen_at`` moves, nothing is reported.

Every event, reported or not, counts as a sign of life for supervision: `check_supervision`
flags devices that promised heartbeats (``heartbeat_s``) and went quiet, with an outbox row
``device.silent`` for the consoles; the next message clears the flag (``device.resumed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from intake.core.classify import DeviceCode, device_code_info
from intake.core.model import Outcome, ReportIn
from intake.pipeline import IngestResult, Intake
from intake.store import Store
from intake.types import PayloadError

log = logging.getLogger(__name__)

CHANNEL = "device"
#: How many reports of a device are searched for the alarm a restoral ends.
RESTORAL_LOOKBACK = 50
#: A device is silent after this many heartbeat intervals without a message (EN 50136 receivers
#: tolerate one missed poll; two missed in a row is a fault).
SILENT_AFTER_INTERVALS = 2.0
#: Camera detections below this confidence are logged, not reported (INTAKE_CAMERA_MIN_CONFIDENCE).
CAMERA_MIN_CONFIDENCE = 0.5
#: Kinds a door accepts per registry kind (facility_devices.kind).
DOOR_KINDS: dict[str, frozenset[str]] = {
    "sia": frozenset({"sia"}),
    "mqtt": frozenset({"mqtt"}),
    "http": frozenset({"http", "camera"}),
}


class Disposition(enum.StrEnum):
    REPORTED = "reported"  # a new report was stored
    DUPLICATE = "duplicate"  # the same delivery was stored before (a retransmission)
    RESTORED = "restored"  # the open alarm report of that zone was marked restored
    LOGGED = "logged"  # heartbeat, test, trouble, status, or a restoral with no open alarm


class UnknownCode(ValueError):
    """The event code is not in the device code table."""


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One event from one registered device, as a door parsed it."""

    door: str  # 'sia' | 'mqtt' | 'http'
    device_id: str
    code: str  # as device_code_info reads it: 'CID:1110', 'SIA:FA', 'CAM:smoke'
    ref: str  # the delivery's identity within the door: a retransmission carries the same one
    zone: str | None = None
    area: str | None = None  # partition / area, where the wire has one
    occurred_at: datetime | None = None  # the device's own clock
    note: str = ""  # free text the device sent
    confidence: float | None = None  # an AI camera's confidence in its detection, 0..1
    attachments: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)  # what the wire said: a retry gives the same raw

    @property
    def channel_ref(self) -> str:
        return f"{self.door}:{self.ref}"


@dataclass(frozen=True, slots=True)
class Handled:
    disposition: Disposition
    info: DeviceCode
    report_id: int | None = None
    incident_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.disposition.value,
            "event_type": self.info.event_type,
            "code": f"{self.info.scheme}:{self.info.code}",
            "description": self.info.description,
            "report_id": self.report_id,
            "incident_id": self.incident_id,
        }


def code_info(code: str) -> DeviceCode:
    info = device_code_info(code)
    if info is None:
        raise UnknownCode(f"event code {code!r} is not in the device code table")
    return info


def _contact(facility: dict[str, Any] | None) -> str | None:
    """Who the call-taker rings about this facility, shown as the report's reporter."""
    if facility is None:
        return None
    parts = [p for p in (facility.get("contact_name"), facility.get("contact_phone")) if p]
    return f"{facility['name']} — {', '.join(parts)}" if parts else facility["name"]


def report_text(info: DeviceCode, event: DeviceEvent) -> str:
    text = f"{info.description} ({info.scheme} {info.code})"
    if event.zone:
        text += f", zone {event.zone}"
    if event.area:
        text += f", area {event.area}"
    if event.note:
        text += f": {event.note}"
    return text


async def handle(intake: Intake, device: dict[str, Any], event: DeviceEvent) -> Handled:
    """Store what the event means; returns once it is durable (the door may acknowledge then)."""
    info = code_info(event.code)
    now = intake.clock()
    floor = float(intake.settings.extra.get("camera_min_confidence", CAMERA_MIN_CONFIDENCE))
    if info.event_type == "alarm" and event.confidence is not None and event.confidence < floor:
        handled = Handled(Disposition.LOGGED, info)
        log.info("device %s: %s at confidence %.2f < %.2f logged, not reported", device["device_id"],
                 info.description, event.confidence, floor)
    elif info.event_type == "alarm":
        result = await _report(intake, device, event, info, now)
        handled = Handled(Disposition.DUPLICATE if result.outcome == Outcome.DUPLICATE else Disposition.REPORTED,
                          info, result.report_id, result.incident_id)
    elif info.event_type == "restoral":
        handled = await _restore(intake, device, event, info, now)
    else:
        handled = Handled(Disposition.LOGGED, info)
        log.info("device %s: %s (%s) logged", device["device_id"], info.description, event.code)
    await heard(intake.store, device, now)
    return handled


async def _report(intake: Intake, device: dict[str, Any], event: DeviceEvent, info: DeviceCode, now: datetime
                  ) -> IngestResult:
    async with intake.store.read() as repo:
        facility = await repo.facility(device["facility_id"])
    report = ReportIn(
        channel=CHANNEL,
        channel_ref=event.channel_ref,
        received_at=now,
        text=report_text(info, event),
        reporter_name=_contact(facility),
        device_id=device["device_id"],
        device_event_code=f"{info.scheme}:{info.code}",
        facility_id=device["facility_id"],
        attachments=event.attachments,
        raw={"door": event.door, "zone": event.zone, "area": event.area,
             "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None, **event.raw},
    )
    # Neither the contact (reporter_name) nor the clock is in the payload digest: a panel's retry is a duplicate
    # even when the registry changed in between. Same ref with another raw is a conflict: the door says so.
    return await intake.ingest(report)


def _is_alarm_of_zone(row: dict[str, Any], event: DeviceEvent) -> bool:
    if row["channel"] != CHANNEL or not row["device_event_code"]:
        return False
    info = device_code_info(row["device_event_code"])
    raw = row["raw"] or {}
    return info is not None and info.event_type == "alarm" and raw.get("zone") == event.zone \
        and raw.get("area") == event.area


async def _restore(intake: Intake, device: dict[str, Any], event: DeviceEvent, info: DeviceCode,
                   now: datetime) -> Handled:
    async with intake.store.read() as repo:
        rows = await repo.reports_of_reporter(f"device:{device['device_id']}", RESTORAL_LOOKBACK)
    alarm = next((r for r in rows if _is_alarm_of_zone(r, event)), None)
    if alarm is None:
        log.info("device %s: %s for zone %s with no alarm report to restore; logged",
                 device["device_id"], event.code, event.zone)
        return Handled(Disposition.LOGGED, info)
    done = (alarm["raw"] or {}).get("restoral")
    if done is not None:
        if done.get("ref") == event.channel_ref:  # the panel retransmitted the restoral
            return Handled(Disposition.DUPLICATE, info, alarm["id"], alarm["incident_id"])
        log.info("device %s: zone %s already restored (report %s); %s logged",
                 device["device_id"], event.zone, alarm["id"], event.code)
        return Handled(Disposition.LOGGED, info, alarm["id"], alarm["incident_id"])
    restored_at = (event.occurred_at or now).isoformat()
    result = await intake.update_report(alarm["id"], raw_patch={
        "restored_at": restored_at,
        "restoral": {"code": f"{info.scheme}:{info.code}", "ref": event.channel_ref, "received_at": now.isoformat(),
                     "description": info.description},
    }, actor=f"device:{device['device_id']}")
    return Handled(Disposition.RESTORED, info, result.report_id, result.incident_id)


def _device_payload(device: dict[str, Any], facility: dict[str, Any] | None) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "device": {"device_id": device["device_id"], "kind": device["kind"], "facility_id": device["facility_id"],
                   "heartbeat_s": device["heartbeat_s"], "last_seen_at": iso(device["last_seen_at"]),
                   "silent_since": iso(device["silent_since"])},
        "facility": None if facility is None else {
            "id": facility["id"], "name": facility["name"], "address": facility["address"],
            "lat": facility["lat"], "lon": facility["lon"], "contact_name": facility["contact_name"],
            "contact_phone": facility["contact_phone"]},
    }


def _outbox_row(kind: str, device: dict[str, Any], facility: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    return {"at": now, "topic": "device", "kind": kind, "incident_id": None, "report_id": None,
            "payload": _device_payload(device, facility)}


async def heard(store: Store, device: dict[str, Any], now: datetime) -> None:
    """A message of any kind came from the device: it is alive."""
    async with store.transaction() as repo:
        was_silent = await repo.touch_device(device["device_id"], now)
        if was_silent is not None:
            log.info("device %s is heard again (silent since %s)", device["device_id"], was_silent.isoformat())
            fresh = await repo.device(device["device_id"])
            if fresh is not None:
                facility = await repo.facility(fresh["facility_id"])
                await repo.write_outbox([_outbox_row("device.resumed", fresh, facility, now)])


async def check_supervision(store: Store, now: datetime, *, intervals: float = SILENT_AFTER_INTERVALS
                            ) -> list[str]:
    """Flag the devices that stopped their heartbeats; returns the ids flagged by this call."""
    flagged: list[str] = []
    rows: list[dict[str, Any]] = []
    async with store.transaction() as repo:
        for device in await repo.supervised_devices():
            deadline = device["last_seen_at"] + timedelta(seconds=device["heartbeat_s"] * intervals)
            if now <= deadline:
                continue
            if await repo.mark_device_silent(device["device_id"], device["last_seen_at"], now):
                flagged.append(device["device_id"])
                log.warning("device %s is silent: last heard %s, promised a message every %s s",
                            device["device_id"], device["last_seen_at"].isoformat(), device["heartbeat_s"])
                facility = await repo.facility(device["facility_id"])
                rows.append(_outbox_row("device.silent", {**device, "silent_since": now}, facility, now))
        await repo.write_outbox(rows)  # last in the transaction (see Repo.write_outbox)
    return flagged


async def supervise(store: Store, clock: Callable[[], datetime], stop: asyncio.Event, *,
                    every_s: float = 30.0, intervals: float = SILENT_AFTER_INTERVALS) -> None:
    """Run `check_supervision` every `every_s` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await check_supervision(store, clock(), intervals=intervals)
        except Exception:  # a database hiccup must not end supervision; logged in full
            log.exception("device supervision check failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


# --- the JSON shape shared by the MQTT and HTTP doors ------------------------------------------------

#: Fields of a device event in JSON (MQTT payloads, HTTP bodies). Other fields are kept in raw, not refused:
#: an alarm must not be lost because a device firmware added a field.
JSON_FIELDS: dict[str, str] = {
    "device_id": "the device's id in the facility registry",
    "camera_id": "an AI camera's id (the same as device_id)",
    "code": "CID:1110 | SIA:FA | SIA:NULL (heartbeat) | CAM:smoke: the event (core/data/device_codes.toml)",
    "detection": "an AI camera's detection type: fire, smoke, flame, person, intrusion, fall, ... (instead of code)",
    "confidence": "an AI camera's confidence in the detection, 0..1",
    "zone": "zone / point / sensor number or name",
    "area": "partition / area",
    "time": "ISO 8601 with a time zone: when the device saw it",
    "event_id": "the device's unique id of the event (retries carry the same one)",
    "snapshot_url": "an image of the scene (http or https URL), kept as an attachment",
    "text": "a note from the device",
}
_MAX_ID = 120


def _opt_str(body: dict[str, Any], name: str, max_len: int = _MAX_ID) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name in ("zone", "area"):
        value = str(value)
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, got {type(value).__name__}", field=name)
    value = value.strip()
    if len(value) > max_len:
        raise PayloadError(f"{name} is longer than {max_len} characters", field=name)
    return value or None


def _time(body: dict[str, Any]) -> datetime | None:
    value = body.get("time")
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("time must be an ISO 8601 string", field="time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError(f"time is not an ISO 8601 time: {value!r}", field="time") from exc
    if when.tzinfo is None:
        raise PayloadError("time needs a time zone (e.g. +07:00 or Z)", field="time")
    return when


def event_from_json(body: dict[str, Any], *, door: str, device_id: str, extra_raw: dict[str, Any] | None = None
                    ) -> DeviceEvent:
    """Validate one JSON device event (an MQTT payload, an HTTP body) from a known device."""
    for name in ("device_id", "camera_id"):
        given = _opt_str(body, name)
        if given is not None and given != device_id:
            raise PayloadError(f"{name} {given!r} is not the device {device_id!r} this event came from", field=name)
    code = _opt_str(body, "code", 32)
    detection = _opt_str(body, "detection", 32)
    if (code is None) == (detection is None):
        raise PayloadError("give either code (CID:1110, SIA:FA, ...) or detection (an AI camera's fire, smoke, ...)",
                           field="code")
    if detection is not None:
        code = f"CAM:{detection}"
    assert code is not None
    if device_code_info(code) is None:
        raise PayloadError(f"event code {code!r} is not in the device code table", field="detection" if detection
                           else "code")
    confidence = body.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not math.isfinite(confidence) \
                or not 0 <= confidence <= 1:
            raise PayloadError("confidence must be a number between 0 and 1", field="confidence")
        confidence = float(confidence)
    zone, area = _opt_str(body, "zone"), _opt_str(body, "area")
    when = _time(body)
    event_id = _opt_str(body, "event_id")
    if event_id is None and when is None:
        raise PayloadError("give event_id or time, so that a retried delivery is recognised", field="event_id")
    snapshot = _opt_str(body, "snapshot_url", 2000)
    attachments: tuple[dict[str, Any], ...] = ()
    if snapshot is not None:
        if not snapshot.lower().startswith(("https://", "http://")):
            raise PayloadError("snapshot_url must be an http(s) URL", field="snapshot_url")
        attachments = ({"type": "image", "url": snapshot, "source": "camera" if detection else "device",
                        **({"confidence": confidence} if confidence is not None else {})},)
    info = device_code_info(code)
    assert info is not None
    canonical = f"{info.scheme}:{info.code}"
    if event_id is not None:
        ref = f"{device_id}:{event_id}"
    else:
        assert when is not None
        ref = f"{device_id}:{when.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}:{canonical}:{zone or ''}"
    return DeviceEvent(door=door, device_id=device_id, code=canonical, ref=ref, zone=zone, area=area,
                       occurred_at=when, note=_opt_str(body, "text", 1000) or "", confidence=confidence,
                       attachments=attachments, raw={"payload": body, **(extra_raw or {})})
