"""zalo.parse over every fixture in tests/fixtures/zalo (expectations in expected.toml), and the signature."""

from __future__ import annotations

import hashlib
import json
import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest

from intake.channels import zalo
from intake.channels.chat import Kind
from intake.core.model import LocationSource
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized
from tests.conftest import T0

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zalo"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((FIXTURES / "expected.toml").read_text())
APP_ID = "3601284750183927461"
OA_SECRET = "Yq2bN7xKp4Lm9Rt1Vw6Z"


def inbound(body: bytes, headers: dict[str, str] | None = None) -> Inbound:
    return Inbound(body=body, headers=headers or {}, url="https://intake.example/webhooks/zalo", received_at=T0)


def test_every_fixture_has_an_expectation() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.name != "expected.toml"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str, caplog: pytest.LogCaptureFixture) -> None:
    want = EXPECTED[name]
    body = (FIXTURES / name).read_bytes()
    if want["kind"] == "error":
        with pytest.raises(PayloadError) as err:
            zalo.parse(inbound(body))
        if "field" in want:
            assert err.value.field == want["field"]
        return
    with caplog.at_level(logging.WARNING, logger="intake.channels.zalo"):
        events = zalo.parse(inbound(body))
    assert bool(caplog.records) == want.get("logged", False)
    if want["kind"] == "none":
        assert events == []
        return
    (event,) = events
    report = event.report
    data = json.loads(body)
    assert event.kind is Kind(want["kind"])
    assert report.channel == "zalo" and report.channel_ref == want["ref"]
    assert report.reporter_id == data["sender"]["id"]
    assert report.received_at == T0 and report.raw == data
    if "text" in want:
        assert report.text == want["text"]
    if "location" in want:
        loc = report.location
        assert loc is not None and loc.source is LocationSource.GPS
        assert [loc.lat, loc.lon, loc.accuracy_m] == pytest.approx(want["location"])
    else:
        assert report.location is None
    assert [a["type"] for a in report.attachments] == want.get("attachments", [])


def test_audio_is_kept_by_url_and_marked_as_not_transcribed() -> None:
    (event,) = zalo.parse(inbound((FIXTURES / "user_send_audio__voice.json").read_bytes()))
    (audio,) = event.report.attachments
    assert audio["url"].endswith(".aac") and audio["transcribed"] is False


def test_signature_is_plain_sha256_of_app_id_body_timestamp_and_oa_secret() -> None:
    body = (FIXTURES / "user_send_text__fire.json").read_bytes()
    mac = hashlib.sha256(f"{APP_ID}{body.decode()}1795334400123{OA_SECRET}".encode()).hexdigest()
    assert zalo.signature(APP_ID, body, "1795334400123", OA_SECRET) == f"mac={mac}"
    zalo.verify(inbound(body, {zalo.SIGNATURE_HEADER: f"mac={mac}"}), APP_ID, OA_SECRET)


def test_a_forged_or_missing_signature_is_refused() -> None:
    body = (FIXTURES / "user_send_text__fire.json").read_bytes()
    good = zalo.signature(APP_ID, body, "1795334400123", OA_SECRET)
    with pytest.raises(Unauthorized):
        zalo.verify(inbound(body), APP_ID, OA_SECRET)
    with pytest.raises(Forbidden):
        zalo.verify(inbound(body, {zalo.SIGNATURE_HEADER: "mac=" + "0" * 64}), APP_ID, OA_SECRET)
    tampered = body.replace("Hàng Bạc".encode(), "Hàng Bồ".encode())
    with pytest.raises(Forbidden):
        zalo.verify(inbound(tampered, {zalo.SIGNATURE_HEADER: good}), APP_ID, OA_SECRET)
    with pytest.raises(Forbidden):  # signed with the app secret or another OA's key
        zalo.verify(inbound(body, {zalo.SIGNATURE_HEADER: good}), APP_ID, OA_SECRET + "x")
