"""Twilio Media Streams: the WebSocket Twilio opens after the voice webhook's <Connect><Stream>.

The voice webhook (``POST /webhooks/twilio/voice``) has already made the call's report, with
``channel_ref = twilio:<CallSid>``, and passed its id as a custom parameter. Here the stream's
``start`` message names the call; its inbound mu-law audio is decoded and fed to the same
recognizer road as AudioSocket audio (``CallAudioRouter.transcribe``), and DTMF digits are kept.

A stream whose call has no report, or whose ``report_id`` parameter names another report, is
refused: a WebSocket that passed the signature check still cannot write text into any report.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import WSMsgType, web

from intake.pipeline import Intake
from intake.telephony.audiosocket import AudioChunk, CallEvent, DtmfDigit
from intake.telephony.twilio_media import (
    Connected,
    Dtmf,
    MalformedMessageError,
    Mark,
    Media,
    Start,
    Stop,
    TwilioMessage,
    UnknownEventError,
    parse_message,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
ENCODING = "audio/x-mulaw"


class StreamRefused(Exception):
    """The stream cannot be tied to a call: closed with WebSocket code 1008 (policy violation)."""


@dataclass(slots=True)
class StreamOutcome:
    report_id: int
    call_sid: str
    stream_sid: str
    media_messages: int = 0
    dtmf: str = ""
    stopped: bool = False  # Twilio sent `stop` (rather than the socket just closing)


async def ws_messages(ws: web.WebSocketResponse) -> AsyncIterator[TwilioMessage]:
    """Twilio's messages on an open WebSocket. A malformed or unknown message is logged and skipped:
    one bad frame must not cost the caller their transcript."""
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            try:
                yield parse_message(msg.data)
            except UnknownEventError as exc:
                log.info("Twilio stream: %s; ignored", exc)
            except MalformedMessageError as exc:
                log.warning("Twilio stream: malformed message skipped: %s", exc)
        elif msg.type == WSMsgType.BINARY:
            log.warning("Twilio stream: a binary frame (%d bytes) is not part of the protocol; skipped", len(msg.data))
        elif msg.type == WSMsgType.ERROR:
            log.warning("Twilio stream: socket error %s", ws.exception())
            return


async def _start(messages: AsyncIterator[TwilioMessage]) -> Start | None:
    async for m in messages:
        if isinstance(m, Connected):
            continue
        if isinstance(m, Start):
            return m
        raise StreamRefused(f"a {type(m).__name__.lower()} message came before start")
    return None


async def _call_events(messages: AsyncIterator[TwilioMessage], outcome: StreamOutcome) -> AsyncIterator[CallEvent]:
    async for m in messages:
        if isinstance(m, Media):
            if m.track != "inbound":  # the caller; "outbound" is what we would play back
                continue
            outcome.media_messages += 1
            yield AudioChunk(m.pcm(), SAMPLE_RATE)
        elif isinstance(m, Dtmf):
            outcome.dtmf += m.digit
            yield DtmfDigit(m.digit)
        elif isinstance(m, Stop):
            outcome.stopped = True
            return
        elif isinstance(m, Mark | Connected | Start):
            continue


class Transcriber(Protocol):
    """What the stream's audio is given to (CallAudioRouter)."""

    async def transcribe(self, report_id: int, key: str, audio: AsyncIterable[CallEvent]) -> None: ...


async def serve_stream(messages: AsyncIterator[TwilioMessage], intake: Intake,
                       router: Transcriber | None) -> StreamOutcome | None:
    """Run one Media Stream to its end; None when the socket closed before `start`."""
    start = await _start(messages)
    if start is None:
        return None
    fmt = start.media_format
    if (fmt.encoding, fmt.sample_rate, fmt.channels) != (ENCODING, SAMPLE_RATE, 1):
        raise StreamRefused(f"media format {fmt.encoding} {fmt.sample_rate} Hz x{fmt.channels} is not "
                            f"{ENCODING} {SAMPLE_RATE} Hz mono")
    async with intake.store.read() as repo:
        found = await repo.reports_by_refs([("call", f"twilio:{start.call_sid}")])
    if not found:
        raise StreamRefused(f"call {start.call_sid} has no report (the voice webhook makes it first)")
    report_id = int(found[0]["id"])
    claimed = start.custom_parameters.get("report_id")
    if claimed is not None and claimed != str(report_id):
        raise StreamRefused(f"report_id {claimed!r} is not the report of call {start.call_sid}")
    outcome = StreamOutcome(report_id=report_id, call_sid=start.call_sid, stream_sid=start.stream_sid)
    events = _call_events(messages, outcome)
    if router is not None:
        await router.transcribe(report_id, f"twilio:{start.call_sid}", events)
    else:
        log.warning("Twilio stream for call %s: no speech recognizer configured; audio not transcribed",
                    start.call_sid)
        async for _ in events:
            pass
    await intake.update_report(report_id, raw_patch={"media_stream": {
        "stream_sid": outcome.stream_sid, "media_messages": outcome.media_messages, "dtmf": outcome.dtmf,
        "stopped": outcome.stopped, "ended_at": intake.clock().isoformat()}}, actor="audio")
    return outcome
