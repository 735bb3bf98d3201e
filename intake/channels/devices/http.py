"""HTTP door for IP fire-alarm devices and AI cameras: ``POST /api/v1/devices/{device_id}/events``.

Each device authenticates with its own secret from the facility registry (facility_devices kind
'http' or 'camera'): ``Authorization: Bearer <secret>``, compared in constant time. The body is one
JSON event (see events.JSON_FIELDS), e.g. an AI camera's detection:

    {"detection": "smoke", "confidence": 0.91, "snapshot_url": "https://cam.example/snap/881.jpg",
     "time": "2026-11-22T15:00:05+07:00", "event_id": "881"}

or an IP panel's event: ``{"code": "CID:1110", "zone": "015", "time": "..."}``.

Answers: 201 a report was stored; 200 a retry of a stored one, a restoral applied, or an event
logged (heartbeat, test, low-confidence detection); 401 no or wrong secret; 404 a device not in the
registry; 403 a device registered for another door; 400 a malformed body. Only 201/200 store anything.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any, Final

from intake.channels.devices import events
from intake.channels.devices.events import Disposition, event_from_json
from intake.pipeline import Intake, NotFound
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized, json_object

log = logging.getLogger(__name__)

DOOR: Final = "http"
#: Compared against when the device is unknown, so an unknown id costs the same time as a wrong secret.
_DUMMY_SECRET: Final = b"\x00" * 32


def bearer(headers: Mapping[str, str]) -> str:
    header = headers.get("Authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise Unauthorized("send the device's secret: Authorization: Bearer <secret>")
    return header[7:].strip()


def verify(device: dict[str, Any] | None, device_id: str, secret: str) -> dict[str, Any]:
    """The device's registry row, if `secret` is its secret."""
    stored = (device or {}).get("secret") or ""
    matches = hmac.compare_digest(secret.encode(), stored.encode() if stored else _DUMMY_SECRET)
    if device is None:
        raise NotFound(f"device {device_id!r} is not in the facility registry")
    if not stored or not matches:
        log.warning("device %s: wrong secret", device_id)
        raise Unauthorized(f"the secret is not device {device_id!r}'s")
    if device["kind"] not in events.DOOR_KINDS[DOOR]:
        raise Forbidden(f"device {device_id!r} is registered as {device['kind']}, not as an http device or camera")
    return device


def parse_body(body: bytes) -> dict[str, Any]:
    return json_object(body, detail={"fields": events.JSON_FIELDS})


async def receive(intake: Intake, inbound: Inbound, device_id: str) -> tuple[int, dict[str, Any]]:
    """Verify, parse, store; the HTTP status and body to answer with."""
    secret = bearer(inbound.headers)
    if not device_id or len(device_id) > 120:
        raise PayloadError("the device id in the path must be 1..120 characters", field="device_id")
    async with intake.store.read() as repo:
        device = verify(await repo.device(device_id), device_id, secret)
    body = parse_body(inbound.body)
    event = event_from_json(body, door=DOOR, device_id=device_id)
    try:
        handled = await events.handle(intake, device, event)
    except events.UnknownCode as exc:  # event_from_json checked the code; the table is read once
        raise PayloadError(str(exc), field="code") from exc
    status = 201 if handled.disposition == Disposition.REPORTED else 200
    return status, handled.as_dict()
