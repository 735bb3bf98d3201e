"""The city's mobile app: POST /api/v1/reports with JSON and an Idempotency-Key.

The same field names are used by `intake report --jsonl` to import a backlog.
Parsing is strict: an unknown or mistyped field is an error the app developer
sees at once, not a report silently stored without its location.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from intake.core.model import Category, Location, LocationSource, ReportIn
from intake.types import Inbound, PayloadError

NAME = "app"
MAX_TEXT = 5000
MAX_KEY = 255
FUTURE_SKEW = timedelta(minutes=5)
_KEY_OK = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as HTTP header tokens

FIELDS: dict[str, str] = {
    "text": "what is happening, free text (Vietnamese or English)",
    "phone": "the reporter's phone number",
    "lat": "latitude, WGS 84 decimal degrees",
    "lon": "longitude, WGS 84 decimal degrees",
    "accuracy": "radius of the position's uncertainty in metres (default 50)",
    "location_source": "gps | wifi | cell | calltaker | address (default gps)",
    "category": "fire | police | medical: the button the reporter pressed, if any",
    "language": "BCP 47 language tag, e.g. vi or en",
    "reporter_name": "the reporter's name",
    "reporter_id": "the app's user id",
    "received_at": "ISO 8601 with a time zone: when the report was made (backlog imports)",
    "attachments": "list of objects {type, url, ...}",
    "channel": "the door a backlog line came through (CLI import only)",
    "channel_ref": "the reference a backlog line had in the old system (CLI import only)",
}


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{name} must be a number, got {type(value).__name__}", field=name)
    if not math.isfinite(value):
        raise PayloadError(f"{name} must be a finite number", field=name)
    return float(value)


def _string(body: Mapping[str, Any], name: str, max_len: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, got {type(value).__name__}", field=name)
    if len(value) > max_len:
        raise PayloadError(f"{name} is longer than {max_len} characters", field=name)
    return value


def parse_time(value: Any, name: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be an ISO 8601 string", field=name)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError(f"{name} is not an ISO 8601 time: {value!r}", field=name) from exc
    if when.tzinfo is None:
        raise PayloadError(f"{name} needs a time zone (e.g. +07:00 or Z)", field=name)
    if when > now + FUTURE_SKEW:
        raise PayloadError(f"{name} is in the future", field=name)
    return when


def report_from_fields(
    body: Any, *, channel: str, channel_ref: str, now: datetime, allowed: frozenset[str] | None = None
) -> ReportIn:
    """Validate one report object (the API body or one backlog line)."""
    if not isinstance(body, dict):
        raise PayloadError(f"the report must be a JSON object, got {type(body).__name__}")
    allowed = allowed if allowed is not None else frozenset(FIELDS) - {"channel", "channel_ref"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise PayloadError(
            f"unknown field(s): {', '.join(unknown)}", field=unknown[0], detail={"allowed": sorted(allowed)}
        )
    text = _string(body, "text", MAX_TEXT) or ""
    phone = _string(body, "phone", 64)
    lat, lon = _number(body, "lat"), _number(body, "lon")
    accuracy = _number(body, "accuracy")
    if (lat is None) != (lon is None):
        raise PayloadError("lat and lon come together: give both or neither", field="lat" if lat is None else "lon")
    location = None
    if lat is not None and lon is not None:
        if not -90 <= lat <= 90:
            raise PayloadError(f"lat {lat} is outside -90..90", field="lat")
        if not -180 <= lon <= 180:
            raise PayloadError(f"lon {lon} is outside -180..180", field="lon")
        if accuracy is not None and not 0 <= accuracy <= 100_000:
            raise PayloadError(f"accuracy {accuracy} must be between 0 and 100000 metres", field="accuracy")
        source_name = _string(body, "location_source", 16) or "gps"
        try:
            source = LocationSource(source_name)
        except ValueError as exc:
            raise PayloadError(f"location_source {source_name!r} is not one of gps, wifi, cell, calltaker, address",
                               field="location_source") from exc
        location = Location(lat, lon, 50.0 if accuracy is None else accuracy, source, observed_at=now)
    elif accuracy is not None:
        raise PayloadError("accuracy given without lat and lon", field="accuracy")
    category = None
    category_name = _string(body, "category", 16)
    if category_name is not None:
        try:
            category = Category(category_name)
        except ValueError as exc:
            raise PayloadError(
                f"category {category_name!r} is not one of fire, police, medical, unknown", field="category"
            ) from exc
    received_at = parse_time(body["received_at"], "received_at", now) if "received_at" in body else now
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise PayloadError("attachments must be a list of objects", field="attachments")
    if not text.strip() and location is None and category is None:
        raise PayloadError("a report needs at least text, a location or a category", field="text")
    return ReportIn(
        channel=channel,
        channel_ref=channel_ref,
        received_at=received_at,
        text=text,
        phone=phone,
        reporter_id=_string(body, "reporter_id"),
        reporter_name=_string(body, "reporter_name"),
        language=_string(body, "language", 16),
        location=location,
        category_hint=category,
        attachments=tuple(attachments),
        raw=body,
    )


def idempotency_key(headers: Mapping[str, str]) -> str:
    key = headers.get("Idempotency-Key")
    if key is None:
        raise PayloadError(
            "the Idempotency-Key header is required: a unique string per report, reused on retries",
            field="Idempotency-Key",
        )
    key = key.strip().strip('"')  # the IETF draft sends it as a quoted string
    if not _KEY_OK.match(key):
        raise PayloadError(f"Idempotency-Key must be 1..{MAX_KEY} visible ASCII characters", field="Idempotency-Key")
    return key


def parse(inbound: Inbound, *, client: str) -> list[ReportIn]:
    """`client` scopes the key to the API token, so two apps cannot collide on one key."""
    key = idempotency_key(inbound.headers)
    try:
        body = json.loads(inbound.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from exc
    return [report_from_fields(body, channel=NAME, channel_ref=f"{client}:{key}", now=inbound.received_at)]
