"""The Zalo OA door end to end: signed webhook events through the aiohttp app, replies to a local OA API."""

from __future__ import annotations

import hashlib
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
from tests.fakes.zalo_api import FakeZaloApi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zalo"
APP_ID = "3601284750183927461"
OA_SECRET = "Yq2bN7xKp4Lm9Rt1Vw6Z"
ACCESS_TOKEN = "oa-access-token-Bq8sZ1x"
USER = "2468458835291979221"
NO_MODEL = "/nonexistent/vosk-model"


async def all_rows(store: Store, table: Any) -> list[dict[str, Any]]:
    async with store.read() as repo:
        return [dict(r) for r in (await repo.conn.execute(select(table).order_by(table.c.id))).mappings()]


def settings_for(api_url: str) -> Settings:
    # No speech model here: the fixtures' audio URL is Zalo's real CDN, which a test must not call.
    # Voice transcription is tested in test_chat_voice.py.
    return Settings(asr_model=NO_MODEL, extra={"zalo_app_id": APP_ID, "zalo_oa_secret": OA_SECRET,
                                               "zalo_access_token": ACCESS_TOKEN, "zalo_api_url": api_url})


@pytest.fixture
async def api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi(ACCESS_TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(store: Store, api: FakeZaloApi, clock: Clock) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings_for(api.url), store=store, clock=clock))) as c:
        yield c


def mac(body: bytes, secret: str = OA_SECRET) -> str:
    """As Zalo signs: sha256(app_id + body + timestamp + OA secret key), written here independently of the door."""
    timestamp = json.loads(body)["timestamp"]
    return "mac=" + hashlib.sha256(APP_ID.encode() + body + str(timestamp).encode() + secret.encode()).hexdigest()


async def post(client: TestClient, name: str | bytes, signature: str | None = "sign") -> tuple[int, dict[str, Any]]:
    body = (FIXTURES / name).read_bytes() if isinstance(name, str) else name
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-ZEvent-Signature"] = mac(body)
    elif signature is not None:
        headers["X-ZEvent-Signature"] = signature
    resp = await client.post("/webhooks/zalo", data=body, headers=headers)
    return resp.status, await resp.json()


async def test_text_then_location_is_one_report_at_that_location(
        client: TestClient, api: FakeZaloApi, store: Store) -> None:
    status, body = await post(client, "user_send_text__fire.json")
    assert status == 200 and body["handled"][0]["action"] == "created"
    (report,) = await all_rows(store, reports)
    assert report["category"] == "fire" and report["channel_ref"] == "f2a37c9d84b1e60a5d13"
    assert report["reporter_id"] == USER and report["lat"] is None
    (ask,) = api.sent
    assert ask.access_token == ACCESS_TOKEN and ask.body["recipient"] == {"user_id": USER}
    assert f"#{report['incident_id']}" in ask.body["message"]["text"] and "vị trí" in ask.body["message"]["text"]

    status, body = await post(client, "user_send_location__hang_bac.json")
    assert status == 200 and body["handled"][0]["action"] == "joined"
    (report,) = await all_rows(store, reports)
    assert (report["lat"], report["lon"], report["location_source"]) == (21.034062, 105.852489, "gps")
    (incident,) = await all_rows(store, incidents)
    assert (incident["lat"], incident["lon"]) == (21.034062, 105.852489) and incident["category"] == "fire"
    assert f"#{incident['id']}" in api.texts()[1] and "Vui lòng gửi vị trí" not in api.texts()[1]


async def test_a_forged_or_missing_signature_is_refused_and_stores_nothing(
        client: TestClient, api: FakeZaloApi, store: Store) -> None:
    body = (FIXTURES / "user_send_text__fire.json").read_bytes()
    status, answer = await post(client, body, signature=mac(body, secret="not-the-oa-secret"))
    assert status == 403 and answer["error"] == "forbidden"
    status, answer = await post(client, body.replace(b"12", b"21"), signature=mac(body))
    assert status == 403
    status, answer = await post(client, body, signature=None)
    assert status == 401 and answer["error"] == "unauthorized"
    assert await all_rows(store, reports) == [] and api.sent == []


async def test_a_retried_event_is_one_report(client: TestClient, api: FakeZaloApi, store: Store) -> None:
    for _ in range(2):
        status, body = await post(client, "user_send_text__fire.json")
        assert status == 200
    assert body["handled"][0]["action"] == "retried"
    assert len(await all_rows(store, reports)) == 1


async def test_image_and_audio_join_the_report_as_attachments(
        client: TestClient, api: FakeZaloApi, store: Store) -> None:
    await post(client, "user_send_text__fire.json")
    await post(client, "user_send_image__smoke.json")
    await post(client, "user_send_audio__voice.json")
    (report,) = await all_rows(store, reports)
    assert [a["type"] for a in report["attachments"]] == ["image", "audio"]
    assert report["attachments"][0]["url"].startswith("https://f21-zpc.zdn.vn/")
    assert "chưa thể tự động chuyển thành chữ" in api.texts()[-1]


@pytest.mark.parametrize("name", ["follow__oa_profile.json", "user_seen_message__reply.json",
                                  "user_received_message__reply.json", "user_send_sticker__wow.json",
                                  "user_lost_connection__unknown.json"])
async def test_events_without_a_report_are_200_and_store_nothing(
        client: TestClient, api: FakeZaloApi, store: Store, name: str) -> None:
    status, body = await post(client, name)
    assert status == 200 and body["handled"] == []
    assert await all_rows(store, reports) == [] and api.sent == []


@pytest.mark.parametrize("name", ["event__truncated.json", "user_send_location__bad_coordinates.json",
                                  "user_send_text__no_msg_id.json"])
async def test_malformed_events_are_400_and_store_nothing(
        client: TestClient, api: FakeZaloApi, store: Store, name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    # A body that is not JSON has no timestamp to sign: any signature will do, it is refused as malformed first.
    signature = "mac=" + "0" * 64 if name == "event__truncated.json" else mac(body)
    status, answer = await post(client, body, signature=signature)
    assert status == 400 and answer["error"] == "invalid_payload"
    assert await all_rows(store, reports) == [] and api.sent == []


async def test_a_failing_or_refusing_oa_api_loses_no_report(
        client: TestClient, api: FakeZaloApi, store: Store) -> None:
    api.fail_status = 500
    status, _ = await post(client, "user_send_text__fire.json")
    assert status == 200 and len(api.sent) == 1
    api.fail_status = None
    api.access_token = "rotated"  # ours expired: Zalo answers 200 with error -216
    status, _ = await post(client, "user_send_location__hang_bac.json")
    assert status == 200 and len(api.sent) == 2
    (report,) = await all_rows(store, reports)
    assert report["lat"] == 21.034062


async def test_an_unreachable_oa_api_loses_no_report(store: Store, clock: Clock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with TestClient(TestServer(create_app(settings_for(f"http://127.0.0.1:{port}"), store=store,
                                                clock=clock))) as c:
        status, _ = await post(c, "user_send_text__fire.json")
    assert status == 200 and len(await all_rows(store, reports)) == 1


async def test_the_door_is_off_until_configured(store: Store) -> None:
    app = create_app(Settings(extra={"zalo_app_id": APP_ID}), store=store)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/webhooks/zalo", data=(FIXTURES / "user_send_text__fire.json").read_bytes())
        detail = (await resp.json())["detail"]
        assert resp.status == 404 and "INTAKE_ZALO_OA_SECRET" in detail and "INTAKE_ZALO_ACCESS_TOKEN" in detail
