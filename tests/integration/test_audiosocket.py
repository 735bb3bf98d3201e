"""The AudioSocket server against byte streams captured from a real Asterisk 22.

Each capture is replayed (20x faster than it was recorded) to a real server on an
ephemeral loopback port, exactly as Asterisk sent it: UUID first, 20 ms audio frames,
DTMF frames, then a plain TCP close.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from intake.telephony.audiosocket import (
    AudioChunk,
    AudioSocketServer,
    CallAudio,
    DtmfDigit,
    Frame,
    FrameParser,
    Kind,
    encode,
    stream_bin,
)
from tests.conftest import SHARED

CAPTURES = SHARED / "fixtures" / "asterisk" / "audiosocket"
BINS = sorted(CAPTURES.glob("*.bin"))
SPEED = 20.0


@dataclass
class Recorded:
    uuid: uuid.UUID | None = None
    audio_frames: int = 0
    audio_bytes: int = 0
    sample_rates: set[int] = field(default_factory=set)
    digits: str = ""
    end_reason: str = ""
    hung_up_by_server: bool = False


def summary(capture: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(capture.with_suffix(".json").read_text())
    return result


def recording_handler(calls: list[Recorded]) -> Callable[[CallAudio], Awaitable[None]]:
    async def on_call(call: CallAudio) -> None:
        record = Recorded(uuid=call.uuid)
        calls.append(record)
        async for event in call:
            if isinstance(event, AudioChunk):
                record.audio_frames += 1
                record.audio_bytes += len(event.pcm)
                record.sample_rates.add(event.sample_rate)
            elif isinstance(event, DtmfDigit):
                record.digits += event.digit
        record.end_reason = call.end_reason
        record.hung_up_by_server = call.hung_up_by_server

    return on_call


@pytest.fixture
async def recording_server() -> AsyncIterator[tuple[AudioSocketServer, list[Recorded]]]:
    calls: list[Recorded] = []
    async with AudioSocketServer(recording_handler(calls), "127.0.0.1", 0) as server:
        yield server, calls


@pytest.mark.parametrize("capture", BINS, ids=[p.stem for p in BINS])
async def test_replayed_call_reaches_on_call_intact(
    capture: Path, recording_server: tuple[AudioSocketServer, list[Recorded]]
) -> None:
    server, calls = recording_server
    expected = summary(capture)
    await stream_bin(capture, "127.0.0.1", server.port, speed=SPEED)
    await server.close()  # waits for the connection handler, so on_call has finished
    assert len(calls) == 1
    call = calls[0]
    assert call.uuid == uuid.UUID(expected["uuid"])
    assert call.audio_bytes == expected["audio_bytes"]
    audio_frames = sum(n for kind, n in expected["frames"].items() if kind.startswith("slin"))
    assert call.audio_frames == audio_frames
    assert call.digits == "".join(digit for _, digit in expected["dtmf"])
    assert call.end_reason == "closed by asterisk (EOF)"
    assert not call.hung_up_by_server


@pytest.mark.parametrize("capture", BINS, ids=[p.stem for p in BINS])
async def test_server_sends_silence_back_while_the_call_is_open(
    capture: Path, recording_server: tuple[AudioSocketServer, list[Recorded]]
) -> None:
    server, _ = recording_server
    result = await stream_bin(capture, "127.0.0.1", server.port, speed=SPEED)
    audio_kind = Kind.SLIN_16K if "slin16" in summary(capture)["frames"] else Kind.SLIN
    silence = [f for f in result.received if f.kind == audio_kind]
    assert len(silence) > 0
    assert all(f.payload == bytes(len(f.payload)) for f in silence)
    assert len(result.received) == len(silence)  # nothing else: no hangup, no error
    assert result.server_closed and not result.server_hung_up


def test_dtmf_capture_carries_112_hash() -> None:
    assert "".join(d for _, d in summary(CAPTURES / "dtmf_call.bin")["dtmf"]) == "112#"


async def test_dtmf_digits_arrive_in_order(recording_server: tuple[AudioSocketServer, list[Recorded]]) -> None:
    server, calls = recording_server
    await stream_bin(CAPTURES / "dtmf_call.bin", "127.0.0.1", server.port, speed=SPEED)
    await server.close()
    assert calls[0].digits == "112#"


async def test_channel_driver_variant_is_16_khz(recording_server: tuple[AudioSocketServer, list[Recorded]]) -> None:
    server, calls = recording_server
    result = await stream_bin(CAPTURES / "chan_audiosocket_dial.bin", "127.0.0.1", server.port, speed=SPEED)
    await server.close()
    assert calls[0].sample_rates == {16000}
    assert {len(f.payload) for f in result.received if f.kind == Kind.SLIN_16K} == {640}


async def test_8_khz_silence_frames_are_320_bytes(recording_server: tuple[AudioSocketServer, list[Recorded]]) -> None:
    server, calls = recording_server
    result = await stream_bin(CAPTURES / "normal_call.bin", "127.0.0.1", server.port, speed=SPEED)
    await server.close()
    assert calls[0].sample_rates == {8000}
    assert {(f.kind, len(f.payload)) for f in result.received} == {(Kind.SLIN, 320)}


async def test_hangup_sends_a_zero_frame_and_closes() -> None:
    capture = CAPTURES / "server_hangup.bin"
    states: list[bool] = []

    async def on_call(call: CallAudio) -> None:
        frames = 0
        async for event in call:
            if isinstance(event, AudioChunk):
                frames += 1
                if frames == 25:
                    await call.hangup()
                    states.append(call.closed)

    async with AudioSocketServer(on_call, "127.0.0.1", 0) as server:
        result = await stream_bin(capture, "127.0.0.1", server.port, speed=SPEED)
    assert states == [True]
    assert result.server_hung_up
    assert result.received[-1] == Frame(Kind.HANGUP, b"")
    assert result.count(Kind.HANGUP) == 1
    assert result.frames_sent < len(FrameParser().feed(capture.read_bytes()))


async def test_call_still_open_when_on_call_returns_is_hung_up() -> None:
    async def on_call(call: CallAudio) -> None:
        async for _ in call:
            return

    async with AudioSocketServer(on_call, "127.0.0.1", 0) as server:
        result = await stream_bin(CAPTURES / "normal_call.bin", "127.0.0.1", server.port, speed=SPEED)
    assert result.server_hung_up


async def test_connection_not_starting_with_uuid_is_refused() -> None:
    calls: list[Recorded] = []
    async with AudioSocketServer(recording_handler(calls), "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode(Frame(Kind.SLIN, bytes(320))))
        await writer.drain()
        async with asyncio.timeout(5):
            reply = await reader.read()  # until the server closes
        writer.close()
        await writer.wait_closed()
    frames = FrameParser().feed(reply)
    assert [f.kind for f in frames] == [Kind.ERROR]
    assert calls == []


async def test_frames_after_the_uuid_in_the_same_read_are_kept() -> None:
    calls: list[Recorded] = []
    call_uuid = uuid.uuid4()
    async with AudioSocketServer(recording_handler(calls), "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            encode(Frame(Kind.UUID, call_uuid.bytes))
            + encode(Frame(Kind.DTMF, b"5"))
            + encode(Frame(0x42, b"??"))
            + encode(Frame(Kind.SLIN, bytes(320)))
        )
        writer.write_eof()
        async with asyncio.timeout(5):
            await reader.read()
        writer.close()
        await writer.wait_closed()
    assert calls[0].uuid == call_uuid
    assert calls[0].digits == "5"
    assert calls[0].audio_frames == 1  # the unknown kind 0x42 was skipped


async def test_error_frame_from_asterisk_ends_the_call() -> None:
    calls: list[Recorded] = []
    async with AudioSocketServer(recording_handler(calls), "127.0.0.1", 0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode(Frame(Kind.UUID, uuid.uuid4().bytes)) + encode(Frame(Kind.ERROR, b"\x04")))
        async with asyncio.timeout(5):
            await reader.read()  # the server closes without waiting for our EOF
        writer.close()
        await writer.wait_closed()
    assert calls[0].end_reason == "error 04"


async def test_a_call_that_outlasts_the_stop_is_cut_without_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """close() cancels a handler still busy after its grace; the connection ends quietly (on Python 3.11 a
    cancelled stream handler made asyncio log an ERROR from its own callback)."""
    started = asyncio.Event()

    async def on_call(call: CallAudio) -> None:
        started.set()
        await asyncio.Event().wait()  # a recognizer that never finishes flushing

    server = AudioSocketServer(on_call, "127.0.0.1", 0)
    await server.start()
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(encode(Frame(Kind.UUID, uuid.uuid4().bytes)))
    await writer.drain()
    await asyncio.wait_for(started.wait(), 5)
    with caplog.at_level("WARNING"):
        await server.close(grace_s=0.1)
        await asyncio.sleep(0.05)  # let asyncio run the stream's done-callback
    writer.close()
    await writer.wait_closed()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert "cut by the stop" in caplog.text
