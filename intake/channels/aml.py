"""Advanced Mobile Location (ETSI TS 103 625): the position a phone sends by itself during an emergency call.

Pure parsing, no I/O. Two transports reach us:

- **SMS** (`A"ML=...`), which every AML handset sends. Version 1 is the ETSI format (Android ELS "V1"):

      A"ML=1;lt=+21.03412;lg=+105.85067;rd=12;top=20261122080004;lc=68;pm=G;si=452040000000000;
      ei=356938035643809;mcc=452;mnc=04;ml=129

  lt/lg signed decimal degrees (WGS 84), rd radius of uncertainty in metres, top the UTC time of
  positioning (YYYYMMDDhhmmss), lc level of confidence in percent, pm the positioning method
  (G GNSS, W Wi-Fi, C cell, N no location), si/ei IMSI/IMEI, mcc/mnc the serving network, and ml
  the length of the whole message in characters, header and the ml attribute included: the check
  that the SMS arrived whole. A phone without a position still sends one, with pm=N (and rd=N).
  Version 2 is Android's experimental "ELS Beta": different keys (en emergency number, et call time
  in epoch seconds, lo=lat,lon,accuracy where accuracy 0 means unknown, lt the fix time in seconds
  relative to et, lz altitude, ls source G/W/C/F(used)/U, nc/hc network codes, lg the languages).
- **HTTPS**: Android ELS posts an application/x-www-form-urlencoded form (v, emergency_number,
  source, time, location_latitude, location_longitude, location_time in epoch ms, location_accuracy
  in metres, location_source gps|wifi|cell|unknown, location_confidence 0..1, device_number,
  device_imei, ...). In service these endpoints sit behind mutual TLS and an agreement with the
  operator or Google; this server asks for an HMAC of the body (`verify_https`), see the README.

Strict where a wrong value would put a pin in the wrong place (coordinates, radius, times, the
message length) and forward compatible where it would not: unknown attributes are kept but not
used, and an unknown method letter is read as "unknown" rather than losing the caller's position.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from intake.core.model import Location, LocationSource
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized, form_fields

HEADER = 'A"ML='
SIGNATURE_HEADER = "X-AML-Signature"
#: No radius was sent: assume a cell's reach, so any measured position is preferred to this one.
UNKNOWN_ACCURACY_M = 5000.0


class Method(enum.StrEnum):
    """How the phone found its position."""

    GNSS = "gnss"
    WIFI = "wifi"
    CELL = "cell"
    FUSED = "fused"  # ELS Beta 'F': Android's fused provider, a mix of the above
    UNKNOWN = "unknown"
    NONE = "none"  # the phone had no position


#: v1 `pm` codes (ETSI; Android ELS V1). 'U' is not in the published V1 tables; some parsers accept it.
V1_METHODS: dict[str, Method] = {"G": Method.GNSS, "W": Method.WIFI, "C": Method.CELL, "N": Method.NONE,
                                 "U": Method.UNKNOWN}
#: v2 (ELS Beta) `ls` codes.
V2_METHODS: dict[str, Method] = {"G": Method.GNSS, "W": Method.WIFI, "C": Method.CELL, "F": Method.FUSED,
                                 "U": Method.UNKNOWN}
#: HTTPS `location_source` values.
HTTPS_METHODS: dict[str, Method] = {"gps": Method.GNSS, "wifi": Method.WIFI, "cell": Method.CELL,
                                    "unknown": Method.UNKNOWN}
#: What each method is as one of our location sources (kept on the stored fix).
METHOD_SOURCES: dict[Method, LocationSource] = {
    Method.GNSS: LocationSource.GPS,
    Method.WIFI: LocationSource.WIFI,
    Method.CELL: LocationSource.CELL,
    Method.FUSED: LocationSource.UNKNOWN,
    Method.UNKNOWN: LocationSource.UNKNOWN,
    Method.NONE: LocationSource.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class AmlFix:
    """One position of the caller's phone."""

    lat: float
    lon: float
    accuracy_m: float
    method: Method
    observed_at: datetime | None  # when the phone took the fix (UTC)
    confidence_pct: float | None = None

    @property
    def source(self) -> LocationSource:
        """The positioning method as a location source (gps, wifi, cell, unknown)."""
        return METHOD_SOURCES[self.method]

    def location(self) -> Location:
        """The fix as a report's location: its source is AML, whatever method the phone used."""
        return Location(self.lat, self.lon, self.accuracy_m, LocationSource.AML, observed_at=self.observed_at)


@dataclass(frozen=True, slots=True)
class AmlSms:
    version: int
    attributes: dict[str, str]  # every key=value as received, in order
    fix: AmlFix | None  # None: the phone sent no position (pm=N)


@dataclass(frozen=True, slots=True)
class AmlHttps:
    device_number: str  # the phone's number as sent ("best effort E.164")
    fields: dict[str, str] = field(default_factory=dict)
    fix: AmlFix | None = None  # None: the post carried no position


# --- SMS -----------------------------------------------------------------------------------------

_LAT = re.compile(r"^[+-]?\d{1,2}(\.\d+)?$")
_LON = re.compile(r"^[+-]?\d{1,3}(\.\d+)?$")
_METRES = re.compile(r"^\d+(\.\d+)?$")
_TOP = re.compile(r"^\d{14}$")
_PERCENT = re.compile(r"^\d{1,3}$")
_INT = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?\d+(\.\d+)?$")


def is_aml_sms(text: str) -> bool:
    """True when an SMS body is an AML message (it is then never a report of its own)."""
    return text.strip().startswith(HEADER)


def parse_sms(text: str) -> AmlSms:
    """Parse an AML SMS body; PayloadError says what is wrong with it."""
    body = text.strip()
    if not body.startswith(HEADER):
        raise PayloadError('not an AML message: it must start with A"ML=', field="Body")
    attrs = _attributes(body)
    raw_version = attrs['A"ML']
    if raw_version not in ("1", "2"):
        raise PayloadError(f"AML version {raw_version!r} is not supported (1 or 2)", field='A"ML')
    version = int(raw_version)
    if "ml" in attrs:
        if not attrs["ml"].isdigit():
            raise PayloadError(f"ml must be a number of characters, got {attrs['ml']!r}", field="ml")
        if int(attrs["ml"]) != len(body):
            raise PayloadError(f"ml says the message is {attrs['ml']} characters long but it is {len(body)}: "
                               "it was cut or joined on the way", field="ml")
    elif version == 1:
        raise PayloadError("ml (the message length) is missing: an AML v1 message ends with it", field="ml")
    fix = _fix_v1(attrs) if version == 1 else _fix_v2(attrs)
    return AmlSms(version=version, attributes=attrs, fix=fix)


def _attributes(body: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for n, part in enumerate(body.split(";")):
        key, sep, value = part.partition("=")
        if not sep or not key or "=" in value:
            raise PayloadError(f"attribute {n + 1} ({part!r}) is not key=value")
        if key in attrs:
            raise PayloadError(f"attribute {key!r} appears twice", field=key)
        attrs[key] = value
    return attrs


def _fix_v1(attrs: Mapping[str, str]) -> AmlFix | None:
    code = attrs.get("pm", "U")
    method = V1_METHODS.get(code.upper(), Method.UNKNOWN)
    if method == Method.NONE or attrs.get("rd") == "N":
        return None
    lat = _coordinate(attrs, "lt", _LAT, 90.0)
    lon = _coordinate(attrs, "lg", _LON, 180.0)
    if lat == 0.0 and lon == 0.0:
        return None  # "Null Island": the placeholder phones send when they have no position
    return AmlFix(
        lat=lat,
        lon=lon,
        accuracy_m=_metres(attrs, "rd") or UNKNOWN_ACCURACY_M,
        method=method,
        observed_at=_top(attrs.get("top")),
        confidence_pct=_percent(attrs, "lc"),
    )


def _fix_v2(attrs: Mapping[str, str]) -> AmlFix | None:
    lo = attrs.get("lo")
    if not lo:
        return None
    parts = lo.split(",")
    if len(parts) != 3:
        raise PayloadError(f"lo must be latitude,longitude,accuracy, got {lo!r}", field="lo")
    lat = _coordinate({"lo": parts[0]}, "lo", _LAT, 90.0)
    lon = _coordinate({"lo": parts[1]}, "lo", _LON, 180.0)
    accuracy = _metres({"lo": parts[2]}, "lo")
    if lat == 0.0 and lon == 0.0:
        return None
    call_at = _epoch(attrs, "et", 1)
    offset = attrs.get("lt")
    if offset is not None and not _INT.match(offset):
        raise PayloadError(f"lt (seconds after the call) must be an integer, got {offset!r}", field="lt")
    observed = call_at + timedelta(seconds=int(offset)) if call_at is not None and offset is not None else None
    return AmlFix(
        lat=lat,
        lon=lon,
        accuracy_m=accuracy or UNKNOWN_ACCURACY_M,  # "an accuracy of 0 represents unknown"
        method=V2_METHODS.get(attrs.get("ls", "U").upper(), Method.UNKNOWN),
        observed_at=observed,
        confidence_pct=_percent(attrs, "lc"),
    )


def _coordinate(attrs: Mapping[str, str], key: str, shape: re.Pattern[str], limit: float) -> float:
    value = attrs.get(key)
    if value is None or value == "":
        raise PayloadError(f"{key} is missing: no position without it", field=key)
    if not shape.match(value):
        raise PayloadError(f"{key} must be signed decimal degrees, got {value!r}", field=key)
    degrees = float(value)
    if abs(degrees) > limit:
        raise PayloadError(f"{key} {value} is outside -{limit:g}..{limit:g} degrees", field=key)
    return degrees


def _metres(attrs: Mapping[str, str], key: str) -> float | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if not _METRES.match(value):
        raise PayloadError(f"{key} must be a radius in metres, got {value!r}", field=key)
    return float(value)


def _percent(attrs: Mapping[str, str], key: str) -> float | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if not _PERCENT.match(value) or int(value) > 100:
        raise PayloadError(f"{key} must be a percentage 0..100, got {value!r}", field=key)
    return float(value)


def _top(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if not _TOP.match(value):
        raise PayloadError(f"top must be the UTC time of positioning as YYYYMMDDhhmmss, got {value!r}", field="top")
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise PayloadError(f"top {value!r} is not a real time: {exc}", field="top") from exc


def _epoch(attrs: Mapping[str, str], key: str, per_second: int) -> datetime | None:
    value = attrs.get(key)
    if value is None or value == "":
        return None
    if not _INT.match(value):
        raise PayloadError(f"{key} must be a Unix time, got {value!r}", field=key)
    try:
        return datetime.fromtimestamp(int(value) / per_second, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError(f"{key} {value} is not a usable time", field=key) from exc


# --- HTTPS ---------------------------------------------------------------------------------------


def https_signature(key: str, body: bytes) -> str:
    """The X-AML-Signature this server expects: hex HMAC-SHA256 of the raw body."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify_https(inbound: Inbound, key: str) -> None:
    """The post must carry X-AML-Signature = hex HMAC-SHA256(body, INTAKE_AML_HMAC_KEY)."""
    sent = inbound.headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not sent:
        raise Unauthorized(f"send {SIGNATURE_HEADER}: the hex HMAC-SHA256 of the body")
    if not hmac.compare_digest(sent, https_signature(key, inbound.body)):
        raise Forbidden(f"{SIGNATURE_HEADER} does not match this body")


def https_ref(body: bytes) -> str:
    """A post has no id of its own; a retried post is the same bytes, so its digest is its reference."""
    return hashlib.sha256(body).hexdigest()


def parse_https(body: bytes) -> AmlHttps:
    """Parse an ELS / AML HTTPS form post."""
    form = form_fields(body)
    version = form.get("v", "1")
    if version != "1":
        raise PayloadError(f"AML HTTPS version {version!r} is not supported (1)", field="v")
    number = form.get("device_number", "").strip()
    if not number:
        raise PayloadError("device_number is missing: a position without a number cannot find its call",
                           field="device_number")
    lat_raw, lon_raw = form.get("location_latitude", ""), form.get("location_longitude", "")
    if not lat_raw and not lon_raw:
        return AmlHttps(device_number=number, fields=form, fix=None)
    lat = _required(form, "location_latitude", 90.0)
    lon = _required(form, "location_longitude", 180.0)
    if lat == 0.0 and lon == 0.0:
        return AmlHttps(device_number=number, fields=form, fix=None)
    accuracy = _number(form, "location_accuracy", math.inf)
    if accuracy is not None and accuracy < 0:
        raise PayloadError(f"location_accuracy must be >= 0 metres, got {accuracy}", field="location_accuracy")
    confidence = _number(form, "location_confidence", 1.0)
    if confidence is not None and confidence < 0:
        raise PayloadError("location_confidence must be between 0 and 1", field="location_confidence")
    source = form.get("location_source", "").strip().lower()
    fix = AmlFix(
        lat=lat,
        lon=lon,
        accuracy_m=accuracy or UNKNOWN_ACCURACY_M,
        method=HTTPS_METHODS.get(source, Method.UNKNOWN),
        observed_at=_epoch(form, "location_time", 1000),
        confidence_pct=round(confidence * 100, 2) if confidence is not None else None,
    )
    return AmlHttps(device_number=number, fields=form, fix=fix)


def _number(form: Mapping[str, str], key: str, limit: float) -> float | None:
    """A decimal field; None when absent or empty (every ELS field is optional)."""
    value = form.get(key, "").strip()
    if not value:
        return None
    if not _DECIMAL.match(value):
        raise PayloadError(f"{key} must be a decimal number, got {value!r}", field=key)
    number = float(value)
    if abs(number) > limit:
        raise PayloadError(f"{key} {value} is outside -{limit:g}..{limit:g}", field=key)
    return number


def _required(form: Mapping[str, str], key: str, limit: float) -> float:
    number = _number(form, key, limit)
    if number is None:
        raise PayloadError(f"{key} is missing", field=key)
    return number
