"""Twilio Media Streams: the WebSocket after <Connect><Stream>, its mu-law audio into the call's report."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from intake.config import Settings
from intake.pipeline import Intake
from intake.store import Store
from intake.telephony.asr import default_model_dirs
from intake.telephony.audiosocket import Kind, read_capture
from intake.telephony.twilio_media import encode_mulaw
from tests.conftest import SHARED
from tests.integration.test_ami import call_reports

TOKEN = "12345678901234567890123456789012"
FIXTURES = Path(__file__).parent.parent / "fixtures"
FORM = json.loads((FIXTURES / "twilio_voice" / "incoming__call.json").read_text())
CALL_SID = FORM["CallSid"]
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


async def _client(store: Store, **settings: Any) -> AsyncIterator[TestClient]:
    from intake.web.app import create_app

    app = create_app(Settings(extra={"twilio_auth_token": TOKEN}, **settings), store=store)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient]:
    async for c in _client(store):
        yield c


async def answer_call(client: TestClient) -> int:
    """The voice webhook, as Twilio calls it: the report is made and its id handed to the stream."""
    url = str(client.make_url("/webhooks/twilio/voice"))
    sig = RequestValidator(TOKEN).compute_signature(url, FORM)
    resp = await client.post("/webhooks/twilio/voice", data=FORM, headers={"X-Twilio-Signature": sig})
    assert resp.status == 200
    twiml = await resp.text()
    return int(twiml.split('name="report_id" value="')[1].split('"')[0])


def stream_headers(client: TestClient, path: str = "/webhooks/twilio/media") -> dict[str, str]:
    url = f"wss://{client.make_url(path).raw_authority}{path}"
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, {})}


def start_message(report_id: int | str, call_sid: str = CALL_SID) -> dict[str, Any]:
    start = json.loads((FIXTURES / "twilio_media" / "start__inbound.json").read_text())
    start["start"]["callSid"] = call_sid
    start["start"]["customParameters"] = {"report_id": str(report_id), "call_sid": call_sid}
    return start


def media_messages(seconds: float | None = None) -> list[dict[str, Any]]:
    """The caller's speech from the real Asterisk capture, re-encoded as Twilio sends it: 20 ms of mu-law."""
    frames = [f for _, f in read_capture(SHARED / "fixtures" / "asterisk" / "audiosocket" / "normal_call.bin")
              if f.kind == Kind.SLIN]
    if seconds is not None:
        frames = frames[: int(seconds * 50)]
    return [{"event": "media", "sequenceNumber": str(i + 2), "streamSid": STREAM_SID,
             "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20),
                       "payload": base64.b64encode(encode_mulaw(f.payload)).decode()}}
            for i, f in enumerate(frames)]


def tail(seq: int) -> list[dict[str, Any]]:
    return [
        {"event": "dtmf", "streamSid": STREAM_SID, "sequenceNumber": str(seq),
         "dtmf": {"track": "inbound_track", "digit": "1"}},
        {"event": "stop", "sequenceNumber": str(seq + 1), "streamSid": STREAM_SID,
         "stop": {"accountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "callSid": CALL_SID}},
    ]


async def play(client: TestClient, messages: list[dict[str, Any]]) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/webhooks/twilio/media", headers=stream_headers(client))
    await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    for m in messages:
        await ws.send_json(m)
    return ws


async def report_of(store: Store) -> dict[str, Any]:
    (report,) = await call_reports(Intake(store))
    return report


async def test_a_stream_without_speech_keeps_the_call_and_its_digits(client: TestClient, store: Store) -> None:
    report_id = await answer_call(client)
    media = media_messages(seconds=1)
    ws = await play(client, [start_message(report_id), *media, *tail(len(media) + 2)])
    await ws.receive()  # the server closes once the stream has stopped and is recorded
    report = await report_of(store)
    assert report["id"] == report_id
    assert report["raw"]["media_stream"]["stream_sid"] == STREAM_SID
    assert report["raw"]["media_stream"]["media_messages"] == 50
    assert report["raw"]["media_stream"]["dtmf"] == "1" and report["raw"]["media_stream"]["stopped"] is True


async def test_the_callers_speech_becomes_the_call_reports_transcript(store: Store) -> None:
    async for client in _client(store, asr_model=default_model_dirs()["ko"], asr_workers=1):
        report_id = await answer_call(client)
        media = media_messages()
        ws = await play(client, [start_message(report_id), *media, *tail(len(media) + 2)])
        await ws.receive()
    report = await report_of(store)
    assert report["text"], "the stream's audio reached no transcript"
    assert report["raw"]["media_stream"]["media_messages"] == len(media)
    async with Intake(store).store.read() as repo:
        kinds = [o["kind"] for o in await repo.outbox_after(0)]
    assert "call.transcript" in kinds


async def test_a_forged_stream_handshake_is_refused(client: TestClient, store: Store) -> None:
    await answer_call(client)
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await client.ws_connect("/webhooks/twilio/media", headers={"X-Twilio-Signature": "forged"})
    assert err.value.status == 403


@pytest.mark.parametrize("claimed", ["999", "other-call"])
async def test_a_stream_that_names_another_report_or_an_unknown_call_is_closed(
        client: TestClient, store: Store, claimed: str) -> None:
    report_id = await answer_call(client)
    start = start_message(claimed, call_sid=CALL_SID) if claimed == "999" else \
        start_message(report_id, call_sid="CA" + "f" * 32)
    ws = await play(client, [start, *media_messages(seconds=0.2)])
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
    report = await report_of(store)
    assert "media_stream" not in report["raw"]


async def test_media_before_start_is_refused(client: TestClient, store: Store) -> None:
    await answer_call(client)
    ws = await play(client, media_messages(seconds=0.1))
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008


async def test_a_malformed_message_is_skipped_and_the_stream_goes_on(client: TestClient, store: Store) -> None:
    report_id = await answer_call(client)
    media = media_messages(seconds=0.4)
    ws = await client.ws_connect("/webhooks/twilio/media", headers=stream_headers(client))
    await ws.send_json(start_message(report_id))
    await ws.send_str("{not json")
    await ws.send_json({"event": "media", "sequenceNumber": "2", "streamSid": STREAM_SID,
                        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "@@"}})
    for m in media:
        await ws.send_json(m)
    for m in tail(99):
        await ws.send_json(m)
    await ws.receive()
    report = await report_of(store)
    assert report["raw"]["media_stream"]["media_messages"] == len(media)
