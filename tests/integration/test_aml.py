"""AML: fixes by SMS (Twilio) and HTTPS (ELS) become the location of the caller's call report."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from intake import locfix
from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.store import Store
from intake.store.tables import location_fixes, reports
from intake.telephony import screenpop
from intake.telephony.ami_replay import AmiReplayServer, Entry, load_transcript
from tests.conftest import Clock
from tests.integration.test_ami import AMI, SPEED, Recorder, bridge_on, call_reports
from tests.integration.test_sms import TOKEN, count, load_http, rows, send

SMS = Path(__file__).parent.parent / "fixtures" / "sms"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "aml"
KEY = "aml-test-key-7d3c2a91"
CALLER = "0912345678"  # the number every AML fixture comes from (+84912345678)


@pytest.fixture
async def client(store: Store, clock: Clock) -> AsyncIterator[TestClient]:
    from intake.web.app import create_app

    settings = Settings(extra={"twilio_auth_token": TOKEN, "aml_hmac_key": KEY})
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as c:
        yield c


def intake_of(client: TestClient) -> Intake:
    from intake.web.app import INTAKE

    return client.app[INTAKE]


def normal_call_from(number: str) -> list[Entry]:
    """The real normal_call capture, the caller's number replaced by a Vietnamese mobile."""
    return [Entry(e.direction, e.t, e.data.replace(b"15551230001", number.encode()))
            for e in load_transcript(AMI / "normal_call.txt")]


async def call_report(intake: Intake, ref: str = "1795318919.0", phone: str = CALLER) -> int:
    """A call report made the way the AMI bridge makes one at Newchannel."""
    result = await intake.ingest(ReportIn(channel="call", channel_ref=ref, received_at=intake.clock(), phone=phone,
                                          dialled_number="112", raw={"linkedid": ref, "caller_number": phone}))
    return result.report_id


async def report(store: Store, report_id: int) -> dict[str, Any]:
    (row,) = await rows(store, reports, id=report_id)
    return row


def expected(name: str) -> tuple[int, int]:
    """(HTTP status, fixes stored) for an HTTPS fixture."""
    if "forged" in name:
        return 403, 0
    if "unsigned" in name:
        return 401, 0
    if "malformed" in name:
        return 400, 0
    return 200, 0 if "no_location" in name else 1


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("https__*.http")), ids=lambda p: p.stem)
async def test_every_https_fixture(client: TestClient, store: Store, path: Path) -> None:
    resp = await send(client, load_http(path))
    status, stored = expected(path.stem)
    assert resp.status == status, await resp.text()
    assert await count(store, location_fixes) == stored
    assert await count(store, reports) == 0  # a fix is never a report
    body = await resp.json()
    if status == 200:
        assert body["status"] == ("no_location" if stored == 0 else "waiting")
    else:
        assert body["detail"]


async def test_an_aml_sms_5_s_into_the_call_locates_the_call(client: TestClient, store: Store, clock: Clock) -> None:
    """Done when: an AML SMS for the caller's number arriving 5 s into the call gives the call its location."""
    intake = intake_of(client)
    rec = Recorder()
    async with AmiReplayServer(normal_call_from(CALLER), speed=SPEED) as server, \
            bridge_on(server, intake, rec, clock=clock):
        await rec.wait_for("ringing")
        (call,) = await call_reports(intake)
        assert call["phone"] == "+84912345678" and call["lat"] is None
        clock.advance(seconds=5)
        posted = load_http(SMS / "aml__v1_gnss.http")
        resp = await send(client, posted)
        assert resp.status == 200 and "<Message>" not in await resp.text()
        await rec.wait_for("hungup")
    (call,) = await call_reports(intake)
    assert (call["lat"], call["lon"], call["accuracy_m"]) == (21.03412, 105.85067, 12.0)
    assert call["location_source"] == "aml"
    assert call["location_observed_at"].isoformat() == "2026-11-22T08:00:04+00:00"
    assert call["raw"]["aml"]["method"] == "gps" and call["raw"]["call"]["hangup_cause"] == 0
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] == call["id"] and fix["applied_at"] == clock.now
    async with store.read() as repo:
        incident = await repo.incident(call["incident_id"])
    assert incident is not None and (incident["lat"], incident["lon"]) == (21.03412, 105.85067)
    assert await count(store, reports, channel="sms") == 0


async def test_an_aml_sms_before_the_call_is_applied_when_the_call_appears(
        client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    assert (await send(client, load_http(SMS / "aml__v1_gnss.http"))).status == 200
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] is None
    clock.advance(seconds=10)
    rec = Recorder()
    async with AmiReplayServer(normal_call_from(CALLER), speed=SPEED) as server, \
            bridge_on(server, intake, rec, clock=clock):
        await rec.wait_for("ringing")
        (call,) = await call_reports(intake)
        # applied before the screen-pop went out
        assert (call["lat"], call["lon"], call["location_source"]) == (21.03412, 105.85067, "aml")
        await rec.wait_for("hungup")
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] == call["id"] and fix["applied_at"] is not None
    async with store.read() as repo:
        pops = [r for r in await repo.outbox_after(0) if r["kind"] == "call.ringing"]
    assert pops[0]["payload"]["last_location"]["source"] == "aml"
    assert pops[0]["payload"]["last_location"]["lat"] == 21.03412


async def test_a_fix_long_before_the_call_is_not_taken_for_it(client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    await send(client, load_http(SMS / "aml__v1_gnss.http"))
    clock.advance(minutes=3)
    call_id = await call_report(intake)
    assert await locfix.apply_pending(intake, call_id) is None
    assert (await report(store, call_id))["lat"] is None
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] is None


async def test_a_call_taker_confirmed_location_is_not_overwritten(
        client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    call_id = await call_report(intake)
    confirmed = Location(21.0285, 105.8542, 5.0, LocationSource.CALLTAKER, label="Nhà hát Lớn")
    await intake.update_report(call_id, location=confirmed, actor="calltaker:lan")
    clock.advance(seconds=5)
    assert (await send(client, load_http(SMS / "aml__v1_gnss.http"))).status == 200
    row = await report(store, call_id)
    assert (row["lat"], row["lon"], row["location_source"]) == (21.0285, 105.8542, "calltaker")
    assert row["raw"]["aml"]["lat"] == 21.03412  # the fix is on record, the place a person confirmed stays
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] == call_id


async def test_a_retried_aml_sms_is_one_fix(client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    call_id = await call_report(intake)
    posted = load_http(SMS / "aml__v1_gnss.http")
    first = await send(client, posted)
    clock.advance(seconds=20)
    again = await send(client, posted)
    assert first.status == again.status == 200
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] == call_id and fix["received_at"] == clock.now - timedelta(seconds=20)
    assert await count(store, reports) == 1


async def test_a_forged_aml_sms_is_403_and_moves_nothing(client: TestClient, store: Store) -> None:
    intake = intake_of(client)
    call_id = await call_report(intake)
    resp = await send(client, load_http(SMS / "aml__forged_signature.http"))
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    assert await count(store, location_fixes) == 0
    assert (await report(store, call_id))["lat"] is None


async def test_an_https_fix_locates_the_call(client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    call_id = await call_report(intake)
    clock.advance(seconds=6)
    resp = await send(client, load_http(FIXTURES / "https__gps.http"))
    assert resp.status == 200
    outcome = await resp.json()
    assert outcome["status"] == "applied" and outcome["report_id"] == call_id and outcome["incident_id"]
    row = await report(store, call_id)
    assert (row["lat"], row["lon"], row["accuracy_m"], row["location_source"]) == (21.0341235, 105.8506712, 9.6, "aml")
    (fix,) = await rows(store, location_fixes)
    assert fix["channel"] == "aml_https" and len(fix["channel_ref"]) == 64 and fix["raw"]["device_model"] == "Pixel 8"
    again = await (await send(client, load_http(FIXTURES / "https__gps.http"))).json()
    assert again["status"] == "already_applied" and again["duplicate"] is True
    assert await count(store, location_fixes) == 1


async def test_a_better_fix_replaces_a_coarser_one_and_a_worse_one_does_not(
        client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    call_id = await call_report(intake)
    clock.advance(seconds=6)
    await send(client, load_http(FIXTURES / "https__wifi_local_number.http"))  # Wi-Fi, 24 m
    assert (await report(store, call_id))["accuracy_m"] == 24.0
    await send(client, load_http(SMS / "aml__v2_els_beta.http"))  # fused, 9.6 m
    row = await report(store, call_id)
    assert (row["lat"], row["lon"], row["accuracy_m"]) == (21.03398, 105.85101, 9.6)
    await send(client, load_http(SMS / "aml__v1_gnss.http"))  # GNSS, 12 m: not better
    assert (await report(store, call_id))["accuracy_m"] == 9.6
    assert await count(store, location_fixes) == 3


async def test_a_fix_goes_to_its_own_number_and_only_to_a_recent_call(
        client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    old_call = await call_report(intake, ref="1795300000.0")
    clock.advance(minutes=61)
    other = await call_report(intake, ref="1795318919.0", phone="0987654321")
    await send(client, load_http(SMS / "aml__v1_gnss.http"))
    assert (await report(store, old_call))["lat"] is None and (await report(store, other))["lat"] is None
    (fix,) = await rows(store, location_fixes)
    assert fix["report_id"] is None  # it waits for a call from +84912345678


async def test_the_screen_pop_prefers_the_newest_aml_fix(client: TestClient, store: Store, clock: Clock) -> None:
    intake = intake_of(client)
    earlier = await intake.ingest(ReportIn(channel="app", channel_ref="r-1", received_at=clock.now, phone=CALLER,
                                           text="Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm"))
    assert earlier.location is not None
    clock.advance(minutes=5)
    await send(client, load_http(SMS / "aml__v1_gnss.http"))
    pop = await screenpop.build(intake, caller_number=CALLER, line="112", report_id=None, incident_id=None, call={})
    assert pop["last_location"]["source"] == "aml" and pop["last_location"]["lat"] == 21.03412
    clock.advance(minutes=5)  # the caller reports again, from somewhere else, after the fix
    await intake.update_report(earlier.report_id, location=Location(21.0, 105.8, 5.0, LocationSource.GPS))
    pop = await screenpop.build(intake, caller_number=CALLER, line="112", report_id=None, incident_id=None, call={})
    assert pop["last_location"]["source"] == "gps"


async def test_the_https_door_is_off_until_configured(store: Store) -> None:
    from intake.web.app import create_app

    async with TestClient(TestServer(create_app(Settings(), store=store))) as c:
        resp = await send(c, load_http(FIXTURES / "https__gps.http"))
        assert resp.status == 404 and "INTAKE_AML_HMAC_KEY" in (await resp.json())["detail"]


async def test_a_fix_before_a_twilio_voice_call_is_applied_to_it(client: TestClient, clock: Clock) -> None:
    await send(client, load_http(SMS / "aml__v1_gnss.http"))
    clock.advance(seconds=3)
    form = json.loads((SMS.parent / "twilio_voice" / "incoming__call.json").read_text())
    assert form["From"] == "+84912345678"
    signature = RequestValidator(TOKEN).compute_signature(str(client.make_url("/webhooks/twilio/voice")), form)
    resp = await client.post("/webhooks/twilio/voice", data=form, headers={"X-Twilio-Signature": signature})
    assert resp.status == 200
    (call,) = await call_reports(intake_of(client))
    assert (call["lat"], call["lon"], call["location_source"]) == (21.03412, 105.85067, "aml")
