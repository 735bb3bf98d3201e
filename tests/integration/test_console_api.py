"""The console's server side over HTTP: logins, sessions, CSRF, the report and call actions, the map layer."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.store import Store
from intake.store.tables import console_users
from intake.web import auth
from intake.web.app import BRIDGE, INTAKE, create_app
from tests.conftest import Clock
from tests.integration.test_ami import AMI

PASSWORD = "đúng-mật-khẩu-2026"
A = (21.0345, 105.8523)  # Hàng Bạc, Hoàn Kiếm


class Browser:
    """An HTTP client that behaves like the console's pages: cookies, the login form's token, X-CSRF-Token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf: str | None = None
        self.set_cookies: list[str] = []

    async def login(self, name: str, password: str = PASSWORD, *, form_token: bool = True) -> tuple[int, Any]:
        page = await self.client.get("/login")
        token = re.search(r'name="login-csrf" content="([^"]+)"', await page.text())
        assert token is not None
        headers = {"X-CSRF-Token": token.group(1)} if form_token else {}
        resp = await self.client.post("/auth/login", json={"name": name, "password": password}, headers=headers)
        body = await resp.json()
        self.set_cookies = resp.headers.getall("Set-Cookie", [])
        if resp.status == 200:
            self.csrf = body["csrf_token"]
        return resp.status, body

    async def get(self, path: str) -> tuple[int, Any]:
        resp = await self.client.get(path)
        return resp.status, await resp.json()

    async def post(self, path: str, body: Any = None, *, csrf: bool = True) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        resp = await self.client.post(path, json=body if body is not None else {}, headers=headers)
        return resp.status, await resp.json()


async def _users(store: Store, clock: Clock) -> None:
    await auth.create_user(store, name="lan", role="calltaker", agency=None, password=PASSWORD, now=clock())
    await auth.create_user(store, name="cuuhoa", role="dispatcher", agency="fire", password=PASSWORD, now=clock())


@pytest.fixture
async def web(store: Store, clock: Clock) -> AsyncIterator[tuple[Browser, Intake]]:
    await _users(store, clock)
    app = create_app(Settings(), store=store, clock=clock)
    async with TestClient(TestServer(app)) as client:
        yield Browser(client), app[INTAKE]


async def _report(intake: Intake, ref: str, text: str, at: tuple[float, float] | None, phone: str = "0912345678"
                  ) -> Any:
    loc = Location(at[0], at[1], 20, LocationSource.GPS) if at else None
    return await intake.ingest(ReportIn(channel="app", channel_ref=ref, received_at=intake.clock(), text=text,
                                        phone=phone, location=loc, raw={"ref": ref}))


def _north(at: tuple[float, float], metres: float) -> tuple[float, float]:
    return at[0] + metres / 111_320, at[1]


# --- login, sessions, CSRF ---------------------------------------------------------------------------

async def test_login_opens_a_session_cookie_and_me_tells_who(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    page = await browser.client.get("/login")
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in page.headers["Set-Cookie"]
    status, body = await browser.login("lan")
    assert status == 200 and body["role"] == "calltaker" and body["next"] == "/console"
    (session,) = [c for c in browser.set_cookies if c.startswith(auth.SESSION_COOKIE + "=")]
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    assert "Secure" not in session  # served on 127.0.0.1 (INTAKE_COOKIE_SECURE=auto)
    status, me = await browser.get("/api/v1/me")
    assert status == 200 and me["name"] == "lan" and me["csrf_token"] == body["csrf_token"]
    assert me["map"]["tile_url"] is None and len(me["map"]["center"]) == 2


async def test_a_wrong_password_or_an_unknown_name_is_401_and_opens_nothing(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    for name, password in [("lan", "sai-mat-khau-roi"), ("nobody", PASSWORD)]:
        status, body = await browser.login(name, password)
        assert status == 401 and body["error"] == "unauthorized"
    status, _ = await browser.get("/api/v1/me")
    assert status == 401


async def test_a_login_without_the_login_forms_token_is_403(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    status, body = await browser.login("lan", form_token=False)
    assert status == 403 and body["field"] == "X-CSRF-Token"
    assert (await browser.get("/api/v1/me"))[0] == 401


async def test_a_post_on_a_session_without_its_csrf_token_is_403_and_changes_nothing(
        web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    fire = await _report(intake, "a", "Cháy nhà ở phố Hàng Bạc", A)
    await browser.login("lan")
    path = f"/api/v1/incidents/{fire.incident_id}/notes"
    status, body = await browser.post(path, {"text": "đã gọi lại"}, csrf=False)
    assert status == 403 and body["field"] == "X-CSRF-Token"
    browser.csrf, good = "forged", browser.csrf
    assert (await browser.post(path, {"text": "đã gọi lại"}))[0] == 403
    _, incident = await browser.get(f"/api/v1/incidents/{fire.incident_id}")
    assert [e["kind"] for e in incident["events"]] == ["opened"]
    browser.csrf = good
    status, _ = await browser.post(path, {"text": "đã gọi lại"})
    assert status == 201
    _, incident = await browser.get(f"/api/v1/incidents/{fire.incident_id}")
    assert incident["events"][-1]["kind"] == "note" and incident["events"][-1]["actor"] == "lan"


async def test_logout_ends_the_session_for_good(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    await browser.login("lan")
    jar = browser.client.session.cookie_jar
    old = jar.filter_cookies(browser.client.make_url("/"))[auth.SESSION_COOKIE].value
    status, _ = await browser.post("/auth/logout")
    assert status == 200
    assert (await browser.get("/api/v1/me"))[0] == 401
    jar.update_cookies({auth.SESSION_COOKIE: old})  # the old cookie, replayed
    status, body = await browser.get("/api/v1/me")
    assert status == 401 and "log in again" in body["detail"]


async def test_a_secure_cookie_is_refused_over_plain_http_with_a_clear_message(store: Store, clock: Clock) -> None:
    await _users(store, clock)
    app = create_app(Settings(extra={"cookie_secure": "on"}), store=store, clock=clock)
    async with TestClient(TestServer(app)) as client:
        browser = Browser(client)
        status, body = await browser.login("lan")
        assert status == 400 and "HTTPS" in body["detail"]
        page = await client.get("/login")
        token = re.search(r'name="login-csrf" content="([^"]+)"', await page.text())
        assert token is not None
        resp = await client.post("/auth/login", json={"name": "lan", "password": PASSWORD},
                                 headers={"X-CSRF-Token": token.group(1), "X-Forwarded-Proto": "https",
                                          # as a browser on the TLS side would send the Secure login cookie
                                          "Cookie": f"{auth.LOGIN_CSRF_COOKIE}={token.group(1)}"})
        assert resp.status == 200 and "Secure" in resp.headers["Set-Cookie"]


async def test_a_disabled_user_cannot_log_in_and_loses_open_sessions(web: tuple[Browser, Intake], store: Store,
                                                                     clock: Clock) -> None:
    browser, _ = web
    await browser.login("lan")
    await auth.disable_user(store, "lan", clock())
    assert (await browser.get("/api/v1/me"))[0] == 401
    assert (await browser.login("lan"))[0] == 401


async def test_a_session_lasts_a_shift_then_ends(web: tuple[Browser, Intake], clock: Clock) -> None:
    browser, _ = web
    await browser.login("lan")
    clock.advance(hours=11)
    assert (await browser.get("/api/v1/me"))[0] == 200
    clock.advance(hours=2)
    assert (await browser.get("/api/v1/me"))[0] == 401


async def test_repeated_failed_logins_are_throttled(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    for _ in range(5):
        assert (await browser.login("lan", "sai-mat-khau-roi"))[0] == 401
    status, body = await browser.login("lan")  # even the right password, for a while
    assert status == 429 and body["error"] == "too_many_attempts"


async def test_passwords_are_salted_scrypt_and_never_stored(store: Store, clock: Clock) -> None:
    await _users(store, clock)
    async with store.read() as repo:
        hashes = [r["password_hash"] for r in await repo._all(select(console_users))]
    assert len(set(hashes)) == 2  # same password, different salts
    for h in hashes:
        assert h.startswith("scrypt$") and PASSWORD not in h
        assert auth.verify_password(PASSWORD, h) and not auth.verify_password(PASSWORD + "x", h)
    with pytest.raises(auth.UserError, match="at least"):
        await auth.create_user(store, name="ngan", role="admin", agency=None, password="ngan", now=clock())
    with pytest.raises(auth.UserError, match="agency"):
        await auth.create_user(store, name="d", role="dispatcher", agency=None, password=PASSWORD, now=clock())


async def test_the_stream_takes_a_session_only_from_our_own_pages(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    await browser.login("lan")
    origin = str(browser.client.make_url("/")).rstrip("/")
    ws = await browser.client.ws_connect("/api/v1/stream", headers={"Origin": origin})
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await browser.client.ws_connect("/api/v1/stream", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_pages_need_a_login_and_send_a_strict_content_security_policy(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    resp = await browser.client.get("/console", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=/console"
    await browser.login("cuuhoa")
    resp = await browser.client.get("/console", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/board"  # a dispatcher's screen is the board
    resp = await browser.client.get("/board")
    assert resp.status == 200 and "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "board.js" in await resp.text()
    leaflet = await browser.client.get("/static/vendor/leaflet/leaflet.js")
    assert leaflet.status == 200 and b"Leaflet" in (await leaflet.read())[:2000]


# --- the report actions ---------------------------------------------------------------------------------

async def test_confirming_a_category_is_a_persons_decision_that_sticks(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r = await _report(intake, "a", "có chuyện ở đầu ngõ, đến nhanh", A)
    await browser.login("lan")
    status, report = await browser.post(f"/api/v1/reports/{r.report_id}/category", {"category": "fire"})
    assert status == 200
    assert report["category"] == "fire" and report["confidence"] == 1.0 and report["incident"]["category"] == "fire"
    assert report["classification"]["evidence"][0]["source"] == "calltaker"
    await intake.update_report(r.report_id, text="có người bị thương chảy máu")  # the classifier would say medical
    _, report = await browser.get(f"/api/v1/reports/{r.report_id}")
    assert report["category"] == "fire"


async def test_a_location_set_on_the_map_is_kept_over_later_automatic_fixes(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r = await _report(intake, "a", "cháy", None)
    await browser.login("lan")
    status, report = await browser.post(f"/api/v1/reports/{r.report_id}/location", {"lat": A[0], "lon": A[1]})
    assert status == 200
    loc = report["location"]
    assert loc["source"] == "calltaker" and loc["accuracy_m"] == 25 and "Hoàn Kiếm" in loc["label"]
    await intake.update_report(r.report_id, location=Location(21.05, 105.80, 3, LocationSource.GPS))
    _, report = await browser.get(f"/api/v1/reports/{r.report_id}")
    assert (report["location"]["lat"], report["location"]["source"]) == (A[0], "calltaker")
    assert report["incident"]["lat"] == A[0]


async def test_attaching_a_lone_report_merges_its_incident_into_the_chosen_one(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    first = await _report(intake, "a", "Cháy nhà ở phố Hàng Bạc", A)
    second = await _report(intake, "b", "thấy khói đen", _north(A, 1500), phone="0987654321")
    assert first.incident_id != second.incident_id
    await browser.login("lan")
    status, report = await browser.post(f"/api/v1/reports/{second.report_id}/attach",
                                        {"incident_id": first.incident_id})
    assert status == 200
    assert report["incident_id"] == first.incident_id and report["incident"]["report_count"] == 2
    assert report["match"]["manual"] is True
    _, old = await browser.get(f"/api/v1/incidents/{second.incident_id}")
    assert old["status"] == "merged" and old["merged_into"] == first.incident_id
    _, page = await browser.get("/api/v1/incidents?category=fire")
    assert [(i["id"], i["report_count"]) for i in page["items"]] == [(first.incident_id, 2)]
    # Attaching again to the same incident changes nothing.
    status, again = await browser.post(f"/api/v1/reports/{second.report_id}/attach", {"incident_id": first.incident_id})
    assert status == 200 and again["incident"]["report_count"] == 2


async def test_attaching_one_report_of_a_shared_incident_moves_only_it(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r1 = await _report(intake, "a", "Cháy nhà ở phố Hàng Bạc", A)
    r2 = await _report(intake, "b", "cháy to ở Hàng Bạc", A, phone="0987654321")
    assert r2.incident_id == r1.incident_id
    other = await _report(intake, "c", "cháy xe máy", _north(A, 3000), phone="0911111111")
    await browser.login("lan")
    status, report = await browser.post(f"/api/v1/reports/{r2.report_id}/attach", {"incident_id": other.incident_id})
    assert status == 200 and report["incident"]["id"] == other.incident_id
    _, src = await browser.get(f"/api/v1/incidents/{r1.incident_id}")
    _, dst = await browser.get(f"/api/v1/incidents/{other.incident_id}")
    assert [r["id"] for r in src["reports"]] == [r1.report_id] and src["report_count"] == 1
    assert sorted(r["id"] for r in dst["reports"]) == sorted([other.report_id, r2.report_id])
    assert dst["report_count"] == 2
    assert "report_moved" in [e["kind"] for e in src["events"]]
    assert any(e["kind"] == "report_attached" and e["actor"] == "lan" for e in dst["events"])


async def test_attach_refuses_bad_ids_and_closed_incidents(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r1 = await _report(intake, "a", "Cháy nhà ở phố Hàng Bạc", A)
    r2 = await _report(intake, "b", "cháy xe máy", _north(A, 3000), phone="0911111111")
    await browser.login("lan")
    path = f"/api/v1/reports/{r2.report_id}/attach"
    assert (await browser.post(path, {"incident_id": "one"}))[1]["field"] == "incident_id"
    assert (await browser.post(path, {"incident_id": 999}))[0] == 404
    assert (await browser.post("/api/v1/reports/999/attach", {"incident_id": r1.incident_id}))[0] == 404
    await browser.post(f"/api/v1/incidents/{r1.incident_id}/close", {"reason": "đã dập"})
    status, body = await browser.post(path, {"incident_id": r1.incident_id})
    assert status == 409 and body["error"] == "conflict"
    _, report = await browser.get(f"/api/v1/reports/{r2.report_id}")
    assert report["incident_id"] == r2.incident_id


async def test_a_new_incident_splits_a_report_out_and_is_409_for_a_lone_report(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r1 = await _report(intake, "a", "Cháy nhà ở phố Hàng Bạc", A)
    r2 = await _report(intake, "b", "cháy to ở Hàng Bạc", A, phone="0987654321")
    await browser.login("lan")
    status, report = await browser.post(f"/api/v1/reports/{r2.report_id}/new-incident")
    assert status == 201 and report["incident_id"] not in (None, r1.incident_id)
    assert report["incident"]["report_count"] == 1
    status, body = await browser.post(f"/api/v1/reports/{r2.report_id}/new-incident")
    assert status == 409 and "only report" in body["detail"]


async def test_a_report_comes_with_highlights_and_the_incidents_it_may_belong_to(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    near = await _report(intake, "a", "Cháy nhà kho", _north(A, 900), phone="0987654321")
    far = await _report(intake, "b", "cháy rừng", _north(A, 5000), phone="0911111111")
    text = "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm, có người bị kẹt"
    r = await _report(intake, "c", text, A)
    await browser.login("lan")
    _, report = await browser.get(f"/api/v1/reports/{r.report_id}")
    marks = {(h["kind"], text[h["start"]:h["end"]]) for h in report["highlights"]}
    address = "số 12 phố Hàng Bạc, quận Hoàn Kiếm"
    assert {("evidence", "Cháy nhà"), ("evidence", "bị kẹt"), ("address", address)} <= marks
    ids = [s["id"] for s in report["suggestions"] if s["id"] != report["incident_id"]]
    assert near.incident_id in ids and far.incident_id not in ids
    (suggested,) = [s for s in report["suggestions"] if s["id"] == near.incident_id]
    assert 850 <= suggested["distance_m"] <= 950
    assert suggested["why"] == "possible_duplicate"  # close enough to ask, too far to attach by itself
    _, page = await browser.get("/api/v1/reports?limit=2")
    assert [i["id"] for i in page["items"]] == [r.report_id, far.report_id] and page["next_cursor"] == far.report_id


@pytest.mark.parametrize(("path", "body", "field"), [
    ("category", {"category": "aliens"}, "category"),
    ("category", {}, "category"),
    ("location", {"lat": 91, "lon": 105}, "lat"),
    ("location", {"lat": 21, "lon": "105"}, "lon"),
    ("location", {"lat": 21, "lon": 105, "accuracy_m": 0}, "accuracy_m"),
    ("attach", {"incident_id": True}, "incident_id"),
])
async def test_bad_report_actions_are_a_clear_400(web: tuple[Browser, Intake], path: str, body: dict[str, Any],
                                                  field: str) -> None:
    browser, intake = web
    r = await _report(intake, "a", "cháy", A)
    await browser.login("lan")
    status, answer = await browser.post(f"/api/v1/reports/{r.report_id}/{path}", body)
    assert status == 400 and answer["field"] == field
    _, report = await browser.get(f"/api/v1/reports/{r.report_id}")
    assert report["location"]["source"] == "gps" and report["category"] == "fire"  # unchanged


async def test_a_dispatcher_may_read_reports_but_not_decide_them(web: tuple[Browser, Intake]) -> None:
    browser, intake = web
    r = await _report(intake, "a", "cháy", A)
    await browser.login("cuuhoa")
    assert (await browser.get(f"/api/v1/reports/{r.report_id}"))[0] == 200
    status, body = await browser.post(f"/api/v1/reports/{r.report_id}/category", {"category": "police"})
    assert status == 403 and body["error"] == "forbidden"


async def test_the_offline_base_map_is_the_gazetteers_wards(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    await browser.login("lan")
    status, wards = await browser.get("/api/v1/map/wards")
    assert status == 200 and wards["type"] == "FeatureCollection"
    names = {f["properties"]["name"] for f in wards["features"]}
    assert "Phường Hoàn Kiếm" in names and len(names) > 100  # Hà Nội, the default province
    assert all(f["properties"]["radius_m"] > 0 for f in wards["features"])
    assert (await browser.get("/api/v1/map/wards?province=zz"))[1]["field"] == "province"


async def test_openapi_describes_the_console_routes(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    _, doc = await browser.get("/api/v1/openapi.json")
    for path in ["/reports/{id}", "/reports/{id}/category", "/reports/{id}/location", "/reports/{id}/attach",
                 "/reports/{id}/new-incident", "/calls/{linkedid}/transfer", "/calls/{linkedid}/hangup",
                 "/calls/{linkedid}/callback", "/map/wards", "/me"]:
        assert path in doc["paths"], path
    assert "get" in doc["paths"]["/reports"] and "post" in doc["paths"]["/reports"]


# --- the call actions, through the AMI bridge ---------------------------------------------------------------

async def test_call_actions_without_asterisk_are_503(web: tuple[Browser, Intake]) -> None:
    browser, _ = web
    await browser.login("lan")
    for action, body in [("transfer", {"agency": "fire"}), ("hangup", {}), ("callback", {})]:
        status, answer = await browser.post(f"/api/v1/calls/1795318919.0/{action}", body)
        assert status == 503 and "INTAKE_AMI_SECRET" in answer["detail"]


@pytest.fixture
async def with_ami(store: Store, clock: Clock, request: pytest.FixtureRequest
                   ) -> AsyncIterator[tuple[Browser, Any, Any]]:
    from intake.telephony.ami_replay import AmiReplayServer

    await _users(store, clock)
    async with AmiReplayServer(AMI / request.param, speed=20) as ami:
        app = create_app(Settings(ami_port=ami.port, ami_secret="intake-secret"), store=store)
        async with TestClient(TestServer(app)) as client:
            bridge = app[BRIDGE]
            await asyncio.wait_for(bridge.connected.wait(), 10)
            browser = Browser(client)
            await browser.login("lan")
            yield browser, bridge, app[INTAKE]


async def _until(condition: Any, seconds: float = 10) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - the bridge's state is read from outside on purpose
            await asyncio.sleep(0.02)
    await asyncio.wait_for(wait(), seconds)


@pytest.mark.parametrize("with_ami", ["normal_call.txt"], indirect=True)
async def test_an_unknown_call_is_409_and_asterisks_refusal_is_a_clear_502(with_ami: tuple[Browser, Any, Any]) -> None:
    browser, bridge, _ = with_ami
    status, body = await browser.post("/api/v1/calls/nosuch.1/transfer", {"agency": "fire"})
    assert status == 409 and body["error"] == "call_not_live"
    await _until(lambda: "1795318919.0" in bridge.calls)
    status, body = await browser.post("/api/v1/calls/1795318919.0/transfer", {"agency": "aliens"})
    assert status == 400 and body["field"] == "agency"
    status, body = await browser.post("/api/v1/calls/1795318919.0/transfer", {"agency": "fire"})
    # This capture never saw a Redirect, so the replayed Asterisk refuses it as the real one would.
    assert status == 502 and body["error"] == "ami_error" and "Invalid/unknown command" in body["detail"]


@pytest.mark.parametrize("with_ami", ["ami_redirect_hangup.txt"], indirect=True)
async def test_transfer_through_the_api_redirects_the_live_call(with_ami: tuple[Browser, Any, Any]) -> None:
    browser, bridge, intake = with_ami
    await _until(lambda: bool(bridge.calls))
    for _ in range(4):  # the captured operator's actions before the Redirect, in the captured order
        await bridge.action("CoreShowChannels")
    await _until(lambda: all(c.audio_uuid for c in bridge.calls.values()))
    (linkedid,) = bridge.calls
    await bridge.action("Status", Channel=bridge.calls[linkedid].channel)
    for name in ("INTAKE_UUID", "CALLERID(num)", "NO_SUCH_VAR"):
        await bridge.get_var(linkedid, name)
    await bridge.set_var(linkedid, "INTAKE_PRIORITY", "high")
    await bridge.get_var(linkedid, "INTAKE_PRIORITY")
    with pytest.raises(Exception, match="No such channel"):
        await bridge.action("Getvar", Channel="PJSIP/nosuch-00000000", Variable="X")
    status, body = await browser.post(f"/api/v1/calls/{linkedid}/transfer", {"agency": "fire"})
    assert status == 200 and body["transferred_to"] == "fire"
    async with intake.store.read() as repo:
        row = await repo.report_by_ref("call", linkedid)
    assert row["raw"]["call"]["transferred_to"] == "fire"


@pytest.mark.parametrize("with_ami", ["ami_originate.txt"], indirect=True)
async def test_call_back_through_the_api_is_kept_on_the_abandoned_calls_report(
        with_ami: tuple[Browser, Any, Intake]) -> None:
    browser, bridge, intake = with_ami
    abandoned = await intake.ingest(ReportIn(channel="call", channel_ref="1795318930.1", received_at=intake.clock(),
                                             phone="15551230002", dialled_number="112", raw={"linkedid": "x"}))
    status, body = await browser.post("/api/v1/calls/1795318930.1/callback", {})
    # Accepted while the phone rings; the outcome comes from Asterisk's OriginateResponse afterwards.
    assert status == 202 and body["number"] == "15551230002" and body["channel_id"].startswith("callback-")
    assert body["outcome"] == "ringing"
    assert (await browser.post("/api/v1/calls/nosuch.9/callback", {}))[0] == 404
    for _ in range(100):
        _, report = await browser.get(f"/api/v1/reports/{abandoned.report_id}")
        if report["callbacks"] and report["callbacks"][0]["outcome"] != "ringing":
            break
        await asyncio.sleep(0.05)
    (attempt,) = report["callbacks"]
    assert attempt["channel_id"] == body["channel_id"] and attempt["outcome"] == "answered"
    assert attempt["reason"] == 4  # OriginateResponse Reason 4: answered
    for _ in range(3):  # let the replay play out the rest of the capture
        await bridge.action("CoreShowChannels")


# --- the command line --------------------------------------------------------------------------------------

def test_users_create_reads_the_password_from_stdin_and_has_no_default(tmp_path: Path) -> None:
    env = {**os.environ, "INTAKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}

    def intake(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intake.cli", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=120)

    refused = intake("users", "create", "--name", "admin", "--role", "admin")  # nothing on stdin: no password
    assert refused.returncode == 2 and "at least" in refused.stderr
    made = intake("users", "create", "--name", "admin", "--role", "admin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    dispatcher = intake("users", "create", "--name", "cuuhoa", "--role", "dispatcher", stdin=PASSWORD + "\n")
    assert dispatcher.returncode == 2 and "agency" in dispatcher.stderr
    listing = intake("users", "list")
    assert "admin" in listing.stdout and PASSWORD not in listing.stdout
    assert intake("users", "disable", "--name", "admin").returncode == 0
    assert "disabled" in intake("users", "list").stdout
