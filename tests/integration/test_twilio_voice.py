"""Twilio's voice webhook: signed form posts in, TwiML <Connect><Stream> out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from intake.config import Settings
from intake.store import Store
from tests.integration.test_ami import call_reports

TOKEN = "12345678901234567890123456789012"
FORM = json.loads((Path(__file__).parent.parent / "fixtures" / "twilio_voice" / "incoming__call.json").read_text())


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient]:
    from intake.web.app import create_app

    app = create_app(Settings(extra={"twilio_auth_token": TOKEN}), store=store)
    async with TestClient(TestServer(app)) as c:
        yield c


def signed(client: TestClient, form: dict[str, str]) -> dict[str, str]:
    url = str(client.make_url("/webhooks/twilio/voice"))
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form)}


async def test_a_signed_call_becomes_a_report_and_gets_a_stream(client: TestClient, store: Store) -> None:
    resp = await client.post("/webhooks/twilio/voice", data=FORM, headers=signed(client, FORM))
    assert resp.status == 200 and resp.content_type == "text/xml"
    twiml = await resp.text()
    assert "<Connect><Stream" in twiml and "wss://" in twiml and "/webhooks/twilio/media" in twiml
    assert 'name="call_sid" value="CAa1b2c3d4e5f60718293a4b5c6d7e8f90"' in twiml
    from intake.pipeline import Intake

    (report,) = await call_reports(Intake(store))
    assert report["channel_ref"] == "twilio:CAa1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert report["phone"] == "+84912345678"


async def test_a_forged_signature_is_403_and_stores_nothing(client: TestClient, store: Store) -> None:
    resp = await client.post("/webhooks/twilio/voice", data=FORM, headers={"X-Twilio-Signature": "forged"})
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    tampered = {**FORM, "From": "+84999999999"}
    resp = await client.post("/webhooks/twilio/voice", data=tampered, headers=signed(client, FORM))
    assert resp.status == 403
    from intake.pipeline import Intake

    assert await call_reports(Intake(store)) == []


async def test_a_malformed_call_sid_is_400(client: TestClient, store: Store) -> None:
    bad = {**FORM, "CallSid": "nope"}
    resp = await client.post("/webhooks/twilio/voice", data=bad, headers=signed(client, bad))
    assert resp.status == 400 and (await resp.json())["field"] == "CallSid"


async def test_the_door_is_off_until_configured(store: Store) -> None:
    from intake.web.app import create_app

    async with TestClient(TestServer(create_app(Settings(), store=store))) as c:
        resp = await c.post("/webhooks/twilio/voice", data=FORM)
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"
