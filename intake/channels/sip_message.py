"""Text to 112 over SIP MESSAGE (RFC 3428): the SIP parser, the PIDF-LO reader and the report it makes.

Pure: no sockets and no clock; `sip_listener` owns the UDP/TCP side. A MESSAGE reaches us directly
(not through Asterisk, which answers 415 to a multipart body) addressed to the emergency service URN
(RFC 5031 `urn:service:sos`, `urn:service:sos.fire`, ...) or to one of the emergency numbers
(`sip:112@host`, `tel:112`). Its body is text/plain, or multipart/mixed / multipart/related holding
the text and a PIDF-LO (RFC 4119, shapes of RFC 5491) that the `Geolocation` header (RFC 6442)
points at with a `cid:` URI.

The SIP parser is our own, small and strict (aiosipua 0.7.1, an alpha asyncio SIP library, was
weighed: its UAS answers MESSAGE with 405, its transport callback is synchronous, and it drops an
unparseable request silently where we answer 400). MIME parts are read by the stdlib `email`
parser, PIDF-LO by defusedxml.
"""

from __future__ import annotations

import email.parser
import hashlib
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message
from typing import Any, Final
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree  # type: ignore[import-untyped]
from defusedxml.common import DefusedXmlException  # type: ignore[import-untyped]

from intake.core.model import Category, Location, LocationSource, ReportIn
from intake.types import PayloadError

NAME: Final = "sip"
MAX_MESSAGE_BYTES: Final = 65_535  # the largest UDP datagram; a text with its PIDF-LO is a few KiB
DEFAULT_NUMBERS: Final = frozenset({"112", "113", "114", "115"})
ALLOW: Final = "MESSAGE, OPTIONS"
ACCEPT: Final = "text/plain, multipart/mixed, multipart/related, application/pidf+xml"
SERVER: Final = "Hotline-Intake"
MAX_CALL_ID: Final = 200
POINT_ACCURACY_M: Final = 50.0  # a gml:Point says nothing of its uncertainty: the app door's default

#: RFC 3261 §7.3.3 and the IANA registry: compact header names.
COMPACT_HEADERS: Final[Mapping[str, str]] = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}
REQUIRED_HEADERS: Final = ("Via", "From", "To", "Call-ID", "CSeq")

#: RFC 5031 sub-services of urn:service:sos → the agency that answers them here. In Vietnam 114 is
#: fire AND rescue (gas, water, mountain, animals: see core/data/routing.toml); None = no hint.
SOS_SUBSERVICES: Final[Mapping[str, Category | None]] = {
    "": None,
    "fire": Category.FIRE,
    "gas": Category.FIRE,
    "marine": Category.FIRE,
    "mountain": Category.FIRE,
    "animal-control": Category.FIRE,
    "police": Category.POLICE,
    "ambulance": Category.MEDICAL,
    "physician": Category.MEDICAL,
    "poison": Category.MEDICAL,
}

#: The reason phrases we send (RFC 3261 §21).
REASONS: Final[Mapping[int, str]] = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 420: "Bad Extension", 481: "Call/Transaction Does Not Exist",
    500: "Server Internal Error", 505: "Version Not Supported",
}

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) (SIP/\d+\.\d+)$")
_CSEQ = re.compile(r"^(\d{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PHONE_LIKE = re.compile(r"^\+?[0-9][0-9\-.() ]*$")
_VISUAL_SEPARATORS = re.compile(r"[\-.() ]")
_CONTENT_LENGTH_LINE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class SipError(PayloadError):
    """A request we answer with a SIP error status (and, for 400, the HTTP mapping of PayloadError)."""

    def __init__(self, message: str, sip_status: int = 400, *, headers: Sequence[tuple[str, str]] = (),
                 field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.sip_status = sip_status
        self.headers = tuple(headers)


class LocationError(ValueError):
    """A PIDF-LO we cannot turn into a position (the text of the MESSAGE still counts)."""


# --- the SIP message --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SipRequest:
    method: str
    uri: str
    version: str
    headers: tuple[tuple[str, str], ...]  # (full name as sent or expanded from its compact form, value), in order
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of a header, comma lists split (for the headers that are lists)."""
        lower = name.lower()
        found = [v for n, v in self.headers if n.lower() == lower]
        if lower in _LIST_HEADERS:
            return [item for v in found for item in split_list(v)]
        return found

    def header(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def lines(self, name: str) -> list[str]:
        """The header lines of a name as sent (for copying into a response)."""
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]


_LIST_HEADERS: Final = frozenset({"via", "geolocation", "p-asserted-identity", "require", "supported", "allow",
                                  "accept", "contact", "route", "record-route"})


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets (RFC 3261 §7.3.1)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_request(data: bytes, *, stream: bool = False) -> SipRequest:
    """Parse the start line and headers of a request; raise SipError(400) when that is impossible.

    `stream` (TCP) means Content-Length framed the message already. A response (`SIP/2.0 200 OK`)
    is not a request and raises too: we never send requests, so we expect none.
    """
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: CRLFs before the start line are ignored
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")  # bare LF: tolerated, as most stacks do
        if not sep:
            raise SipError("no empty line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError(f"the headers are not UTF-8: {exc}") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    match = _REQUEST_LINE.match(lines[0])
    if match is None:
        raise SipError(f"not a SIP request line: {lines[0][:80]!r}")
    method, uri, version = match.groups()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not headers:
                raise SipError("a continuation line before the first header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")  # RFC 3261 §7.3.1 folding
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipError(f"not a header line: {line[:80]!r}")
        if _CONTROL.search(value):
            raise SipError(f"control characters in header {name}", field=name)
        headers.append((COMPACT_HEADERS.get(name.lower(), name), value.strip()))
    request = SipRequest(method.upper(), uri, version, tuple(headers), body)
    length = request.header("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise SipError(f"Content-Length {length!r} is not a number", field="Content-Length")
        declared = int(length)
        if declared > len(body):
            raise SipError(f"the body has {len(body)} bytes, Content-Length says {declared}", field="Content-Length")
        request = SipRequest(request.method, uri, version, request.headers, body[:declared])
    elif stream and body:
        raise SipError("Content-Length is required over TCP", field="Content-Length")
    return request


def check_request(request: SipRequest) -> int:
    """The mandatory headers (RFC 3261 §8.1.1) are there and sane; returns the CSeq number."""
    for name in REQUIRED_HEADERS:
        if not request.header(name):
            raise SipError(f"the {name} header is missing", field=name)
    if len(request.lines("Call-ID")) != 1 or len(request.lines("CSeq")) != 1:
        raise SipError("Call-ID and CSeq must appear once")
    cseq = _CSEQ.match(request.header("CSeq") or "")
    if cseq is None:
        raise SipError(f"CSeq {request.header('CSeq')!r} is not 'number METHOD'", field="CSeq")
    number, method = int(cseq.group(1)), cseq.group(2).upper()
    if number >= 2**31:
        raise SipError("the CSeq number must be below 2**31", field="CSeq")
    if method != request.method:
        raise SipError(f"CSeq method {method} differs from the request method {request.method}", field="CSeq")
    return number


def message_length(buffer: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> int | None:
    """TCP framing: the size of the first message in `buffer` (no leading CRLF), None until it is all there."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > max_bytes:
            raise SipError(f"no end of headers in the first {max_bytes} bytes", 413)
        return None
    found = _CONTENT_LENGTH_LINE.findall(buffer[:end])
    if not found:
        raise SipError("Content-Length is required over TCP", field="Content-Length")
    if len(set(found)) != 1 or not found[0].isdigit():
        raise SipError("Content-Length must be one number", field="Content-Length")
    total = end + 4 + int(found[0])
    if total > max_bytes:
        raise SipError(f"the message is larger than {max_bytes} bytes", 413)
    return total if len(buffer) >= total else None


# --- responses -------------------------------------------------------------------------------------


def to_tag(request: SipRequest) -> str:
    """A To tag that a retransmission gets again (the response must be the same)."""
    seed = "\x00".join((request.header("Call-ID") or "", request.header("CSeq") or "", request.header("From") or ""))
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def _has_tag(address: str) -> bool:
    params = address.rsplit(">", 1)[-1] if ">" in address else address
    return any(p.strip().lower().startswith("tag=") for p in params.split(";")[1:])


def _stamp_via(via: str, source: tuple[str, int] | None) -> str:
    """RFC 3581: when the client asked with `rport`, tell it where its request came from."""
    if source is None:
        return via
    params = via.split(";")
    if not any(p.strip().lower() == "rport" for p in params[1:]):
        return via
    host, port = source
    out = [params[0]]
    for p in params[1:]:
        key = p.strip().lower()
        if key == "rport":
            out.append(f"rport={port}")
        elif not key.startswith("received="):
            out.append(p)
    out.insert(1, f"received={host}")
    return ";".join(out)


def build_response(request: SipRequest, status: int, *, headers: Iterable[tuple[str, str]] = (),
                   source: tuple[str, int] | None = None) -> bytes:
    """RFC 3261 §8.2.6: Via, From, To (+tag), Call-ID and CSeq copied; no body."""
    lines = [f"SIP/2.0 {status} {REASONS.get(status, 'Unknown')}"]
    vias = request.lines("Via")
    for i, via in enumerate(vias):
        if i == 0:
            first, *rest = split_list(via) or [via]
            via = ", ".join([_stamp_via(first, source), *rest])
        lines.append(f"Via: {via}")
    for name in ("From", "To", "Call-ID", "CSeq"):
        for value in request.lines(name)[:1]:
            if name == "To" and status != 100 and not _has_tag(value):
                value = f"{value};tag={to_tag(request)}"
            lines.append(f"{name}: {value}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Server: {SERVER}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def error_headers(status: int) -> list[tuple[str, str]]:
    """Headers an error status must carry (RFC 3261 §21.4.6, §21.4.13)."""
    if status == 405:
        return [("Allow", ALLOW)]
    if status == 415:
        return [("Accept", ACCEPT)]
    return []


# --- addresses -------------------------------------------------------------------------------------


def address_uri(value: str) -> str:
    """The URI of a name-addr (`"Bo" <sip:x@y>;tag=1`) or addr-spec (`sip:x@y;tag=1`)."""
    value = value.strip()
    start = value.find("<")
    if start >= 0:
        end = value.find(">", start)
        if end < 0:
            raise SipError(f"unclosed < in {value[:80]!r}")
        return value[start + 1:end].strip()
    return value.split(";", 1)[0].strip()  # addr-spec: header parameters follow the URI


@dataclass(frozen=True, slots=True)
class Uri:
    scheme: str  # 'sip', 'sips', 'tel', 'urn', ...
    user: str | None  # the user part of sip:, the number of tel:, the NSS of urn:
    host: str | None


def parse_uri(uri: str) -> Uri:
    scheme, colon, rest = uri.partition(":")
    if not colon or not scheme:
        raise SipError(f"not a URI: {uri[:80]!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        rest = rest.split(";", 1)[0].split("?", 1)[0]
        user, at, host = rest.rpartition("@")
        return Uri(scheme, urllib.parse.unquote(user) if at else None, host or None)
    if scheme == "tel":
        return Uri(scheme, urllib.parse.unquote(rest.split(";", 1)[0]), None)
    return Uri(scheme, rest, None)


def phone_of(uri: Uri) -> str | None:
    """The telephone number a sip:/tel: URI carries, or None (sip:alice@example.com)."""
    if uri.scheme not in ("sip", "sips", "tel") or not uri.user:
        return None
    number = uri.user.split(";", 1)[0]  # a user part may carry ;phone-context
    if len(number) > 32 or not _PHONE_LIKE.match(number) or sum(c.isdigit() for c in number) < 3:
        return None
    return _VISUAL_SEPARATORS.sub("", number)


def caller(request: SipRequest) -> tuple[str | None, str | None]:
    """(phone, sip address when there is no phone) of the sender: P-Asserted-Identity (tel: first), else From."""
    candidates: list[Uri] = []
    for value in request.values("P-Asserted-Identity"):
        candidates.append(parse_uri(address_uri(value)))
    candidates.sort(key=lambda u: u.scheme != "tel")  # RFC 3325 allows a sip: and a tel: identity
    candidates.append(parse_uri(address_uri(request.header("From") or "")))
    phone = next((p for p in map(phone_of, candidates) if p), None)
    if phone is not None:
        return phone, None
    identity = None
    for uri in candidates:
        if uri.scheme in ("sip", "sips") and uri.user and uri.host and not _anonymous(uri):
            identity = f"{uri.scheme}:{uri.user}@{uri.host.lower()}"[:255]
            break
    return phone, identity


def _anonymous(uri: Uri) -> bool:
    # RFC 3323: every anonymous sender looks alike; as a reporter key it would tie strangers together
    return (uri.user or "").lower() == "anonymous" or (uri.host or "").lower().endswith("anonymous.invalid")


# --- who the MESSAGE is for ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    uri: str
    service: str | None = None  # 'sos', 'sos.fire', ... for a service URN
    number: str | None = None  # '112', ... for a number
    category_hint: Category | None = None


def parse_numbers(value: str | None) -> frozenset[str]:
    """INTAKE_SIP_MESSAGE_NUMBERS: comma-separated digits."""
    if value is None or not value.strip():
        return DEFAULT_NUMBERS
    numbers = frozenset(n.strip() for n in value.split(",") if n.strip())
    bad = sorted(n for n in numbers if not n.isdigit() or len(n) > 15)
    if bad:
        raise ValueError(f"INTAKE_SIP_MESSAGE_NUMBERS: {', '.join(bad)} are not numbers (digits only)")
    return numbers


def target_of(uri_text: str, numbers: frozenset[str]) -> Target | None:
    try:
        uri = parse_uri(uri_text)
    except SipError:
        return None
    if uri.scheme == "urn":
        nss = (uri.user or "").lower()
        if not nss.startswith("service:sos") or nss[len("service:sos"):][:1] not in ("", "."):
            return None
        service = nss[len("service:"):]
        sub = service[len("sos."):].split(".", 1)[0] if service.startswith("sos.") else ""
        # RFC 5031 §4.3: an unknown sub-service is treated as its parent
        return Target(uri_text, service=service, category_hint=SOS_SUBSERVICES.get(sub))
    if uri.scheme in ("sip", "sips", "tel") and uri.user:
        digits = _VISUAL_SEPARATORS.sub("", uri.user.split(";", 1)[0])
        if digits in numbers:
            return Target(uri_text, number=digits)
    return None


def target(request: SipRequest, numbers: frozenset[str]) -> Target:
    """The Request-URI decides; a proxy may have rewritten it, so the To URI counts too (RFC 6881 §6)."""
    for candidate in (request.uri, address_uri(request.header("To") or "")):
        found = target_of(candidate, numbers)
        if found is not None:
            return found
    raise SipError(f"{request.uri} is not an emergency service here", 404)


# --- the body --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    pidf: dict[str, bytes]  # PIDF-LO documents by Content-ID ('' for one that has none)
    content_type: str


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    msg = Message()
    msg["Content-Type"] = value
    params = {k.lower(): str(v) for k, v in msg.get_params(failobj=[], header="Content-Type")[1:]}
    return msg.get_content_type(), params


def _decode_text(payload: bytes, charset: str | None) -> str:
    try:
        text = payload.decode(charset or "utf-8", errors="replace")  # RFC 3428: UTF-8 unless said otherwise
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\x00", "")  # PostgreSQL text cannot hold NUL


def read_body(request: SipRequest) -> Body:
    content_type = request.header("Content-Type")
    if not request.body:
        return Body("", {}, content_type or "")
    if content_type is None:
        raise SipError("a body without Content-Type", 415, headers=error_headers(415))
    encoding = (request.header("Content-Encoding") or "identity").lower()
    if encoding != "identity":
        raise SipError(f"Content-Encoding {encoding} is not supported", 415, headers=[("Accept-Encoding", "identity")])
    media, params = _media_type(content_type)
    if media == "text/plain":
        return Body(_decode_text(request.body, params.get("charset")), {}, media)
    if media == "application/pidf+xml":
        return Body("", {"": request.body}, media)
    if media not in ("multipart/mixed", "multipart/related"):
        raise SipError(f"{media} is not a body this door reads", 415, headers=error_headers(415))
    if not params.get("boundary"):
        raise SipError(f"{media} without a boundary", field="Content-Type")
    # The stdlib MIME parser reads the parts; SIP bodies are MIME (RFC 5621).
    doc = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body)
    fatal = [d for d in doc.defects if type(d).__name__ in
             ("NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect", "MultipartInvariantViolationDefect")]
    if fatal or not doc.is_multipart():
        raise SipError(f"the {media} body has no parts delimited by its boundary")
    texts: list[str] = []
    pidf: dict[str, bytes] = {}
    known = 0
    for part in doc.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if kind == "text/plain":
            texts.append(_decode_text(payload, part.get_content_charset()))
            known += 1
        elif kind == "application/pidf+xml":
            cid = str(part.get("Content-ID", "")).strip().strip("<>").strip()
            pidf[cid] = payload
            known += 1
    if not known:
        raise SipError(f"no text/plain or application/pidf+xml part in the {media} body", 415,
                       headers=error_headers(415))
    return Body("\n".join(t.strip() for t in texts if t.strip()), pidf, media)


def geolocation_refs(request: SipRequest) -> list[str]:
    """The URIs of the Geolocation header (RFC 6442 §4.1), in order."""
    return [address_uri(v) for v in request.values("Geolocation") if v.strip()]


def chosen_pidf(request: SipRequest, body: Body) -> tuple[bytes | None, str | None]:
    """The PIDF-LO the Geolocation header points at; without the header, the first one in the body."""
    refs = geolocation_refs(request)
    for ref in refs:
        if ref.lower().startswith("cid:"):
            cid = urllib.parse.unquote(ref[4:])  # RFC 2392: cid: URLs are %-encoded Content-IDs
            if cid in body.pidf:
                return body.pidf[cid], None
            return None, f"Geolocation {ref} names no body part"
    if refs:
        return None, f"location by reference ({refs[0]}) is not dereferenced"
    if body.pidf:
        return next(iter(body.pidf.values())), None
    return None, None


# --- PIDF-LO -------------------------------------------------------------------------------------

NS: Final[Mapping[str, str]] = {
    "pidf": "urn:ietf:params:xml:ns:pidf",
    "dm": "urn:ietf:params:xml:ns:pidf:data-model",
    "gp": "urn:ietf:params:xml:ns:pidf:geopriv10",
    "gml": "http://www.opengis.net/gml",
    "gs": "http://www.opengis.net/pidflo/1.0",
    "ca": "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr",
}
#: EPSG 4326 is 2-D (lat lon), 4979 is 3-D (lat lon height): RFC 5491 §3 allows these two.
CRS_DIMENSIONS: Final[Mapping[str, int]] = {"urn:ogc:def:crs:EPSG::4326": 2, "urn:ogc:def:crs:EPSG::4979": 3}
METRES: Final = "urn:ogc:def:uom:EPSG::9001"


def _q(prefix: str, local: str) -> str:
    return f"{{{NS[prefix]}}}{local}"


@dataclass(frozen=True, slots=True)
class PidfLocation:
    location: Location
    shape: str  # 'Point', 'Circle', 'Sphere'
    method: str | None  # gp:method: 'GPS', 'Cell', 'Manual', ...


def _position(shape: Element) -> tuple[float, float]:
    crs = shape.get("srsName") or "urn:ogc:def:crs:EPSG::4326"
    dimensions = CRS_DIMENSIONS.get(crs)
    if dimensions is None:
        raise LocationError(f"coordinate reference system {crs} is not EPSG 4326 or 4979")
    pos = shape.find(_q("gml", "pos"))
    if pos is None or not (pos.text or "").strip():
        raise LocationError(f"{shape.tag} without gml:pos")
    try:
        numbers = [float(x) for x in (pos.text or "").split()]
    except ValueError as exc:
        raise LocationError(f"gml:pos {pos.text!r} is not numbers") from exc
    if len(numbers) != dimensions:
        raise LocationError(f"gml:pos has {len(numbers)} numbers, {crs} needs {dimensions}")
    lat, lon = numbers[0], numbers[1]  # EPSG order: latitude first
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        raise LocationError(f"gml:pos {lat} {lon} is not a latitude and a longitude")
    return lat, lon


def _radius(shape: Element) -> float:
    radius = shape.find(_q("gs", "radius"))
    if radius is None:
        raise LocationError("gs:radius is missing")
    if radius.get("uom") != METRES:
        raise LocationError(f"gs:radius uom {radius.get('uom')!r} is not metres ({METRES})")
    try:
        value = float(radius.text or "")
    except ValueError as exc:
        raise LocationError(f"gs:radius {radius.text!r} is not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise LocationError(f"gs:radius {value} must be a finite number >= 0")
    return value


def _timestamp(element: Element) -> datetime | None:
    for tag in (_q("dm", "timestamp"), _q("pidf", "timestamp")):
        found = element.find(tag)
        if found is not None and found.text:
            try:
                when = datetime.fromisoformat(found.text.strip().replace("Z", "+00:00"))
            except ValueError:
                return None
            return when if when.tzinfo is not None else None
    return None


def parse_pidf_lo(document: bytes) -> PidfLocation:
    """The first geodetic shape of a PIDF-LO (RFC 4119, RFC 5491 §3) in document order."""
    try:
        root = SafeElementTree.fromstring(document, forbid_dtd=True)
    except (SafeElementTree.ParseError, DefusedXmlException) as exc:
        raise LocationError(f"the PIDF-LO is not safe, well-formed XML: {exc}") from exc
    if root.tag != _q("pidf", "presence"):
        raise LocationError(f"the PIDF-LO root is {root.tag}, not pidf presence")
    problems: list[str] = []
    civic = False
    # tuple / dm:device / dm:person each carry their own timestamp next to their geopriv
    for holder in root:
        for info in holder.iter(_q("gp", "location-info")):
            for shape in info:
                name = shape.tag.rsplit("}", 1)[-1]
                try:
                    if shape.tag == _q("gml", "Point"):
                        lat, lon = _position(shape)
                        accuracy = POINT_ACCURACY_M
                    elif shape.tag in (_q("gs", "Circle"), _q("gs", "Sphere")):
                        lat, lon = _position(shape)
                        accuracy = _radius(shape)
                    elif shape.tag == _q("ca", "civicAddress"):
                        civic = True
                        continue
                    else:
                        problems.append(f"shape {name} is not read")
                        continue
                except LocationError as exc:
                    problems.append(str(exc))
                    continue
                method = holder.find(f".//{_q('gp', 'method')}")
                method_text = (method.text or "").strip() if method is not None else ""
                return PidfLocation(
                    Location(lat, lon, accuracy, LocationSource.PIDF_LO, observed_at=_timestamp(holder)),
                    name, method_text or None)
    if problems:
        raise LocationError("; ".join(problems))
    if civic:
        raise LocationError("only a civic address, which is not geocoded")
    raise LocationError("no location-info in the PIDF-LO")


# --- the report ------------------------------------------------------------------------------------

#: Headers each hop rewrites: left out of the stored message, so the same MESSAGE resent along another
#: path (new Via branch, fewer Max-Forwards) is still recognised as the same report.
HOP_HEADERS: Final = frozenset({"via", "max-forwards", "route", "record-route"})


def end_to_end(request: SipRequest) -> str:
    """The request as its sender wrote it, for the record: start line, end-to-end headers, body."""
    lines = [f"{request.method} {request.uri} {request.version}"]
    lines += [f"{name}: {value}" for name, value in request.headers if name.lower() not in HOP_HEADERS]
    text = "\r\n".join(lines) + "\r\n\r\n" + request.body.decode("utf-8", errors="replace")
    return text.replace("\x00", "")


def report_from_message(request: SipRequest, *, received_at: datetime,
                        numbers: frozenset[str] = DEFAULT_NUMBERS) -> ReportIn:
    """A MESSAGE to an emergency target → one ReportIn (channel_ref "<Call-ID>:<CSeq number>")."""
    if request.method != "MESSAGE":
        raise SipError(f"{request.method} is not MESSAGE", 405, headers=error_headers(405))
    cseq = check_request(request)
    dest = target(request, numbers)
    body = read_body(request)
    phone, identity = caller(request)
    document, location_error = chosen_pidf(request, body)
    found: PidfLocation | None = None
    if document is not None:
        try:
            found = parse_pidf_lo(document)
        except LocationError as exc:
            location_error = str(exc)
    location = found.location if found else None
    if location is not None and location.observed_at is None:
        location = replace(location, observed_at=received_at)
    if not body.text.strip() and location is None and dest.category_hint is None:
        raise SipError("the MESSAGE carries no text and no location" +
                       (f" ({location_error})" if location_error else ""))
    call_id = request.header("Call-ID") or ""
    # reports.channel_ref holds 255 characters; a Call-ID has no length limit (RFC 3261 §20.8)
    ref_id = call_id if len(call_id) <= MAX_CALL_ID else "sha256:" + hashlib.sha256(call_id.encode()).hexdigest()
    raw: dict[str, Any] = {
        "request_uri": request.uri,
        "from": request.header("From"),
        "to": request.header("To"),
        "call_id": call_id,
        "cseq": request.header("CSeq"),
        "p_asserted_identity": request.values("P-Asserted-Identity") or None,
        "content_type": body.content_type,
        "geolocation": geolocation_refs(request) or None,
        "service": dest.service,
        "number": dest.number,
        "location_shape": found.shape if found else None,
        "location_method": found.method if found else None,
        "location_error": location_error,
        "message": end_to_end(request),
    }
    return ReportIn(
        channel=NAME,
        channel_ref=f"{ref_id}:{cseq}",
        received_at=received_at,
        text=body.text,
        phone=phone,
        reporter_id=identity,
        location=location,
        category_hint=dest.category_hint,
        dialled_number=dest.number,
        raw={k: v for k, v in raw.items() if v is not None},
    )


# --- one request in, what to answer ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handling:
    """What the listener does with one message: send `response` now, or store `report` and then answer 200."""

    request: SipRequest | None
    response: bytes | None = None
    report: ReportIn | None = None
    reason: str | None = None  # why it was refused or dropped, for the log


_SALVAGE: Final = frozenset({"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"})


def salvage(data: bytes) -> SipRequest | None:
    """The headers a 400 needs, from a request too broken to parse; None when a response cannot be addressed."""
    head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.replace("\r\n", "\n").split("\n")
    match = _REQUEST_LINE.match(lines[0].strip())
    if match is None:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and name.lower() in _SALVAGE and not _CONTROL.search(value):
            headers.append((COMPACT_HEADERS.get(name.lower(), name), value.strip()))
    request = SipRequest(match.group(1).upper(), match.group(2), match.group(3), tuple(headers), b"")
    return request if request.lines("Via") and request.method != "ACK" else None


def handle(data: bytes, *, received_at: datetime, numbers: frozenset[str] = DEFAULT_NUMBERS,
           stream: bool = False, source: tuple[str, int] | None = None) -> Handling:
    """RFC 3261 UAS rules for the few requests this door takes; pure, so every branch is a unit test."""
    try:
        request = parse_request(data, stream=stream)
    except SipError as exc:
        broken = salvage(data)
        if broken is None:
            return Handling(None, reason=f"dropped: {exc.message}")
        return Handling(broken, build_response(broken, 400, source=source), reason=exc.message)

    def answer(status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> Handling:
        if not request.lines("Via"):
            return Handling(request, reason=f"dropped (no Via to answer to): {reason}")
        return Handling(request, build_response(request, status, headers=headers, source=source), reason=reason or None)

    if request.method == "ACK":
        return Handling(request, reason="an ACK is never answered")
    try:
        check_request(request)
    except SipError as exc:
        return answer(400, exc.message)
    if request.version != "SIP/2.0":
        return answer(505, f"{request.version} is not SIP/2.0")
    required = request.values("Require")
    if required:  # RFC 3261 §8.2.2.3: we support no extension a request could require
        return answer(420, f"extensions required: {', '.join(required)}", [("Unsupported", ", ".join(required))])
    if request.method == "OPTIONS":
        return answer(200, "", [("Allow", ALLOW), ("Accept", ACCEPT)])
    if request.method == "CANCEL":
        return answer(481, "CANCEL of a transaction we do not have")
    if request.method != "MESSAGE":
        return answer(405, f"{request.method} is not taken here", error_headers(405))
    try:
        report = report_from_message(request, received_at=received_at, numbers=numbers)
    except SipError as exc:
        return answer(exc.sip_status, exc.message, exc.headers)
    return Handling(request, report=report)
