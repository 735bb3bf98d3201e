"""telegram.parse over every fixture in tests/fixtures/telegram (expectations in expected.toml), and verify."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from intake.channels import telegram
from intake.channels.chat import Kind
from intake.core.model import LocationSource
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized
from tests.conftest import T0

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((FIXTURES / "expected.toml").read_text())
SECRET = "s3cr3t-Token_for-webhook"


def inbound(body: bytes, headers: dict[str, str] | None = None) -> Inbound:
    return Inbound(body=body, headers=headers or {}, url="https://intake.example/webhooks/telegram", received_at=T0)


def test_every_fixture_has_an_expectation() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.name != "expected.toml"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    want = EXPECTED[name]
    body = (FIXTURES / name).read_bytes()
    if want["kind"] == "error":
        with pytest.raises(PayloadError) as err:
            telegram.parse(inbound(body))
        if "field" in want:
            assert err.value.field == want["field"]
        return
    events = telegram.parse(inbound(body))
    if want["kind"] == "none":
        assert events == []
        return
    (event,) = events
    report = event.report
    assert event.kind is Kind(want["kind"])
    assert report.channel == "telegram" and report.channel_ref == want["ref"]
    assert report.reporter_id == want["ref"].split(":")[0]
    assert report.received_at == T0
    assert report.raw == json.loads(body)  # kept as received, for the record
    if "text" in want:
        assert report.text == want["text"]
    if "language" in want:
        assert report.language == want["language"]
    if "reporter_name" in want:
        assert report.reporter_name == want["reporter_name"]
    if "location" in want:
        loc = report.location
        assert loc is not None and loc.source is LocationSource.GPS
        assert [loc.lat, loc.lon, loc.accuracy_m] == pytest.approx(want["location"])
    else:
        assert report.location is None
    if "label" in want:
        assert report.location is not None and report.location.label == want["label"]
    assert [a["type"] for a in report.attachments] == want.get("attachments", [])


def test_photo_keeps_the_largest_size_by_file_id() -> None:
    (event,) = telegram.parse(inbound((FIXTURES / "message__photo_caption.json").read_bytes()))
    (photo,) = event.report.attachments
    assert photo["width"] == 1280 and photo["telegram_file_id"].endswith("A3kAAzYE")


def test_voice_is_kept_and_marked_as_not_transcribed() -> None:
    (event,) = telegram.parse(inbound((FIXTURES / "message__voice.json").read_bytes()))
    (voice,) = event.report.attachments
    assert voice["transcribed"] is False and voice["mime_type"] == "audio/ogg" and voice["duration_s"] == 6


def test_live_location_edit_is_observed_at_its_edit_date() -> None:
    (event,) = telegram.parse(inbound((FIXTURES / "edited_message__live_location.json").read_bytes()))
    assert event.report.location is not None and event.report.location.observed_at is not None
    assert int(event.report.location.observed_at.timestamp()) == 1795334530


def test_verify_takes_the_right_secret_only() -> None:
    telegram.verify(inbound(b"{}", {telegram.SECRET_HEADER: SECRET}), SECRET)
    with pytest.raises(Unauthorized):
        telegram.verify(inbound(b"{}"), SECRET)
    with pytest.raises(Forbidden):
        telegram.verify(inbound(b"{}", {telegram.SECRET_HEADER: SECRET + "x"}), SECRET)
    with pytest.raises(Forbidden):
        telegram.verify(inbound(b"{}", {telegram.SECRET_HEADER: "ç"}), SECRET)


def test_an_update_of_a_kind_telegram_adds_later_is_ignored_but_logged(caplog: pytest.LogCaptureFixture) -> None:
    body = b'{"update_id": 734502199, "story_reaction": {"chat": {"id": 1, "type": "private"}}}'
    assert telegram.parse(inbound(body)) == []
    assert "unknown kind" in caplog.text
    caplog.clear()
    assert telegram.parse(inbound((FIXTURES / "my_chat_member__blocked.json").read_bytes())) == []
    assert caplog.text == ""
