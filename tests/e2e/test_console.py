"""The console and the board in a real browser (Debian's Chromium, driven by Playwright) against the real server.

A replayed Asterisk call (the recorded normal_call AMI capture, and its AudioSocket audio through the
Vosk recognizer) pops up on the call-taker's screen, its transcript streams in, the call-taker puts it
on the map, confirms "fire" and attaches it to the incident the console suggests; the fire board then
shows one incident with both reports. Screenshots of both screens are taken on every run; with
INTAKE_UPDATE_SCREENSHOTS=1 they replace docs/console.png and docs/board.png, the README's pictures
(a plain test run leaves the committed files alone).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.store import Store, open_store
from intake.web import auth
from intake.web.app import BRIDGE, INTAKE, create_app
from intake.web.bench_console import GatedReplay
from tests.conftest import SHARED

CHROMIUM = Path(os.environ.get("INTAKE_CHROMIUM", "/usr/bin/chromium"))
AMI = SHARED / "fixtures" / "asterisk" / "ami"
AUDIO = SHARED / "fixtures" / "asterisk" / "audiosocket"
DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE_DOCS = os.environ.get("INTAKE_UPDATE_SCREENSHOTS") == "1"
PASSWORD = secrets.token_urlsafe(12)
A = (21.0345, 105.8523)  # the fire already reported: Hàng Bạc, Hoàn Kiếm
C = (A[0] + 950 / 111_320, A[1])  # where the caller is: 950 m north of it
LINKEDID = "1795318919.0"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does it when run as root)")


@dataclass
class Served:
    url: str
    app: web.Application
    store: Store
    audio_port: int

    @property
    def intake(self) -> Intake:
        return self.app[INTAKE]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(tmp_path: Path, replay: GatedReplay | None = None) -> AsyncIterator[Served]:
    """The real server on a real port: create_app from Settings, a SQLite file, the AMI bridge and audio door."""
    audio_port = _free_port() if replay is not None else 0
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path}/e2e.db")
    now = datetime.now(UTC)
    await auth.create_user(store, name="lan", role="calltaker", agency=None, password=PASSWORD, now=now)
    await auth.create_user(store, name="cuuhoa", role="dispatcher", agency="fire", password=PASSWORD, now=now)
    settings = Settings(
        ami_port=replay.port if replay else 5038, ami_secret=replay.secret if replay else "",
        audiosocket_port=audio_port, asr_workers=1, log_level="WARNING",
        extra={"map_center": f"{A[0]},{A[1]}", "map_zoom": "15", "media_dir": str(tmp_path / "media")})
    app = create_app(settings, store=store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        if replay is not None:
            await asyncio.wait_for(app[BRIDGE].connected.wait(), 20)
        yield Served(f"http://127.0.0.1:{runner.addresses[0][1]}", app, store, audio_port)
    finally:
        await runner.cleanup()
        await store.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                           args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(browser: Any, served: Served, name: str, path: str) -> Any:
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="vi-VN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{served.url}{path}")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("body[data-ready=true][data-stream=live]")
    return page


async def until(condition: Callable[[], bool], seconds: float = 20) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - the bridge's state is read from outside on purpose
            await asyncio.sleep(0.02)
    await asyncio.wait_for(wait(), seconds)


async def click_map_at(page: Any, lat: float, lon: float) -> None:
    x, y = await page.evaluate("""([lat, lon]) => {
        const map = document.getElementById("map").intakeMap;
        const p = map.latLngToContainerPoint([lat, lon]);
        const box = map.getContainer().getBoundingClientRect();
        return [box.left + p.x, box.top + p.y];
    }""", [lat, lon])
    await page.mouse.click(x, y)


async def test_a_replayed_call_pops_up_is_transcribed_confirmed_and_attached(tmp_path: Path) -> None:
    from playwright.async_api import expect

    from intake.telephony.audiosocket import stream_bin

    async with GatedReplay(AMI / "normal_call.txt", speed=4, secret="intake-secret") as replay, \
            serve(tmp_path, replay) as served, chromium() as browser:
        fire = await served.intake.ingest(ReportIn(
            channel="app", channel_ref="e2e-fire", received_at=served.intake.clock(), phone="0912345678",
            text="Cháy nhà kho ở phố Hàng Bạc, khói đen rất nhiều", raw={"e2e": 1},
            location=Location(A[0], A[1], 20, LocationSource.GPS)))
        page = await logged_in(browser, served, "lan", "/console")

        # The call rings: its card pops up with the caller's number and the line dialled.
        replay.gate.set()
        await page.locator(f'#queue li[data-linkedid="{LINKEDID}"]').wait_for()
        await expect(page.locator("#detail-number")).to_contain_text("15551230001")
        await expect(page.locator("#detail-line")).to_contain_text("112")

        # Its audio reaches the server over AudioSocket; the transcript streams into the card.
        bridge = served.app[BRIDGE]
        await until(lambda: LINKEDID in bridge.calls and bridge.calls[LINKEDID].audio_uuid is not None)

        # The queue rings this call-taker's phone (app_queue's AgentCalled, as Asterisk sends it on the AMI
        # stream; queue members are named after console users): the card says so, until it is answered.
        mine = page.locator(f'#queue li[data-linkedid="{LINKEDID}"].for-me')
        queue_event = {"Uniqueid": LINKEDID, "Linkedid": LINKEDID, "Queue": "calltakers", "MemberName": "lan",
                       "Interface": "PJSIP/1001"}
        await bridge.handle_event({**queue_event, "Event": "AgentCalled"})
        await mine.wait_for()
        await expect(mine.locator(".badge.for-me")).to_be_visible()
        await bridge.handle_event({**queue_event, "Event": "AgentConnect", "RingTime": "2", "HoldTime": "1"})
        await expect(mine).to_have_count(0)
        await stream_bin(AUDIO / "normal_call.bin", "127.0.0.1", served.audio_port, speed=4)
        await page.wait_for_function("""() => {
            const box = document.getElementById("transcript");
            return box && !box.querySelector(".muted") && box.textContent.trim().length > 0;
        }""")

        # The caller says where they are: one key, one click on the map.
        await page.keyboard.press("l")
        await expect(page.locator("#pick-hint")).to_be_visible()
        await click_map_at(page, *C)
        await page.locator('#location-source[data-source="calltaker"]').wait_for()

        # The fire reported 950 m away is suggested; the call-taker confirms "fire" (key 4) and attaches it.
        suggestion = page.locator(f'#suggestions li[data-incident="{fire.incident_id}"]')
        await suggestion.wait_for()
        await page.keyboard.press("4")
        await page.locator('#category-state[data-category="fire"][data-confirmed="true"]').wait_for()
        await expect(suggestion.locator(".dup")).to_be_visible()  # flagged as a likely duplicate
        shots = DOCS if UPDATE_DOCS else tmp_path
        shots.mkdir(exist_ok=True)
        assert (await page.screenshot(path=str(shots / "console.png")))[:8] == b"\x89PNG\r\n\x1a\n"
        await suggestion.locator("button.attach").click()
        await page.locator(f'#current-incident[data-incident="{fire.incident_id}"]').wait_for()
        await expect(page.locator("#current-incident")).to_contain_text("2")

        async with served.store.read() as repo:
            call = await repo.report_by_ref("call", LINKEDID)
        assert call is not None and call["incident_id"] == fire.incident_id
        assert call["category"] == "fire" and call["location_source"] == "calltaker" and call["text"]

        # The fire dispatcher's board: one incident, with both reports in its timeline.
        board = await logged_in(browser, served, "cuuhoa", "/board")
        rows = board.locator("#incidents li")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-incident-id", str(fire.incident_id))
        await rows.first.click()
        await expect(board.locator("#timeline-list li.report")).to_have_count(2)
        await expect(board.locator("#report-count")).to_have_attribute("data-count", "2")
        assert (await board.screenshot(path=str(shots / "board.png")))[:8] == b"\x89PNG\r\n\x1a\n"
        await until(lambda: replay.finished.is_set())


async def test_login_csrf_language_and_logout_in_the_browser(tmp_path: Path) -> None:
    from playwright.async_api import expect

    async with serve(tmp_path) as served, chromium() as browser:
        report = await served.intake.ingest(ReportIn(
            channel="app", channel_ref="e2e-1", received_at=served.intake.clock(), text="có người ngất xỉu",
            phone="0912345678", raw={"e2e": 1}))
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{served.url}/console")
        assert "/login?next=/console" in page.url  # no session: the login page
        await page.fill("#name", "lan")
        await page.fill("#password", "not-the-password")
        await page.click("button[type=submit]")
        await expect(page.locator("#login-error")).to_have_text("Sai tên hoặc mật khẩu.")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console")
        await page.wait_for_selector("body[data-ready=true]")
        await expect(page.locator(f'#queue li[data-report-id="{report.report_id}"]')).to_be_visible()

        # Another door's report, with a photo, is pushed into the same queue while the page is open.
        photo = {"type": "image/png", "url": f"{served.url}/static/vendor/leaflet/images/layers.png"}
        zalo = await served.intake.ingest(ReportIn(
            channel="zalo", channel_ref="e2e-zalo", received_at=served.intake.clock(), text="cháy xe máy ở ngõ",
            reporter_id="zalo-user-1", attachments=(photo,), raw={"e2e": 2}))
        card = page.locator(f'#queue li[data-report-id="{zalo.report_id}"]')
        await expect(card).to_contain_text("Zalo")
        await card.click()
        # The photo comes through our server (which fetched and kept it), not from the sender's host.
        await expect(page.locator(".photos img")).to_have_attribute(
            "src", f"/api/v1/reports/{zalo.report_id}/attachments/0")
        await page.wait_for_function("() => document.querySelector('.photos img')?.complete")
        assert await page.evaluate("() => document.querySelector('.photos img').naturalWidth") > 0

        post = """async ([id, csrf]) => (await fetch(`/api/v1/reports/${id}/category`, {method: "POST",
            headers: Object.assign({"Content-Type": "application/json"}, csrf ? {"X-CSRF-Token": csrf} : {}),
            body: JSON.stringify({category: "medical"})})).status"""
        assert await page.evaluate(post, [report.report_id, None]) == 403
        csrf = await page.evaluate("async () => (await (await fetch('/api/v1/me')).json()).csrf_token")
        assert await page.evaluate(post, [report.report_id, csrf]) == 200

        await expect(page.locator("h1")).to_contain_text("Bàn tiếp nhận cuộc gọi")
        await page.click("#lang")
        await expect(page.locator("h1")).to_contain_text("Call-taker console")

        await page.click("#logout")
        await page.wait_for_url("**/login")
        assert await page.evaluate("async () => (await fetch('/api/v1/me')).status") == 401


async def test_a_missed_call_shows_why_and_each_call_back_as_asterisk_reported_it(tmp_path: Path) -> None:
    """The call-back's outcome reaches the open console by the stream (call.callback), in the page's language."""
    from playwright.async_api import expect

    async with serve(tmp_path) as served, chromium() as browser:
        intake = served.intake
        missed = await intake.ingest(ReportIn(
            channel="call", channel_ref="1796300000.1", received_at=intake.clock(), phone="0987654321",
            dialled_number="112", raw={"linkedid": "1796300000.1"}))
        await intake.patch_report_raw(missed.report_id, {"call": {
            "linkedid": "1796300000.1", "state": "hungup", "needs_callback": True,
            "callback_reason": "caller abandoned in queue calltakers after 7 s"}})
        page = await logged_in(browser, served, "lan", "/console")
        await page.locator(f'#queue li[data-report-id="{missed.report_id}"]').click()
        await expect(page.locator("#callback-reason")).to_contain_text("caller abandoned in queue calltakers")
        attempts = [{"number": "0987654321", "channel_id": "callback-1", "at": intake.clock().isoformat(),
                     "outcome": "busy", "cause": 17, "cause_text": "User busy"}]
        for outcome in ("ringing", "answered"):
            attempts = [*attempts[:1], {"number": "0987654321", "channel_id": "callback-2",
                                        "at": intake.clock().isoformat(), "outcome": outcome,
                                        "connected_to": "lan" if outcome == "answered" else None}]
            await intake.patch_report_raw(missed.report_id, {"callbacks": attempts}, outbox=[{
                "topic": "call", "kind": "call.callback", "payload": attempts[-1]}])
            await expect(page.locator(f'#callbacks li[data-outcome="{outcome}"]')).to_have_count(1)
        await expect(page.locator('#callbacks li[data-outcome="busy"]')).to_contain_text("máy bận")
        await expect(page.locator('#callbacks li[data-outcome="busy"]')).to_contain_text("User busy")
        await expect(page.locator('#callbacks li[data-outcome="answered"]')).to_contain_text("nối máy với lan")
