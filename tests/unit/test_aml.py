"""The AML parser (ETSI TS 103 625 SMS, Android ELS SMS and HTTPS), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intake.channels import aml
from intake.core.model import LocationSource
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized

FIXTURES = Path(__file__).parent.parent / "fixtures" / "aml"
KEY = "aml-test-key-7d3c2a91"
SMS_FIXTURES = sorted(FIXTURES.glob("sms__*.txt"))


def with_ml(body: str) -> str:
    """Append the ml attribute: the length of the whole message, its own digits included."""
    for digits in (2, 3):
        total = len(body) + len(";ml=") + digits
        if len(str(total)) == digits:
            return f"{body};ml={total}"
    raise ValueError(body)


def sms_body(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text().rstrip("\n")


def http_fixture(name: str) -> Inbound:
    head, _, body = (FIXTURES / f"{name}.http").read_bytes().partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return Inbound(body=body, headers=headers, url="https://intake.example.vn/webhooks/aml",
                   received_at=datetime(2026, 11, 22, 8, 0, 5, tzinfo=UTC))


@pytest.mark.parametrize("path", SMS_FIXTURES, ids=lambda p: p.stem)
def test_every_sms_fixture(path: Path) -> None:
    body = path.read_text()
    assert aml.is_aml_sms(body)
    if "malformed" in path.stem:
        with pytest.raises(PayloadError):
            aml.parse_sms(body)
        return
    message = aml.parse_sms(body)
    assert message.version == (2 if "__v2" in path.stem else 1)
    if "no_location" in path.stem:
        assert message.fix is None
    else:
        assert message.fix is not None and message.fix.accuracy_m > 0


def test_v1_gnss_fix_is_read_field_by_field() -> None:
    message = aml.parse_sms(sms_body("sms__v1_gnss"))
    fix = message.fix
    assert fix is not None
    assert (fix.lat, fix.lon, fix.accuracy_m) == (21.03412, 105.85067, 12.0)
    assert fix.method == aml.Method.GNSS and fix.source == LocationSource.GPS
    assert fix.observed_at == datetime(2026, 11, 22, 8, 0, 4, tzinfo=UTC)
    assert fix.confidence_pct == 68
    assert message.attributes["mcc"] == "452" and message.attributes["ei"] == "356938035643809"
    location = fix.location()
    assert location.source == LocationSource.AML and location.accuracy_m == 12.0
    assert location.observed_at == fix.observed_at


def test_v1_signed_degrees_west_of_greenwich_and_wifi() -> None:
    fix = aml.parse_sms(sms_body("sms__v1_uk_wifi")).fix
    assert fix is not None
    assert (fix.lat, fix.lon, fix.accuracy_m) == (54.76397, -0.18305, 50.0)
    assert fix.source == LocationSource.WIFI
    assert fix.observed_at == datetime(2013, 7, 17, 14, 19, 35, tzinfo=UTC)


def test_v2_els_beta_reads_lo_and_times_the_fix_from_the_call() -> None:
    message = aml.parse_sms(sms_body("sms__v2_els_beta"))
    fix = message.fix
    assert message.version == 2 and fix is not None
    assert (fix.lat, fix.lon, fix.accuracy_m) == (21.03398, 105.85101, 9.6)
    assert fix.method == aml.Method.FUSED and fix.source == LocationSource.UNKNOWN
    call_at = datetime.fromtimestamp(int(message.attributes["et"]), UTC)
    assert fix.observed_at == call_at + timedelta(seconds=6)
    assert message.attributes["lg"] == "vi-VN"  # in v2, lg is the languages, not the longitude


def test_v2_accuracy_zero_means_unknown() -> None:
    fix = aml.parse_sms('A"ML=2;en=112;et=1795334400;lo=21.03398,105.85101,0;ls=G')
    assert fix.fix is not None and fix.fix.accuracy_m == aml.UNKNOWN_ACCURACY_M


def test_ml_must_match_the_length_of_the_message() -> None:
    body = sms_body("sms__v1_gnss")
    assert body.endswith(f";ml={len(body)}")
    with pytest.raises(PayloadError) as caught:
        aml.parse_sms(body[:-3] + str(len(body) + 1))
    assert caught.value.field == "ml" and "cut or joined" in caught.value.message


def test_a_message_cut_before_ml_is_rejected() -> None:
    with pytest.raises(PayloadError) as caught:
        aml.parse_sms(sms_body("sms__malformed_missing_ml"))
    assert caught.value.field == "ml"


def test_the_els_documentation_location_example_is_one_character_off() -> None:
    # Android's ELS SMS page shows this "location computed" message with ml=126; it is 127 characters
    # (its lg was shortened by hand). A message whose length does not add up is refused, as a cut one is.
    body = ('A"ML=1;lt=+51.53321;lg=-0.12601;rd=14;top=20220131171748;lc=68;pm=W;si=234159000000000;'
            'ei=123456789012345;mcc=234;mnc=15;ml=126')
    assert len(body) == 127
    with pytest.raises(PayloadError):
        aml.parse_sms(body)
    assert aml.parse_sms(body[:-3] + "127").fix is not None


@pytest.mark.parametrize(("good", "bad"), [
    ("lt=+21.03412", "lt=+91.00000"),
    ("lg=+105.85067", "lg=+181.00000"),
    ("rd=12", "rd=-12"),
    ("top=20261122080004", "top=2026112208"),
    ("lc=68", "lc=168"),
    ('A"ML=1', 'A"ML=3'),
])
def test_out_of_range_or_misshapen_values_are_refused(good: str, bad: str) -> None:
    body = sms_body("sms__v1_gnss").rsplit(";ml=", 1)[0].replace(good, bad)
    with pytest.raises(PayloadError):
        aml.parse_sms(with_ml(body))
    assert aml.parse_sms(with_ml(sms_body("sms__v1_gnss").rsplit(";ml=", 1)[0])).fix is not None


def test_attributes_must_be_key_value_pairs_once_each() -> None:
    with pytest.raises(PayloadError, match="twice"):
        aml.parse_sms('A"ML=2;lo=21.0,105.8,10;lo=21.0,105.8,10')
    with pytest.raises(PayloadError, match="key=value"):
        aml.parse_sms('A"ML=2;;lo=21.0,105.8,10')


def test_an_unknown_method_letter_keeps_the_position() -> None:
    fix = aml.parse_sms(with_ml('A"ML=1;lt=+21.03412;lg=+105.85067;rd=30;pm=X')).fix
    assert fix is not None and fix.method == aml.Method.UNKNOWN and fix.source == LocationSource.UNKNOWN


def test_an_ordinary_sms_is_not_aml() -> None:
    assert not aml.is_aml_sms("AML là gì? Nhà tôi đang cháy")
    assert not aml.is_aml_sms('Tin nhắn có A"ML=1 ở giữa')
    with pytest.raises(PayloadError):
        aml.parse_sms("Cháy nhà")


def test_https_els_form_is_read() -> None:
    message = aml.parse_https(http_fixture("https__gps").body)
    fix = message.fix
    assert message.device_number == "+84912345678" and fix is not None
    assert (fix.lat, fix.lon, fix.accuracy_m) == (21.0341235, 105.8506712, 9.6)
    assert fix.source == LocationSource.GPS and fix.confidence_pct == 68.27
    assert fix.observed_at == datetime(2026, 11, 22, 8, 0, 4, 512000, tzinfo=UTC)
    assert message.fields["device_model"] == "Pixel 8"


def test_https_without_a_position_carries_no_fix() -> None:
    assert aml.parse_https(http_fixture("https__no_location").body).fix is None


@pytest.mark.parametrize(("name", "field"), [
    ("https__malformed_latitude", "location_latitude"),
    ("https__malformed_no_device_number", "device_number"),
])
def test_https_malformed_fields_are_named(name: str, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        aml.parse_https(http_fixture(name).body)
    assert caught.value.field == field


def test_https_rejects_other_versions_and_repeated_fields() -> None:
    with pytest.raises(PayloadError, match="version"):
        aml.parse_https(b"v=2&device_number=%2B84912345678")
    with pytest.raises(PayloadError, match="twice"):
        aml.parse_https(b"device_number=%2B84912345678&device_number=%2B84912345679")


def test_https_signature() -> None:
    aml.verify_https(http_fixture("https__gps"), KEY)
    with pytest.raises(Forbidden):
        aml.verify_https(http_fixture("https__forged_signature"), KEY)
    with pytest.raises(Unauthorized):
        aml.verify_https(http_fixture("https__unsigned"), KEY)
    signed = http_fixture("https__gps")
    tampered = Inbound(body=signed.body.replace(b"21.0341235", b"21.0441235"), headers=signed.headers,
                       url=signed.url, received_at=signed.received_at)
    with pytest.raises(Forbidden):
        aml.verify_https(tampered, KEY)
