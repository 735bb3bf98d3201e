"""SIP MESSAGE door, pure part: SIP parsing and answers, targets, callers, bodies, PIDF-LO."""

from __future__ import annotations

import base64
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from intake.channels import sip_listener
from intake.channels.sip_message import (
    DEFAULT_NUMBERS,
    LocationError,
    SipError,
    Target,
    build_response,
    caller,
    handle,
    message_length,
    parse_numbers,
    parse_pidf_lo,
    parse_request,
    report_from_message,
    target_of,
)
from intake.config import ConfigError, Settings
from intake.core.model import Category, LocationSource

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sip"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((FIXTURES / "expected.toml").read_text())
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SOURCE = ("127.0.0.1", 5062)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def header_lines(response: bytes) -> list[str]:
    return response.decode().split("\r\n")


def sip(start: str, headers: list[str], body: str | bytes = b"") -> bytes:
    """A request with CRLF line ends and its exact Content-Length."""
    data = body.encode() if isinstance(body, str) else body
    return ("\r\n".join([start, *headers, f"Content-Length: {len(data)}"]) + "\r\n\r\n").encode() + data


BASE = [
    "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKu1",
    "From: <sip:+84912345678@ims.example.vn>;tag=a1",
    "To: <urn:service:sos>",
    "Call-ID: unit-1@198.51.100.7",
    "CSeq: 5 MESSAGE",
]


def message(body: str | bytes, content_type: str | None = "text/plain", extra: tuple[str, ...] = (),
            uri: str = "urn:service:sos") -> bytes:
    headers = [*BASE, *extra] + ([f"Content-Type: {content_type}"] if content_type else [])
    return sip(f"MESSAGE {uri} SIP/2.0", headers, body)


# --- the fixtures folder ----------------------------------------------------------------------------

SIP_FILES = sorted(FIXTURES.glob("*.sip"))


def test_every_fixture_has_an_expectation_and_crlf_line_ends() -> None:
    assert {f.name for f in SIP_FILES} == set(EXPECTED)
    for f in SIP_FILES:
        data = f.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b""), f"{f.name}: a bare LF in the headers"


@pytest.mark.parametrize("path", SIP_FILES, ids=lambda p: p.name)
def test_fixture(path: Path) -> None:
    want = EXPECTED[path.name]
    handling = handle(path.read_bytes(), received_at=NOW, source=SOURCE)
    if want["reports"]:
        report = handling.report
        assert report is not None and handling.response is None  # the 200 waits for the store
        assert report.channel == "sip" and report.text == want["text"] and report.phone == want["phone"]
        assert report.dialled_number == want.get("dialled_number")
        assert (report.category_hint.value if report.category_hint else None) == want.get("category_hint")
        loc = want.get("location")
        if loc is None:
            assert report.location is None
        else:
            assert report.location is not None and report.location.source is LocationSource.PIDF_LO
            assert (report.location.lat, report.location.lon, report.location.accuracy_m) == (
                loc["lat"], loc["lon"], loc["accuracy_m"])
    else:
        assert handling.report is None and handling.response is not None
        assert status_of(handling.response) == want["status"]
        if "header" in want:
            assert want["header"] in header_lines(handling.response)


# --- parsing ------------------------------------------------------------------------------------------


def test_compact_headers_and_folded_lines_are_read() -> None:
    data = sip("MESSAGE urn:service:sos SIP/2.0", [
        "v: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKc", "f: <tel:+84912345678>;tag=1", "t: <urn:service:sos>",
        "i: compact@x", "CSeq: 1", " MESSAGE", "c: text/plain"], "Cứu")
    request = parse_request(data)
    assert request.header("Call-ID") == "compact@x" and request.header("CSeq") == "1 MESSAGE"
    assert request.header("Content-Type") == "text/plain" and request.body == "Cứu".encode()


def test_the_body_ends_at_content_length_and_a_short_body_is_400() -> None:
    data = message("Cháy")
    assert parse_request(data + b"trailing junk").body == "Cháy".encode()
    with pytest.raises(SipError) as err:
        parse_request(data[:-2])
    assert err.value.sip_status == 400 and err.value.field == "Content-Length"


def test_a_body_without_content_length_is_400_over_tcp_only() -> None:
    data = re.sub(rb"Content-Length: \d+\r\n", b"", message("Cháy"))
    assert parse_request(data).body == "Cháy".encode()
    with pytest.raises(SipError, match="required over TCP"):
        parse_request(data, stream=True)


@pytest.mark.parametrize("bad", [
    b"MESSAGE urn:service:sos SIP/2.0\r\nVia SIP/2.0/UDP x\r\n\r\n",  # no colon
    b"MESSAGE urn:service:sos SIP/2.0\r\nSubject: a\x00b\r\n\r\n",  # control character
    b"MESSAGE urn:service:sos\r\nVia: SIP/2.0/UDP x\r\n\r\n",  # no version
    b"\xff\xfe garbage",
])
def test_unparseable_requests_raise(bad: bytes) -> None:
    with pytest.raises(SipError):
        parse_request(bad)


@pytest.mark.parametrize(("cseq", "error"), [("MESSAGE 1", "not 'number METHOD'"), ("1 INVITE", "differs"),
                                             ("42949672960 MESSAGE", "not 'number METHOD'"),
                                             ("2147483648 MESSAGE", "below 2")])
def test_a_bad_cseq_is_400(cseq: str, error: str) -> None:
    data = message("Cứu").replace(b"CSeq: 5 MESSAGE", f"CSeq: {cseq}".encode())
    handling = handle(data, received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 400
    assert handling.reason is not None and error in handling.reason


def test_a_missing_mandatory_header_is_400() -> None:
    data = message("Cứu").replace(b"Call-ID: unit-1@198.51.100.7\r\n", b"")
    handling = handle(data, received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 400
    assert handling.reason == "the Call-ID header is missing"


# --- answers --------------------------------------------------------------------------------------------


def test_a_response_copies_the_transaction_headers_and_tags_to() -> None:
    data = message("Cứu", extra=("Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKproxy",))
    request = parse_request(data)
    lines = header_lines(build_response(request, 200))
    assert lines[0] == "SIP/2.0 200 OK"
    assert lines[1:3] == ["Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKu1",
                          "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKproxy"]  # all, in order
    assert "From: <sip:+84912345678@ims.example.vn>;tag=a1" in lines
    assert any(line.startswith("To: <urn:service:sos>;tag=") for line in lines)
    assert "Call-ID: unit-1@198.51.100.7" in lines and "CSeq: 5 MESSAGE" in lines
    assert lines[-3:] == ["Content-Length: 0", "", ""]
    assert build_response(parse_request(data), 200) == build_response(request, 200)  # a retransmission: same tag


def test_an_existing_to_tag_is_kept() -> None:
    request = parse_request(message("Cứu").replace(b"To: <urn:service:sos>", b"To: <urn:service:sos>;tag=given"))
    lines = header_lines(build_response(request, 200))
    assert "To: <urn:service:sos>;tag=given" in lines


def test_rport_is_filled_with_the_source_address() -> None:
    data = message("Cứu").replace(b"branch=z9hG4bKu1", b"branch=z9hG4bKu1;rport")
    lines = header_lines(build_response(parse_request(data), 200, source=("10.9.8.7", 40123)))
    assert lines[1] == "Via: SIP/2.0/UDP 198.51.100.7:5060;received=10.9.8.7;branch=z9hG4bKu1;rport=40123"


@pytest.mark.parametrize(("start", "cseq", "status", "header"), [
    ("OPTIONS sip:intake@127.0.0.1 SIP/2.0", "1 OPTIONS", 200, "Allow: MESSAGE, OPTIONS"),
    ("INVITE urn:service:sos SIP/2.0", "1 INVITE", 405, "Allow: MESSAGE, OPTIONS"),
    ("SUBSCRIBE sip:intake@127.0.0.1 SIP/2.0", "1 SUBSCRIBE", 405, "Allow: MESSAGE, OPTIONS"),
    ("CANCEL urn:service:sos SIP/2.0", "1 CANCEL", 481, None),
    ("MESSAGE urn:service:sos SIP/3.0", "1 MESSAGE", 505, None),
])
def test_other_methods(start: str, cseq: str, status: int, header: str | None) -> None:
    data = sip(start, [*BASE[:4], f"CSeq: {cseq}"])
    handling = handle(data, received_at=NOW)
    assert handling.report is None and handling.response is not None
    assert status_of(handling.response) == status
    if header:
        assert header in header_lines(handling.response)


def test_an_ack_and_a_response_are_never_answered() -> None:
    ack = sip("ACK urn:service:sos SIP/2.0", [*BASE[:4], "CSeq: 1 ACK"])
    assert handle(ack, received_at=NOW).response is None
    assert handle(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(x.encode() for x in BASE) + b"\r\n\r\n",
                  received_at=NOW).response is None


def test_a_required_extension_is_420() -> None:
    handling = handle(message("Cứu", extra=("Require: 100rel",)), received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 420
    assert "Unsupported: 100rel" in header_lines(handling.response)


def test_garbage_is_dropped_and_a_broken_request_with_a_via_gets_400() -> None:
    assert handle(b"\x16\x03\x01\x02\x00 TLS hello", received_at=NOW).response is None
    broken = message("Cứu").replace(b"To: <urn:service:sos>", b"To <urn:service:sos>")
    handling = handle(broken, received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 400
    assert "Call-ID: unit-1@198.51.100.7" in header_lines(handling.response)


# --- TCP framing ----------------------------------------------------------------------------------------


def test_content_length_frames_a_stream() -> None:
    one, two = message("Cứu"), message("Cháy").replace(b"CSeq: 5", b"CSeq: 6")
    assert message_length(one[:30]) is None
    assert message_length(one[:-1]) is None
    assert message_length(one + two[:10]) == len(one)
    assert message_length(two) == len(two)
    moved = b"MESSAGE urn:service:sos SIP/2.0\r\nl:  4\r\nX-Content-Length: 9\r\nVia: x\r\n\r\nCu'u"
    assert message_length(moved + b"next") == len(moved)  # compact form, not the last header


def test_a_stream_without_content_length_or_too_large_is_refused() -> None:
    with pytest.raises(SipError, match="required over TCP"):
        message_length(b"MESSAGE urn:service:sos SIP/2.0\r\nVia: x\r\n\r\nbody")
    with pytest.raises(SipError) as err:
        message_length(b"MESSAGE urn:service:sos SIP/2.0\r\nContent-Length: 70000\r\n\r\n")
    assert err.value.sip_status == 413
    with pytest.raises(SipError) as err:
        message_length(b"A" * 70_000)
    assert err.value.sip_status == 413


# --- targets and callers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "expected"), [
    ("urn:service:sos", Target("urn:service:sos", service="sos")),
    ("URN:Service:SOS.Fire", Target("URN:Service:SOS.Fire", service="sos.fire", category_hint=Category.FIRE)),
    ("urn:service:sos.police", Target("urn:service:sos.police", service="sos.police", category_hint=Category.POLICE)),
    ("urn:service:sos.ambulance",
     Target("urn:service:sos.ambulance", service="sos.ambulance", category_hint=Category.MEDICAL)),
    ("urn:service:sos.ambulance.extra",
     Target("urn:service:sos.ambulance.extra", service="sos.ambulance.extra", category_hint=Category.MEDICAL)),
    ("urn:service:sos.unheard-of", Target("urn:service:sos.unheard-of", service="sos.unheard-of")),
    ("urn:service:counseling", None),
    ("urn:service:sosx", None),
    ("sip:112@192.0.2.10;user=phone", Target("sip:112@192.0.2.10;user=phone", number="112")),
    ("tel:114", Target("tel:114", number="114")),
    ("tel:115;phone-context=+84", Target("tel:115;phone-context=+84", number="115")),
    ("sip:999@192.0.2.10", None),
    ("sip:alice@example.vn", None),
    ("not a uri", None),
])
def test_targets(uri: str, expected: Target | None) -> None:
    assert target_of(uri, DEFAULT_NUMBERS) == expected


def test_configured_numbers_replace_the_defaults() -> None:
    numbers = parse_numbers("112, 1080")
    assert target_of("sip:1080@pbx", numbers) == Target("sip:1080@pbx", number="1080")
    assert target_of("tel:114", numbers) is None
    assert parse_numbers(None) == DEFAULT_NUMBERS
    with pytest.raises(ValueError, match="not numbers"):
        parse_numbers("112,abc")


def test_a_proxy_rewritten_request_uri_is_accepted_by_its_to() -> None:
    request = parse_request(message("Cứu", uri="sip:psap@192.0.2.10"))
    report = report_from_message(request, received_at=NOW)
    assert report.raw["service"] == "sos"
    handling = handle(message("Cứu", uri="sip:psap@192.0.2.10").replace(b"To: <urn:service:sos>", b"To: <sip:psap@x>"),
                      received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 404


@pytest.mark.parametrize(("headers", "phone", "identity"), [
    (["From: <sip:+84912345678@ims.example.vn;user=phone>;tag=1"], "+84912345678", None),
    (["From: \"An\" <sip:an@example.vn>;tag=1", "P-Asserted-Identity: <sip:an@example.vn>, <tel:+84-91-234-5678>"],
     "+84912345678", None),
    (["From: sip:0912345678@example.vn;tag=1"], "0912345678", None),
    (["From: <sip:an@Example.VN>;tag=1"], None, "sip:an@example.vn"),
    (["From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1"], None, None),
])
def test_callers(headers: list[str], phone: str | None, identity: str | None) -> None:
    data = sip("MESSAGE urn:service:sos SIP/2.0", [BASE[0], *headers, *BASE[2:]])
    assert caller(parse_request(data)) == (phone, identity)


# --- bodies --------------------------------------------------------------------------------------------

PIDF_POINT = """<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
 xmlns:gml="http://www.opengis.net/gml" entity="pres:a@example.vn">
 <tuple id="t"><status><gp:geopriv><gp:location-info>
  <gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>10.7769 106.7009</gml:pos></gml:Point>
 </gp:location-info><gp:usage-rules/></gp:geopriv></status></tuple>
</presence>"""


def multipart(parts: list[tuple[list[str], str | bytes]], boundary: str = "b1") -> bytes:
    out = b""
    for headers, body in parts:
        data = body.encode() if isinstance(body, str) else body
        out += f"--{boundary}\r\n".encode() + "".join(f"{h}\r\n" for h in headers).encode() + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_nested_multipart_and_base64_parts_are_read() -> None:
    inner = multipart([(["Content-Type: text/plain; charset=UTF-8"], "Có cháy"),
                       (["Content-Type: application/pidf+xml", "Content-ID: <loc1@x>",
                         "Content-Transfer-Encoding: base64"], base64.b64encode(PIDF_POINT.encode()))], "inner")
    body = multipart([(["Content-Type: multipart/related; boundary=inner"], inner),
                      (["Content-Type: image/jpeg"], b"\xff\xd8\xff")], "outer")
    request = parse_request(message(body, "multipart/mixed; boundary=outer", ("Geolocation: <cid:loc1@x>",)))
    report = report_from_message(request, received_at=NOW)
    assert report.text == "Có cháy"
    assert report.location is not None and (report.location.lat, report.location.lon) == (10.7769, 106.7009)
    assert report.location.observed_at == NOW  # the PIDF-LO has no timestamp: when it arrived


def test_a_pidf_lo_without_geolocation_header_is_still_used() -> None:
    body = multipart([(["Content-Type: text/plain"], "Cứu"), (["Content-Type: application/pidf+xml"], PIDF_POINT)])
    report = report_from_message(parse_request(message(body, "multipart/mixed; boundary=b1")), received_at=NOW)
    assert report.location is not None and report.location.lat == 10.7769


def test_a_geolocation_to_a_missing_part_or_by_reference_keeps_the_text() -> None:
    body = multipart([(["Content-Type: text/plain"], "Cứu"), (["Content-Type: application/pidf+xml",
                                                               "Content-ID: <other@x>"], PIDF_POINT)])
    for header, error in [("Geolocation: <cid:missing@x>", "names no body part"),
                          ("Geolocation: <https://lis.example.vn/loc/1>", "not dereferenced")]:
        report = report_from_message(parse_request(message(body, "multipart/mixed; boundary=b1", (header,))),
                                     received_at=NOW)
        assert report.text == "Cứu" and report.location is None and error in report.raw["location_error"]


@pytest.mark.parametrize(("body", "content_type", "status"), [
    ("<p>x</p>", "text/html", 415),
    ("Cứu", None, 415),
    (multipart([(["Content-Type: image/png"], b"\x89PNG")]), "multipart/mixed; boundary=b1", 415),
    ("no parts at all", "multipart/mixed; boundary=b1", 400),
    ("x", "multipart/mixed", 400),
    ("", "text/plain", 400),  # nothing to report
])
def test_bodies_refused(body: str | bytes, content_type: str | None, status: int) -> None:
    handling = handle(message(body, content_type), received_at=NOW)
    assert handling.report is None and handling.response is not None
    assert status_of(handling.response) == status


def test_an_empty_message_to_a_sub_service_is_a_report() -> None:
    report = report_from_message(parse_request(message("", None, uri="urn:service:sos.police")), received_at=NOW)
    assert report.text == "" and report.category_hint is Category.POLICE


def test_the_charset_is_honoured_and_nul_removed() -> None:
    data = message("Cháy\x00 nhà".encode("utf-16"), "text/plain; charset=UTF-16")
    assert report_from_message(parse_request(data), received_at=NOW).text == "Cháy nhà"


def test_a_long_call_id_still_fits_channel_ref() -> None:
    data = message("Cứu").replace(b"unit-1@198.51.100.7", b"x" * 400 + b"@h")
    report = report_from_message(parse_request(data), received_at=NOW)
    assert report.channel_ref.startswith("sha256:") and len(report.channel_ref) < 255


# --- PIDF-LO --------------------------------------------------------------------------------------------

NS = ('xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
      'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
      'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
      'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"')


def pidf(shape: str, extra: str = "") -> bytes:
    return (f'<presence {NS} entity="pres:a@x"><dm:device id="d"><gp:geopriv><gp:location-info>{shape}'
            f"</gp:location-info><gp:method>Cell</gp:method></gp:geopriv>{extra}</dm:device></presence>").encode()


def test_a_circle_is_latitude_first_with_its_radius() -> None:
    found = parse_pidf_lo(pidf(
        '<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>-33.8688 151.2093</gml:pos>'
        '<gs:radius uom="urn:ogc:def:uom:EPSG::9001">850.24</gs:radius></gs:Circle>',
        "<dm:timestamp>2026-11-22T07:59:00Z</dm:timestamp>"))
    assert (found.location.lat, found.location.lon, found.location.accuracy_m) == (-33.8688, 151.2093, 850.24)
    assert found.shape == "Circle" and found.method == "Cell"
    assert found.location.observed_at == datetime(2026, 11, 22, 7, 59, tzinfo=UTC)


def test_a_sphere_in_3d_is_read() -> None:
    found = parse_pidf_lo(pidf(
        '<gs:Sphere srsName="urn:ogc:def:crs:EPSG::4979"><gml:pos>21.03 105.85 12.5</gml:pos>'
        '<gs:radius uom="urn:ogc:def:uom:EPSG::9001">15</gs:radius></gs:Sphere>'))
    assert (found.location.lat, found.location.lon, found.location.accuracy_m) == (21.03, 105.85, 15.0)


def test_the_first_readable_shape_wins() -> None:
    found = parse_pidf_lo(pidf(
        '<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4326"/>'
        '<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>21.0 105.8</gml:pos></gml:Point>'))
    assert found.shape == "Point" and found.location.lat == 21.0


@pytest.mark.parametrize(("document", "error"), [
    (pidf('<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>21 105</gml:pos>'
          '<gs:radius uom="urn:ogc:def:uom:EPSG::9093">3</gs:radius></gs:Circle>'), "not metres"),
    (pidf('<gml:Point srsName="urn:ogc:def:crs:EPSG::3857"><gml:pos>1 2</gml:pos></gml:Point>'), "EPSG 4326"),
    (pidf('<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>105.85 21.03</gml:pos></gml:Point>'),
     "not a latitude"),
    (pidf('<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>21.03</gml:pos></gml:Point>'), "needs 2"),
    (pidf("<ca:civicAddress><ca:country>VN</ca:country></ca:civicAddress>"), "civic address"),
    (pidf('<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4326"/>'), "Polygon is not read"),
    (b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><presence>&b;</presence>',
     "not safe"),
    (b"<presence", "not safe, well-formed"),
    (b'<other xmlns="urn:x"/>', "not pidf presence"),
])
def test_bad_pidf_lo(document: bytes, error: str) -> None:
    with pytest.raises(LocationError, match=error):
        parse_pidf_lo(document)


def test_a_bad_pidf_lo_costs_the_location_not_the_text() -> None:
    body = multipart([(["Content-Type: text/plain"], "Cứu"), (["Content-Type: application/pidf+xml"], "<presence")])
    report = report_from_message(parse_request(message(body, "multipart/mixed; boundary=b1")), received_at=NOW)
    assert report.text == "Cứu" and report.location is None and "not safe" in report.raw["location_error"]


def test_a_bad_pidf_lo_alone_is_400() -> None:
    handling = handle(message("<presence", "application/pidf+xml"), received_at=NOW)
    assert handling.response is not None and status_of(handling.response) == 400
    assert handling.reason is not None and "no text and no location" in handling.reason


# --- settings -------------------------------------------------------------------------------------------


async def _publish(_: object) -> Any:
    raise AssertionError("not called")


def test_the_listener_is_off_until_a_port_is_set() -> None:
    assert sip_listener.from_settings(Settings(), _publish) is None
    listener = sip_listener.from_settings(
        Settings(extra={"sip_message_port": "5070", "sip_message_numbers": "112,114"}), _publish)
    assert listener is not None
    assert (listener.host, listener.port, listener.numbers) == ("127.0.0.1", 5070, frozenset({"112", "114"}))
    with pytest.raises(ConfigError, match="not a port"):
        sip_listener.from_settings(Settings(extra={"sip_message_port": "sip"}), _publish)
    with pytest.raises(ConfigError, match="not numbers"):
        sip_listener.from_settings(Settings(extra={"sip_message_port": "5070", "sip_message_numbers": "1x"}),
                                   _publish)


def test_the_same_message_along_another_path_is_the_same_payload() -> None:
    from intake.core.prepare import payload_digest

    first = message("Cứu")
    resent = first.replace(b"branch=z9hG4bKu1", b"branch=z9hG4bKother").replace(
        b"Via:", b"Max-Forwards: 69\r\nVia:", 1)
    one, two = (report_from_message(parse_request(m), received_at=NOW) for m in (first, resent))
    assert one.channel_ref == two.channel_ref and payload_digest(one) == payload_digest(two)
    assert "Via" not in one.raw["message"] and one.raw["message"].endswith("\r\n\r\nCứu")
