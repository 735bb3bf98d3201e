"""The Telegram door end to end: webhook updates through the aiohttp app, replies to a local Bot API."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from intake.config import Settings
from intake.store import Store
from intake.store.tables import incidents, reports
from intake.web.app import create_app
from tests.conftest import Clock
from tests.fakes.telegram_api import FakeTelegramApi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
TOKEN = "7000000001:AAH3kq9vX2bN8mLp4RtZ1wYc6UeJ0sDfGhQ"
SECRET = "s3cr3t-Token_for-webhook"
CHAT = 5123456789
NO_MODEL = "/nonexistent/vosk-model"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def settings_for(api_url: str) -> Settings:
    # No speech model here: voice notes are kept and the reporter is told so (transcription: test_chat_voice.py).
    return Settings(asr_model=NO_MODEL, extra={"telegram_bot_token": TOKEN, "telegram_webhook_secret": SECRET,
                                               "telegram_api_url": api_url})


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    async with FakeTelegramApi(TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(store: Store, api: FakeTelegramApi, clock: Clock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings_for(api.url), store=store, clock=clock))) as c:
        yield c


async def post(client: TestClient, update: dict[str, Any] | str | bytes, secret: str | None = SECRET
               ) -> tuple[int, dict[str, Any]]:
    if isinstance(update, str):
        update = fixture(update)
    body = update if isinstance(update, bytes) else json.dumps(update, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    resp = await client.post("/webhooks/telegram", data=body, headers=headers)
    return resp.status, await resp.json()


async def all_rows(store: Store, table: Any) -> list[dict[str, Any]]:
    async with store.read() as repo:
        return [dict(r) for r in (await repo.conn.execute(select(table).order_by(table.c.id))).mappings()]


async def test_text_then_shared_location_is_one_fire_report_at_that_location(
        client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    status, body = await post(client, "message__text.json")
    assert status == 200 and body["handled"][0]["action"] == "created"
    (report,) = await all_rows(store, reports)
    assert report["category"] == "fire" and report["lat"] is None
    assert report["channel_ref"] == f"{CHAT}:1201" and report["reporter_id"] == str(CHAT)
    incident_id = report["incident_id"]
    (ask,) = api.sent()
    assert ask["chat_id"] == str(CHAT) and f"#{incident_id}" in ask["text"] and "vị trí" in ask["text"]
    (button,) = ask["reply_markup"]["keyboard"][0]
    assert button["request_location"] is True

    status, body = await post(client, "message__location.json")
    assert status == 200 and body["handled"][0]["action"] == "joined"
    (report,) = await all_rows(store, reports)
    assert (report["lat"], report["lon"], report["accuracy_m"]) == (21.034062, 105.852489, 14.6)
    assert report["location_source"] == "gps" and report["category"] == "fire"
    assert report["raw"]["followups"][0]["ref"] == f"{CHAT}:1202"  # the location message is kept, for the record
    (incident,) = await all_rows(store, incidents)
    assert incident["id"] == incident_id and (incident["lat"], incident["lon"]) == (21.034062, 105.852489)
    assert incident["category"] == "fire" and incident["report_count"] == 1
    thanks = api.sent()[1]
    assert f"#{incident_id}" in thanks["text"] and thanks["reply_markup"] == {"remove_keyboard": True}


async def test_a_wrong_or_missing_secret_token_is_refused_and_stores_nothing(
        client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    status, body = await post(client, "message__text.json", secret="guessed")
    assert status == 403 and body["error"] == "forbidden"
    status, body = await post(client, "message__text.json", secret=None)
    assert status == 401 and body["error"] == "unauthorized"
    assert await all_rows(store, reports) == [] and api.calls == []


async def test_a_retried_update_is_one_report(client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    for _ in range(3):
        status, _body = await post(client, "message__text.json")
        assert status == 200
    for _ in range(2):
        status, body = await post(client, "message__location.json")
        assert status == 200
    assert body["handled"][0]["action"] == "retried"
    (report,) = await all_rows(store, reports)
    assert len(report["raw"]["followups"]) == 1 and report["lat"] == 21.034062
    # Every delivery is answered: a retry means Telegram did not get our 200, so the reporter may not have either.
    assert all(f"#{report['incident_id']}" in m["text"] for m in api.sent())


async def test_live_location_edits_move_the_report_without_new_reports(
        client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    await post(client, "message__text.json")
    status, body = await post(client, "message__live_location.json")
    assert status == 200 and body["handled"][0]["action"] == "joined"
    (report,) = await all_rows(store, reports)
    assert (report["lat"], report["lon"]) == (21.028954, 105.850012)
    replies = len(api.sent())

    status, body = await post(client, "edited_message__live_location.json")
    assert status == 200 and body["handled"][0]["action"] == "moved"
    (report,) = await all_rows(store, reports)
    assert (report["lat"], report["lon"]) == (21.030215, 105.851307)
    (incident,) = await all_rows(store, incidents)
    assert (incident["lat"], incident["lon"]) == (21.030215, 105.851307)
    assert len(api.sent()) == replies  # a moving pin is not answered every few seconds


async def test_a_less_accurate_live_fix_still_moves_the_report(client: TestClient, store: Store) -> None:
    """A live location is where the reporter is now: a coarser fix replaces a finer, older one."""
    await post(client, "message__live_location.json")
    moved = fixture("edited_message__live_location.json")
    moved["edited_message"]["location"]["horizontal_accuracy"] = 1500
    status, _ = await post(client, moved)
    assert status == 200
    (report,) = await all_rows(store, reports)
    assert (report["lat"], report["lon"], report["accuracy_m"]) == (21.030215, 105.851307, 1500)


async def test_live_location_alone_is_a_report_its_edits_move(client: TestClient, store: Store) -> None:
    await post(client, "message__live_location.json")
    await post(client, "edited_message__live_location.json")
    (report,) = await all_rows(store, reports)
    assert report["channel_ref"] == f"{CHAT}:1207" and (report["lat"], report["lon"]) == (21.030215, 105.851307)


async def test_a_location_after_the_conversation_window_is_a_new_report(
        client: TestClient, store: Store, clock: Clock) -> None:
    await post(client, "message__text.json")
    clock.advance(minutes=11)
    status, body = await post(client, "message__location.json")
    assert status == 200 and body["handled"][0]["action"] == "created"
    first, second = await all_rows(store, reports)
    assert first["lat"] is None and second["lat"] == 21.034062


async def test_a_photo_without_caption_joins_the_report_and_a_voice_note_is_kept(
        client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    await post(client, "message__text.json")
    await post(client, "message__photo_no_caption.json")
    await post(client, "message__voice.json")
    (report,) = await all_rows(store, reports)
    assert [a["type"] for a in report["attachments"]] == ["photo", "voice"]
    assert report["attachments"][1]["transcribed"] is False
    assert "chưa thể tự động chuyển thành chữ" in api.sent()[-1]["text"]


async def test_a_photo_with_caption_is_a_report_of_its_own(client: TestClient, store: Store) -> None:
    await post(client, "message__text.json")
    await post(client, "message__photo_caption.json")
    first, second = await all_rows(store, reports)
    assert first["attachments"] == []
    assert second["text"].startswith("khói đen") and second["attachments"][0]["type"] == "photo"


async def test_an_english_speaker_is_answered_in_english(client: TestClient, api: FakeTelegramApi) -> None:
    await post(client, "message__text_en.json")
    (reply,) = api.sent()
    assert reply["chat_id"] == "6234567890" and reply["text"].startswith("Your report was received")
    assert reply["reply_markup"]["keyboard"][0][0]["text"] == "📍 Send my location"


async def test_start_is_answered_with_how_to_report_and_stores_nothing(
        client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    status, _ = await post(client, "message__start_command.json")
    assert status == 200 and await all_rows(store, reports) == []
    (reply,) = api.sent()
    assert "114" in reply["text"]


@pytest.mark.parametrize("name", ["my_chat_member__blocked.json", "callback_query__button.json",
                                  "message__sticker.json", "edited_message__text.json"])
async def test_updates_without_a_report_are_200_and_store_nothing(
        client: TestClient, api: FakeTelegramApi, store: Store, name: str) -> None:
    status, body = await post(client, name)
    assert status == 200 and body["handled"] == []
    assert await all_rows(store, reports) == [] and api.calls == []


@pytest.mark.parametrize(("name", "field"), [("update__truncated.json", None), ("update__array.json", None),
                                             ("message__no_chat.json", "message.chat.id"),
                                             ("message__bad_latitude.json", "message.location.latitude")])
async def test_malformed_updates_are_400_and_store_nothing(
        client: TestClient, api: FakeTelegramApi, store: Store, name: str, field: str | None) -> None:
    status, body = await post(client, (FIXTURES / name).read_bytes())
    assert status == 400 and body["error"] == "invalid_payload" and body["field"] == field
    assert await all_rows(store, reports) == [] and api.calls == []


async def test_a_failing_bot_api_loses_no_report(client: TestClient, api: FakeTelegramApi, store: Store) -> None:
    api.fail_status = 500
    status, _ = await post(client, "message__text.json")
    assert status == 200
    assert len(await all_rows(store, reports)) == 1 and [c.method for c in api.calls] == ["sendMessage"]


async def test_an_unreachable_bot_api_loses_no_report(store: Store, clock: Clock) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings_for(f"http://127.0.0.1:{port}"), store=store, clock=clock)
    async with TestClient(TestServer(app)) as c:
        status, _ = await post(c, "message__text.json")
    assert status == 200 and len(await all_rows(store, reports)) == 1


async def test_the_door_is_off_until_configured(store: Store) -> None:
    app = create_app(Settings(extra={"telegram_bot_token": TOKEN}), store=store)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/webhooks/telegram", json=fixture("message__text.json"))
        assert resp.status == 404 and "INTAKE_TELEGRAM_WEBHOOK_SECRET" in (await resp.json())["detail"]
