"""Asterisk AudioSocket: the frame codec, an asyncio server that keeps calls up, and a replay client for tests.

Wire format (one TCP connection per call): ``kind(1) | length(2, big-endian) | payload``.
Asterisk sends the call's UUID first, then signed-linear audio every 20 ms and one DTMF
frame per digit, and ends with a plain TCP close (never a 0x00 frame). ``app_audiosocket``
hangs the call up after about 2 s with no frames in either direction, so the server sends
a 20 ms silence frame back every 20 ms for as long as it wants the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Final

log = logging.getLogger(__name__)

HEADER_SIZE: Final = 3
MAX_PAYLOAD: Final = 0xFFFF
FRAME_MS: Final = 20
#: One silence frame this often keeps app_audiosocket's 2 s inactivity timer from firing (10× margin).
KEEPALIVE_S: Final = 0.2


class Kind(IntEnum):
    """AudioSocket frame kinds (Asterisk 22 ``res_audiosocket``)."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    SLIN = 0x10  # 8 kHz
    SLIN_12K = 0x11
    SLIN_16K = 0x12
    SLIN_24K = 0x13
    SLIN_32K = 0x14
    SLIN_44K = 0x15  # 44.1 kHz
    SLIN_48K = 0x16
    SLIN_96K = 0x17
    SLIN_192K = 0x18
    ERROR = 0xFF


_SAMPLE_RATES: Final[dict[int, int]] = {
    Kind.SLIN: 8000,
    Kind.SLIN_12K: 12000,
    Kind.SLIN_16K: 16000,
    Kind.SLIN_24K: 24000,
    Kind.SLIN_32K: 32000,
    Kind.SLIN_44K: 44100,
    Kind.SLIN_48K: 48000,
    Kind.SLIN_96K: 96000,
    Kind.SLIN_192K: 192000,
}
_KNOWN_KINDS: Final = frozenset(int(k) for k in Kind)


class AudioSocketError(Exception):
    """A frame that breaks the AudioSocket protocol."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One AudioSocket frame. ``kind`` is an int so unknown kinds survive parsing."""

    kind: int
    payload: bytes = b""


def is_audio(kind: int) -> bool:
    return kind in _SAMPLE_RATES


def sample_rate(kind: int) -> int:
    """Sample rate in Hz of a signed-linear audio kind; ValueError for other kinds."""
    try:
        return _SAMPLE_RATES[kind]
    except KeyError:
        raise ValueError(f"AudioSocket kind 0x{kind:02x} carries no audio") from None


def silence_frame(kind: int = Kind.SLIN, ms: int = FRAME_MS) -> Frame:
    """``ms`` of s16le silence at the rate of ``kind`` (320 bytes for 20 ms at 8 kHz)."""
    samples = sample_rate(kind) * ms // 1000
    return Frame(kind, bytes(2 * samples))


def encode(frame: Frame) -> bytes:
    if not 0 <= frame.kind <= 0xFF:
        raise AudioSocketError(f"frame kind {frame.kind} does not fit in one byte")
    if len(frame.payload) > MAX_PAYLOAD:
        raise AudioSocketError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    return bytes((frame.kind,)) + len(frame.payload).to_bytes(2, "big") + frame.payload


def uuid_of(frame: Frame) -> uuid.UUID:
    """The call UUID carried by a UUID frame (16 raw bytes)."""
    if frame.kind != Kind.UUID:
        raise AudioSocketError(f"expected a UUID frame, got kind 0x{frame.kind:02x}")
    if len(frame.payload) != 16:
        raise AudioSocketError(f"UUID frame has {len(frame.payload)} bytes, expected 16")
    return uuid.UUID(bytes=frame.payload)


class FrameParser:
    """Incremental parser: feed it TCP reads of any size, get back the complete frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= HEADER_SIZE:
            length = int.from_bytes(buffer[offset + 1 : offset + 3], "big")
            end = offset + HEADER_SIZE + length
            if end > len(buffer):
                break
            frames.append(Frame(buffer[offset], bytes(buffer[offset + HEADER_SIZE : end])))
            offset = end
        del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still waiting for the rest."""
        return len(self._buffer)


# --- server -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """20 ms (usually) of mono signed 16-bit little-endian audio."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    digit: str


CallEvent = AudioChunk | DtmfDigit


class CallAudio:
    """One AudioSocket connection, handed to ``on_call``.

    Iterate it (``async for event in call``) for ``AudioChunk`` and ``DtmfDigit`` events;
    the iteration ends when the call ends (Asterisk closed, 0x00 or 0xff received, or
    ``hangup()``). Only one consumer may iterate.
    """

    def __init__(self, call_uuid: uuid.UUID, writer: asyncio.StreamWriter) -> None:
        self.uuid = call_uuid
        self._writer = writer
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._audio_kind: int = Kind.SLIN
        self._seen_audio = False
        self.hung_up_by_server = False
        self.end_reason = ""

    @property
    def audio_kind(self) -> int:
        """Kind of the audio Asterisk sends (8 kHz until the first audio frame says otherwise)."""
        return self._audio_kind

    @property
    def sample_rate(self) -> int:
        return sample_rate(self._audio_kind)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def __aiter__(self) -> AsyncIterator[CallEvent]:
        return self

    async def __anext__(self) -> CallEvent:
        if self.closed and self._events.empty():
            raise StopAsyncIteration
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # later calls end too
            raise StopAsyncIteration
        return event

    async def hangup(self) -> None:
        """Send the 0x00 frame: Asterisk's AudioSocket() returns and the dialplan continues."""
        if self.closed:
            return
        self.hung_up_by_server = True
        self._send(Frame(Kind.HANGUP))
        self._finish("hangup by server")
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    # --- used by the server ---

    def _send(self, frame: Frame) -> None:
        if not self._writer.is_closing():
            self._writer.write(encode(frame))

    def _finish(self, reason: str) -> None:
        if not self.closed:
            self.end_reason = reason
            self._closed.set()
            self._events.put_nowait(None)

    def _receive(self, frame: Frame) -> bool:
        """Handle one frame from Asterisk; False when the call is over."""
        if is_audio(frame.kind):
            if not self._seen_audio or frame.kind != self._audio_kind:
                if self._seen_audio:
                    log.info("call %s: audio kind changed to 0x%02x", self.uuid, frame.kind)
                self._audio_kind = frame.kind
                self._seen_audio = True
            self._events.put_nowait(AudioChunk(frame.payload, sample_rate(frame.kind)))
        elif frame.kind == Kind.DTMF:
            digit = frame.payload.decode("ascii", errors="replace")
            for d in digit:
                self._events.put_nowait(DtmfDigit(d))
        elif frame.kind == Kind.HANGUP:
            self._finish("hangup by asterisk")
            return False
        elif frame.kind == Kind.ERROR:
            log.warning("call %s: AudioSocket error frame %s", self.uuid, frame.payload.hex())
            self._finish(f"error {frame.payload.hex()}")
            return False
        elif frame.kind == Kind.UUID:
            log.warning("call %s: second UUID frame ignored", self.uuid)
        else:
            log.warning(
                "call %s: unknown AudioSocket kind 0x%02x (%d bytes) skipped", self.uuid, frame.kind, len(frame.payload)
            )
        return True


OnCall = Callable[[CallAudio], Awaitable[None]]


class AudioSocketServer:
    """Accepts AudioSocket connections from Asterisk and hands each call to ``on_call``.

    ``on_call`` owns the call: when it returns (or raises), a call still open is hung up
    with a 0x00 frame and the connection closed. While the connection is open the server
    sends one silence frame every ``KEEPALIVE_S`` so Asterisk does not drop the call.
    """

    def __init__(
        self,
        on_call: OnCall,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        first_frame_timeout: float = 5.0,
        keepalive: bool = True,
    ) -> None:
        self._on_call = on_call
        self.host = host
        self._port = port
        self.first_frame_timeout = first_frame_timeout
        self.keepalive = keepalive
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._cancelled_by_close: set[asyncio.Task[None]] = set()  # connection tasks close() gave up on
        self._calls: set[CallAudio] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)

    async def close(self, grace_s: float = 1.5) -> None:
        """Stop listening; end every open call and give its handler `grace_s` to finish (a recognizer flushes
        what it heard into the call's report), then cancel what is left. Closing twice is harmless."""
        if self._server is not None:
            self._server.close()
        for call in list(self._calls):
            call._finish("server stopping")
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=grace_s)
            for task in late:
                self._cancelled_by_close.add(task)
                task.cancel()
            if late:
                log.warning("AudioSocket: %d call(s) did not finish within %.1f s of the stop", len(late), grace_s)
                await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AudioSocketServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, AudioSocketError) as exc:
            log.warning("AudioSocket connection from %s ended: %s", peer, exc)
        except asyncio.CancelledError:
            if task not in self._cancelled_by_close:
                raise
            # close() gave up waiting for this call. The task ends here rather than cancelled: on Python 3.11,
            # asyncio's stream callback asks a cancelled handler for its exception and logs the error it gets.
            log.warning("AudioSocket connection from %s cut by the stop", peer)
        finally:
            self._cancelled_by_close.discard(task)
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        parser = FrameParser()
        frames: list[Frame] = []
        try:
            async with asyncio.timeout(self.first_frame_timeout):
                while not frames:
                    data = await reader.read(4096)
                    if not data:
                        log.info("AudioSocket connection from %s closed before its UUID", peer)
                        return
                    frames = parser.feed(data)
        except TimeoutError:
            log.warning("AudioSocket connection from %s sent no frame in %.1f s", peer, self.first_frame_timeout)
            writer.write(encode(Frame(Kind.ERROR)))
            return
        first, rest = frames[0], frames[1:]
        try:
            call_uuid = uuid_of(first)
        except AudioSocketError as exc:
            log.warning("AudioSocket connection from %s refused: %s", peer, exc)
            writer.write(encode(Frame(Kind.ERROR)))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return
        call = CallAudio(call_uuid, writer)
        log.info("AudioSocket call %s from %s", call_uuid, peer)
        for frame in rest:
            if not call._receive(frame):
                break
        self._calls.add(call)
        try:
            async with asyncio.TaskGroup() as tg:
                reading = tg.create_task(self._read(call, reader, parser))
                if self.keepalive:
                    tg.create_task(self._keep_alive(call))
                await self._run_on_call(call)
                reading.cancel()
        finally:
            self._calls.discard(call)
        log.info("AudioSocket call %s ended: %s", call_uuid, call.end_reason)

    async def _run_on_call(self, call: CallAudio) -> None:
        try:
            await self._on_call(call)
        except Exception:
            log.exception("on_call failed for call %s", call.uuid)
        finally:
            if not call.closed:
                await call.hangup()

    async def _read(self, call: CallAudio, reader: asyncio.StreamReader, parser: FrameParser) -> None:
        try:
            while not call.closed:
                data = await reader.read(65536)
                if not data:
                    if parser.pending:
                        log.warning("call %s: %d bytes of a partial frame at EOF", call.uuid, parser.pending)
                    call._finish("closed by asterisk (EOF)")
                    return
                for frame in parser.feed(data):
                    if not call._receive(frame):
                        return
        except ConnectionError as exc:
            call._finish(f"connection lost: {exc}")

    async def _keep_alive(self, call: CallAudio) -> None:
        loop = asyncio.get_running_loop()
        period = KEEPALIVE_S
        deadline = loop.time() - period  # the first frame goes at once
        while not call.closed:
            deadline += period
            delay = deadline - loop.time()
            if delay < -10 * period:  # the loop stalled: resume the pace instead of bursting
                deadline = loop.time()
                delay = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.0)):
                    await call.wait_closed()
            if call.closed:
                return
            try:
                call._send(silence_frame(call.audio_kind))
                await call._writer.drain()
            except ConnectionError as exc:
                call._finish(f"connection lost: {exc}")
                return


# --- replay client (tests, bench) ---------------------------------------------------------------


@dataclass
class StreamResult:
    """What a replayed connection sent and got back."""

    frames_sent: int = 0
    received: list[Frame] = field(default_factory=list)
    server_hung_up: bool = False
    server_closed: bool = False

    def count(self, kind: int) -> int:
        return sum(1 for f in self.received if f.kind == kind)


def read_capture(path: str | Path) -> list[tuple[float, Frame]]:
    """The frames of a captured ``.bin`` paired with their arrival times from ``.frames.jsonl``."""
    path = Path(path)
    frames = FrameParser().feed(path.read_bytes())
    timing_path = path.with_suffix(".frames.jsonl")
    times: list[float] = []
    if timing_path.exists():
        times = [float(json.loads(line)["t"]) for line in timing_path.read_text().splitlines() if line.strip()]
    if len(times) != len(frames):
        if times:
            raise ValueError(f"{timing_path.name} has {len(times)} entries for {len(frames)} frames")
        times = [i * FRAME_MS / 1000 for i in range(len(frames))]
    return list(zip(times, frames, strict=True))


async def stream_bin(
    path: str | Path, host: str, port: int, speed: float = 1.0, *, hangup_after: float | None = None
) -> StreamResult:
    """Replay a captured AudioSocket stream as Asterisk sent it, and collect the server's frames.

    Frames are sent at their recorded times divided by ``speed``. Sending stops early when
    the server sends 0x00 or closes. At the end the client closes its side (as Asterisk
    does) and reads until the server closes. ``hangup_after`` (seconds of capture time)
    stops the replay there, like a caller hanging up early.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    capture = read_capture(path)
    result = StreamResult()
    reader, writer = await asyncio.open_connection(host, port)
    server_done = asyncio.Event()

    async def collect() -> None:
        parser = FrameParser()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    result.server_closed = True
                    break
                for frame in parser.feed(data):
                    result.received.append(frame)
                    if frame.kind == Kind.HANGUP:
                        result.server_hung_up = True
                        server_done.set()
        except ConnectionError:
            result.server_closed = True
        finally:
            server_done.set()

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(collect())
            start = loop.time()
            for t, frame in capture:
                if hangup_after is not None and t > hangup_after:
                    break
                delay = start + t / speed - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await server_done.wait()
                if server_done.is_set():
                    break
                try:
                    writer.write(encode(frame))
                    await writer.drain()
                except ConnectionError:
                    break
                result.frames_sent += 1
            if not server_done.is_set():
                with contextlib.suppress(ConnectionError, OSError):
                    writer.write_eof()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return result
