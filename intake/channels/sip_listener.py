"""The SIP MESSAGE door's listener: one UDP socket and one TCP server on the same port.

Each request goes through `sip_message.handle`; a MESSAGE's report is stored (Intake.ingest) before
its 200 OK is sent, so an acknowledged text is durable. A retransmission (same Call-ID and CSeq)
is the same report: ingest answers "duplicate" and the sender gets the same 200 again.

UDP responses go back to the address the request came from (what RFC 3581 `rport` asks for, and
what works through NAT); TCP messages are framed by Content-Length and answered on their connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

from intake.channels.sip_message import (
    DEFAULT_NUMBERS,
    Handling,
    SipError,
    build_response,
    handle,
    message_length,
    parse_numbers,
    salvage,
)
from intake.config import ConfigError, Settings
from intake.core.model import ReportIn
from intake.pipeline import IdempotencyConflict, IngestResult

log = logging.getLogger(__name__)

Ingest = Callable[[ReportIn], Awaitable[IngestResult]]  # Intake.ingest: returns once the report is durable

MAX_IN_FLIGHT: Final = 64  # reports being stored at once; more UDP requests wait in the queue
QUEUE_SIZE: Final = 1024  # datagrams waiting; beyond that they are dropped and the sender retransmits
DRAIN_SECONDS: Final = 10.0  # on close, how long reports already being stored may take to finish
BIND_TRIES: Final = 20  # port 0: UDP picks a port, TCP must get the same one


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, tuple[str, int]] | None]) -> None:
        self._queue = queue
        self.accepting = True

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.accepting:
            return  # closing: the sender retransmits to whoever listens next
        try:
            self._queue.put_nowait((data, (str(addr[0]), int(addr[1]))))
        except asyncio.QueueFull:
            log.warning("SIP: %d datagrams waiting, one from %s dropped", self._queue.qsize(), addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("SIP UDP error: %s", exc)


class SipMessageListener:
    """Text to 112: accepts SIP MESSAGE over UDP and TCP and ingests each as a report.

    Use as an async context manager; `port` is the bound one (pass 0 to let the system choose).
    On close, datagrams already received are still stored and answered; TCP connections are cut
    (what they had not been answered for is not acknowledged, so their senders resend).
    """

    def __init__(
        self,
        ingest: Ingest,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        numbers: frozenset[str] = DEFAULT_NUMBERS,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._ingest = ingest
        self.host = host
        self._port = port
        self.numbers = numbers
        self.clock = clock
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._queue: asyncio.Queue[tuple[bytes, tuple[str, int]] | None] = asyncio.Queue(QUEUE_SIZE)
        self._runner: asyncio.Task[None] | None = None
        self._datagrams = _Datagrams(self._queue)
        self._connections: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(BIND_TRIES if self._port == 0 else 1):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: self._datagrams, local_addr=(self.host, self._port))
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port, reuse_address=True)
            except OSError:
                udp.close()
                if self._port != 0 or attempt == BIND_TRIES - 1:
                    raise
                continue
            self._udp, self._port = udp, port
            break
        self._runner = asyncio.create_task(self._run_udp(), name="sip-udp")
        log.info("SIP MESSAGE door listening on %s:%d (UDP and TCP), numbers %s", self.host, self._port,
                 ",".join(sorted(self.numbers)))

    async def close(self) -> None:
        """Stop taking requests, let reports already being stored finish and answer, then close."""
        if self._tcp is not None:
            self._tcp.close()
        if self._runner is not None:
            self._datagrams.accepting = False
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    await self._queue.put(None)
                    await self._runner
            except TimeoutError:
                log.warning("SIP: reports still being stored after %.0f s are abandoned (not acknowledged)",
                            DRAIN_SECONDS)
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            self._runner = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> SipMessageListener:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- one request -------------------------------------------------------------------------------

    async def respond(self, data: bytes, source: tuple[str, int], *, stream: bool = False) -> bytes | None:
        """The response to one request (None: nothing is sent); a MESSAGE's report is stored first."""
        handling = handle(data, received_at=self.clock(), numbers=self.numbers, stream=stream, source=source)
        if handling.report is None:
            if handling.reason:
                log.info("SIP %s from %s: %s", _method(handling), source, handling.reason)
            return handling.response
        assert handling.request is not None
        try:
            result = await self._ingest(handling.report)
        except IdempotencyConflict as exc:
            log.warning("SIP MESSAGE from %s: %s", source, exc)
            return build_response(handling.request, 400, source=source)
        except Exception:
            # Not stored, so not acknowledged: the sender retransmits (UDP) or tells its user.
            log.exception("SIP MESSAGE %s from %s could not be stored", handling.report.channel_ref, source)
            return build_response(handling.request, 500, source=source)
        log.info("SIP MESSAGE %s from %s: report %d %s", handling.report.channel_ref, source, result.report_id,
                 result.outcome.value)
        return build_response(handling.request, 200, source=source)

    # --- UDP ---------------------------------------------------------------------------------------------

    async def _run_udp(self) -> None:
        async with asyncio.TaskGroup() as tg:
            while (item := await self._queue.get()) is not None:
                data, source = item
                await self._slots.acquire()  # back-pressure: the queue fills, not memory
                tg.create_task(self._one_datagram(data, source))

    async def _one_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            response = await self.respond(data, source)
        except Exception:  # a bug must cost one request, not the listener
            log.exception("SIP datagram from %s failed", source)
            return
        finally:
            self._slots.release()
        if response is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(response, source)

    # --- TCP -----------------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        source = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        try:
            await self._read_stream(reader, writer, source)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("SIP TCP connection from %s ended: %s", source, exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           source: tuple[str, int]) -> None:
        buffer = b""
        while True:
            # RFC 5626 §4.4.1: a CRLFCRLF ping between messages gets a CRLF pong; RFC 3261 §7.5: a lone
            # CRLF before a start line is skipped. Two or three bytes of CRLF may be a ping cut short.
            while buffer.startswith(b"\r\n"):
                if buffer.startswith(b"\r\n\r\n"):
                    writer.write(b"\r\n")
                    buffer = buffer[4:]
                elif len(buffer) > 2 and buffer[2:3] != b"\r":
                    buffer = buffer[2:]
                else:
                    break
            try:
                length = None if not buffer or buffer.startswith(b"\r") else message_length(buffer)
            except SipError as exc:
                # The stream is out of step: answer what we can and hang up.
                broken = salvage(buffer)
                log.info("SIP TCP from %s closed: %s", source, exc.message)
                if broken is not None:
                    writer.write(build_response(broken, exc.sip_status, source=source))
                    await writer.drain()
                return
            if length is None:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
                continue
            message, buffer = buffer[:length], buffer[length:]
            response = await self.respond(message, source, stream=True)
            if response is not None:
                writer.write(response)
                await writer.drain()


def _method(handling: Handling) -> str:
    return handling.request.method if handling.request is not None else "datagram"


def from_settings(settings: Settings, ingest: Ingest, clock: Callable[[], datetime] = _utcnow
                  ) -> SipMessageListener | None:
    """INTAKE_SIP_MESSAGE_PORT turns the door on; HOST (default 127.0.0.1) and NUMBERS refine it."""
    port_text = settings.extra.get("sip_message_port", "").strip()
    if not port_text or port_text == "0":
        return None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"INTAKE_SIP_MESSAGE_PORT {port_text!r} is not a port number")
    try:
        numbers = parse_numbers(settings.extra.get("sip_message_numbers"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    host = settings.extra.get("sip_message_host", "").strip() or "127.0.0.1"
    return SipMessageListener(ingest, host, int(port_text), numbers=numbers, clock=clock)

