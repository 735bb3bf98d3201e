"""Report photos through the server: a Telegram file_id resolved with getFile, a URL fetched, both kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from intake.config import Settings
from intake.core.model import ReportIn
from intake.pipeline import Intake
from intake.store import Store
from intake.web.app import INTAKE, create_app
from tests.conftest import Clock
from tests.fakes.telegram_api import FakeTelegramApi
from tests.integration.test_console_api import Browser, _users

TOKEN = "7000000001:AAH3kq9vX2bN8mLp4RtZ1wYc6UeJ0sDfGhQ"
PNG = (Path(__file__).resolve().parents[2] / "intake" / "web" / "static" / "vendor" / "leaflet" / "images"
       / "layers.png").read_bytes()


@pytest.fixture
async def picture_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A stand-in for Zalo's / Twilio's media hosts: a photo, a page pretending to be one, a 404."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/photo.png":
            return web.Response(body=PNG, content_type="image/png")
        if request.path == "/page.png":
            return web.Response(text="<script>alert(1)</script>", content_type="image/png")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/"), hits


@pytest.fixture
async def setup(store: Store, clock: Clock, tmp_path: Path) -> AsyncIterator[tuple[Browser, Intake, FakeTelegramApi]]:
    await _users(store, clock)
    async with FakeTelegramApi(TOKEN) as api:
        settings = Settings(asr_model=str(tmp_path / "no-model"), extra={
            "telegram_bot_token": TOKEN, "telegram_webhook_secret": "s3cret", "telegram_api_url": api.url,
            "media_dir": str(tmp_path / "media")})
        app = create_app(settings, store=store, clock=clock)
        async with TestClient(TestServer(app)) as client:
            browser = Browser(client)
            assert (await browser.login("lan"))[0] == 200
            yield browser, app[INTAKE], api


async def _report_with(intake: Intake, *attachments: dict[str, Any]) -> int:
    result = await intake.ingest(ReportIn(channel="app", channel_ref=f"media-{len(attachments)}-{id(attachments)}",
                                          received_at=intake.clock(), text="cháy", attachments=attachments,
                                          raw={"n": 1}))
    return result.report_id


async def test_a_telegram_photo_is_fetched_with_the_bots_token_once_and_kept(
        setup: tuple[Browser, Intake, FakeTelegramApi]) -> None:
    browser, intake, api = setup
    api.add_file("AgACAgIAAxkBAAIBQ2", "AQADx7", PNG, "photos/file_7.png")
    report_id = await _report_with(intake, {"type": "photo", "telegram_file_id": "AgACAgIAAxkBAAIBQ2",
                                            "file_unique_id": "AQADx7"})
    for _ in range(2):
        resp = await browser.client.get(f"/api/v1/reports/{report_id}/attachments/0")
        assert resp.status == 200 and resp.content_type == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert await resp.read() == PNG
    assert [c.method for c in api.calls].count("getFile") == 1  # the second came from the kept copy


async def test_a_linked_photo_is_served_from_our_origin_and_a_disguised_page_is_refused(
        setup: tuple[Browser, Intake, FakeTelegramApi], picture_host: tuple[str, list[str]]) -> None:
    browser, intake, _ = setup
    host, _hits = picture_host
    report_id = await _report_with(intake, {"type": "image", "url": f"{host}/photo.png"},
                                   {"type": "image", "url": f"{host}/page.png"},
                                   {"type": "image", "url": f"{host}/gone.png"},
                                   {"type": "voice", "url": f"{host}/photo.png"})
    ok = await browser.client.get(f"/api/v1/reports/{report_id}/attachments/0")
    assert ok.status == 200 and await ok.read() == PNG
    statuses = [(await browser.client.get(f"/api/v1/reports/{report_id}/attachments/{i}")).status
                for i in (1, 2, 3, 4)]
    assert statuses == [415, 502, 415, 404]


async def test_photos_need_a_login(setup: tuple[Browser, Intake, FakeTelegramApi], store: Store) -> None:
    _, intake, _ = setup
    report_id = await _report_with(intake, {"type": "image", "url": "https://example.invalid/x.png"})
    async with TestClient(TestServer(create_app(Settings(), store=store))) as anonymous:
        assert (await anonymous.get(f"/api/v1/reports/{report_id}/attachments/0")).status == 401


async def test_a_half_written_copy_is_never_served(
        setup: tuple[Browser, Intake, FakeTelegramApi], tmp_path: Path) -> None:
    """A crash while keeping a photo leaves `<key>.png.part`: the photo is fetched again, whole."""
    import hashlib

    browser, intake, api = setup
    api.add_file("AgACAgIAAxkBAAIBQ3", "AQADx8", PNG, "photos/file_8.png")
    report_id = await _report_with(intake, {"type": "photo", "telegram_file_id": "AgACAgIAAxkBAAIBQ3",
                                            "file_unique_id": "AQADx8"})
    key = hashlib.sha256(f"{report_id}:AQADx8".encode()).hexdigest()
    (tmp_path / "media").mkdir(exist_ok=True)
    (tmp_path / "media" / f"{key}.png.part").write_bytes(PNG[: len(PNG) // 2])
    resp = await browser.client.get(f"/api/v1/reports/{report_id}/attachments/0")
    assert resp.status == 200 and await resp.read() == PNG
    assert [c.method for c in api.calls].count("getFile") == 1
