"""SIA DC-09 receiver (ANSI/SIA DC-09, TCP and UDP): alarm panels' IP communicators.

A frame is ``LF crc(4 hex) 0LLL(4 hex) "type"seq Rrcv Llin #acct [data]_timestamp CR``; its CRC is
CRC-16/ARC over everything from the first quote. Encrypted frames (``"*SIA-DCS"``) carry the data
and timestamp AES-CBC encrypted (zero IV) with the account's key, hex-encoded, after the ``[``.

pysiaalarm (the library Home Assistant uses) parses the frame, computes the CRC and decrypts; the
socket server is ours, because pysiaalarm's own server sends the ACK before its handler runs. Here
the panel hears ACK only once the event is durable:

- ACK: stored (or logged: heartbeat, test, trouble) — the panel may forget it;
- NAK: bad CRC, a timestamp outside the window (-40 s .. +20 s, pysiaalarm's SIAAccount default),
  an encrypted frame without a timestamp, garbage, or our store failed — the panel retries;
- DUH: an account not in the facility registry, an unsupported message or code, an encrypted
  frame we cannot read, a plain frame for an account that must encrypt — retrying will not help.

Accounts and keys are the registry's (facility_devices kind 'sia': device_id = account, secret =
AES key). A key is written as pysiaalarm and panels configure it: 16, 24 or 32 hex characters,
used as the key's bytes. A DC-09 binary key given as hex digits is written ``hex:<32|48|64 hex>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pysiaalarm.account import SIAAccount
from pysiaalarm.errors import EventFormatError, NoAccountError
from pysiaalarm.event import SIAEvent
from pysiaalarm.utils.enums import MessageTypes
from pysiaalarm.utils.regexes import MAIN_MATCHER

from intake.channels.devices import events
from intake.channels.devices.events import DeviceEvent
from intake.core.classify import device_code_info
from intake.pipeline import IdempotencyConflict, Intake

log = logging.getLogger(__name__)

DOOR: Final = "sia"
MAX_FRAME: Final = 4096  # DC-09 frames are a few hundred bytes; more without a CR is not a panel
#: The timestamp window, as pysiaalarm's SIAAccount.allowed_timeband: seconds before and after now.
ALLOWED_TIMEBAND: Final = (40, 20)
_ZONE: Final = re.compile(r"\s*(\d+)")


class Reply(enum.StrEnum):
    ACK = "ACK"  # stored (or logged): the panel may forget the event
    NAK = "NAK"  # damaged or stale, or not stored: the panel sends it again
    DUH = "DUH"  # not understood: sending it again will not help


@dataclass(frozen=True, slots=True)
class Header:
    """The clear-text part of a frame, before the account is known."""

    crc: str
    body: str  # from the first quote: what the CRC covers
    encrypted: bool
    message_type: str  # 'SIA-DCS' | 'ADM-CID' | 'NULL'
    sequence: str
    receiver: str  # 'R1', or '' when the frame has none
    line: str
    account: str | None

    @property
    def crc_ok(self) -> bool:
        return SIAEvent._crc_calc(self.body) == self.crc.upper()


@dataclass(frozen=True, slots=True)
class Reading:
    """What to answer, and the event to store before answering ACK."""

    reply: Reply
    reason: str
    header: Header | None = None
    sia: SIAEvent | None = None  # for building the (encrypted) ACK
    event: DeviceEvent | None = None


def crc16(text: str) -> str:
    """CRC-16/ARC of the text, as 4 upper-case hex digits (pysiaalarm's implementation)."""
    crc = SIAEvent._crc_calc(text)
    assert crc is not None
    return crc


def read_header(line: str) -> Header | None:
    """The frame's header; None when it is not a DC-09 frame at all."""
    m = MAIN_MATCHER.match(line)
    if m is None:
        return None
    g = m.groupdict()
    return Header(crc=g["crc"], body=line[8:], encrypted=bool(g["encrypted_flag"]), message_type=g["message_type"],
                  sequence=g["sequence"], receiver=g["receiver"] or "", line=g["line"] or "", account=g["account"])


def sia_account(device: dict[str, Any]) -> SIAAccount:
    """The pysiaalarm account for a registry row; ValueError when its key is malformed."""
    secret = (device.get("secret") or "").strip()
    account = SIAAccount(account_id=device["device_id"], allowed_timeband=ALLOWED_TIMEBAND)
    if not secret:
        return account
    if secret.lower().startswith("hex:"):
        try:
            key = bytes.fromhex(secret[4:])
        except ValueError as exc:
            raise ValueError(f"SIA key of account {device['device_id']} is not hex") from exc
        if len(key) not in (16, 24, 32):
            raise ValueError(f"SIA key of account {device['device_id']} must be 128, 192 or 256 bits")
        account.key_b = key
        return account
    try:
        SIAAccount.validate_account(key=secret)
    except Exception as exc:  # pysiaalarm's InvalidKey*Error
        raise ValueError(f"SIA key of account {device['device_id']} must be 16, 24 or 32 hex characters") from exc
    return SIAAccount(account_id=device["device_id"], key=secret, allowed_timeband=ALLOWED_TIMEBAND)


def _timestamp_ok(sia: SIAEvent, now: datetime) -> bool:
    """pysiaalarm's SIAEvent.valid_timestamp, against our clock instead of the wall clock."""
    if not isinstance(sia.timestamp, datetime):
        return True
    before, after = ALLOWED_TIMEBAND
    return now - timedelta(seconds=before) <= sia.timestamp <= now + timedelta(seconds=after)


def _data(sia: SIAEvent, encrypted: bool) -> str:
    """The frame's data as the panel wrote it, without the random padding of an encrypted block."""
    content = sia.content or ""
    if encrypted and "|" in content:
        content = content.split("|", 1)[1]
    return content


def decode(line: str, header: Header, device: dict[str, Any] | None, now: datetime) -> Reading:
    """Pure: what a frame from `device` (the registry row of its account, or None) means."""
    if not header.crc_ok:
        return Reading(Reply.NAK, f"CRC mismatch (sent {header.crc}, computed {crc16(header.body)})", header)
    if header.account is None:
        if header.message_type == MessageTypes.NULL.value and not header.encrypted:
            return Reading(Reply.ACK, "link test without an account", header)
        return Reading(Reply.DUH, "no account in the frame", header)
    if device is None:
        return Reading(Reply.DUH, f"account {header.account} is not in the facility registry", header)
    if device["kind"] not in events.DOOR_KINDS[DOOR]:
        return Reading(Reply.DUH, f"device {header.account} is registered as {device['kind']}, not sia", header)
    try:
        account = sia_account(device)
    except ValueError as exc:
        log.error("%s", exc)
        return Reading(Reply.DUH, str(exc), header)
    if account.encrypted and not header.encrypted:
        return Reading(Reply.DUH, f"account {header.account} must send encrypted frames", header)
    try:
        sia = SIAEvent.from_line(line, {header.account: account})
    except NoAccountError:
        return Reading(Reply.DUH, f"encrypted frame for account {header.account}, which has no key", header)
    except (EventFormatError, ValueError) as exc:  # ValueError: the encrypted block is not hex / not whole blocks
        return Reading(Reply.DUH, f"unreadable frame: {exc}", header)
    if header.encrypted and not isinstance(sia.timestamp, datetime):
        return Reading(Reply.NAK, "an encrypted frame must carry a timestamp", header, sia)
    if not _timestamp_ok(sia, now):
        return Reading(Reply.NAK, f"timestamp {sia.timestamp} is outside the window around {now}", header, sia)
    if header.message_type == MessageTypes.NULL.value:
        code, zone, area = "SIA:NULL", None, None
    elif header.message_type == MessageTypes.ADMCID.value:
        code, zone, area = f"CID:{sia.event_qualifier}{sia.event_type}", sia.ri, sia.partition
    else:
        zone_m = _ZONE.match(sia.message or "")
        code, zone, area = f"SIA:{sia.code}", zone_m.group(1) if zone_m else None, sia.ri or None
    if device_code_info(code) is None:
        return Reading(Reply.DUH, f"event code {code} is not supported", header, sia)
    panel_time = sia.timestamp if isinstance(sia.timestamp, datetime) else None
    # A panel numbers its messages 0001..9999 and wraps: with the panel's timestamp the pair is unique;
    # without one, the day it arrived keeps a retransmission (seconds later) one report.
    when = panel_time.strftime("%Y%m%dT%H%M%S") if panel_time else now.strftime("d%Y%m%d")
    event = DeviceEvent(
        door=DOOR,
        device_id=device["device_id"],
        code=code,
        ref=f"{header.account}:{header.sequence}:{when}",
        zone=zone,
        area=area,
        occurred_at=panel_time,
        # Receiver and line are left out: the same event over a backup path is the same report.
        raw={"account": header.account, "sequence": header.sequence, "message_type": header.message_type,
             "encrypted": header.encrypted, "data": _data(sia, header.encrypted)},
    )
    return Reading(Reply.ACK, "ok", header, sia, event)


def _frame(body: str) -> bytes:
    return f"\n{crc16(body)}{len(body):04X}{body}\r".encode("ascii")


def _stamp(now: datetime) -> str:
    return now.strftime("_%H:%M:%S,%m-%d-%Y")


def nak(now: datetime) -> bytes:
    """DC-09 NAK: carries the receiver's time so the panel can set its clock."""
    return _frame(f'"NAK"0000R0L0A0[]{_stamp(now)}')


def duh(header: Header) -> bytes:
    account = f"#{header.account}" if header.account else ""
    return _frame(f'"DUH"{header.sequence}{header.receiver}{header.line}{account}[]')


def ack(header: Header, sia: SIAEvent | None, now: datetime) -> bytes:
    account = f"#{header.account}" if header.account else ""
    head = f'{header.sequence}{header.receiver}{header.line}{account}['
    if header.encrypted and sia is not None:
        # DC-09: the encrypted ACK carries padding|]timestamp; pysiaalarm pads with '0' and encrypts.
        block = sia.encrypt_content(f"|]{_stamp(now)}")
        return _frame(f'"*ACK"{head}{block}')
    return _frame(f'"ACK"{head}]')


def reply_bytes(reading: Reading, now: datetime) -> bytes:
    if reading.reply == Reply.ACK and reading.header is not None:
        return ack(reading.header, reading.sia, now)
    if reading.reply == Reply.DUH and reading.header is not None:
        return duh(reading.header)
    return nak(now)


class SiaReceiver:
    """The DC-09 receiver: TCP and UDP on one port, until `stop` is set."""

    def __init__(self, intake: Intake, host: str = "127.0.0.1", port: int = 0, *, udp: bool = True,
                 idle_timeout: float = 300.0) -> None:
        self.intake = intake
        self.host = host
        self._port = port
        self.udp = udp
        self.idle_timeout = idle_timeout
        self.ready = asyncio.Event()
        self.tcp_port = port
        self.udp_port = port
        self._connections: set[asyncio.Task[None]] = set()

    async def lookup(self, account: str) -> dict[str, Any] | None:
        async with self.intake.store.read() as repo:
            device = await repo.device(account)
            if device is None and account.upper() != account:
                device = await repo.device(account.upper())
        return device

    async def handle_frame(self, data: bytes, peer: object = None) -> bytes | None:
        """One frame in, the reply out (None for an empty line); the event is stored before an ACK."""
        line = data.decode("ascii", errors="ignore").strip()
        if not line:
            return None
        now = self.intake.clock()
        header = read_header(line)
        if header is None:
            log.warning("SIA: not a DC-09 frame from %s: %.80r", peer, line)
            return nak(now)
        try:
            device = await self.lookup(header.account) if header.account and header.crc_ok else None
        except Exception:  # the registry cannot be read: the panel tries again later
            log.exception("SIA account %s: the facility registry could not be read", header.account)
            return nak(now)
        reading = decode(line, header, device, now)
        if reading.reply != Reply.ACK:
            log.warning("SIA %s from %s (account %s): %s", reading.reply, peer, header.account, reading.reason)
            return reply_bytes(reading, now)
        if reading.event is not None and device is not None:
            try:
                handled = await events.handle(self.intake, device, reading.event)
            except IdempotencyConflict as exc:  # same account, sequence and time, other content
                log.error("SIA account %s: %s", header.account, exc)
                return duh(header)
            except Exception:  # not stored: NAK, and the panel sends it again
                log.exception("SIA account %s: storing %s failed", header.account, reading.event.channel_ref)
                return nak(now)
            log.info("SIA account %s seq %s %s: %s", header.account, header.sequence, reading.event.code,
                     handled.disposition.value)
        return ack(header, reading.sia, now)

    # --- TCP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, TimeoutError) as exc:
            log.info("SIA connection from %s ended: %s", peer, exc)
        except Exception:  # one broken connection must not end the receiver
            log.exception("SIA connection from %s failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        buffer = b""
        while True:
            async with asyncio.timeout(self.idle_timeout):
                chunk = await reader.read(1024)
            if not chunk:
                return
            buffer += chunk
            while b"\r" in buffer:
                frame, buffer = buffer.split(b"\r", 1)
                frame = frame.rsplit(b"\n", 1)[-1]  # whatever came before the frame's LF is line noise
                reply = await self.handle_frame(frame, peer)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
            if len(buffer) > MAX_FRAME:
                log.warning("SIA: %d bytes without a frame end from %s; closing", len(buffer), peer)
                writer.write(nak(self.intake.clock()))
                await writer.drain()
                return

    # --- the listener ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set; then close every connection and return."""
        loop = asyncio.get_running_loop()
        datagrams: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue(maxsize=1000)
        async with asyncio.TaskGroup() as tg:
            server = await asyncio.start_server(
                lambda r, w: tg.create_task(self._connection(r, w)), self.host, self._port)
            self.tcp_port = int(server.sockets[0].getsockname()[1])
            transport: asyncio.DatagramTransport | None = None
            worker: asyncio.Task[None] | None = None
            if self.udp:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(datagrams), local_addr=(self.host, self.tcp_port))
                self.udp_port = int(transport.get_extra_info("sockname")[1])
                worker = tg.create_task(self._udp_worker(transport, datagrams))
            log.info("SIA DC-09 receiver on %s port %s (TCP%s)", self.host, self.tcp_port,
                     " and UDP" if self.udp else "")
            self.ready.set()
            try:
                await stop.wait()
            finally:
                server.close()
                for task in list(self._connections):
                    task.cancel()
                if transport is not None:
                    transport.close()
                if worker is not None:
                    worker.cancel()
                await server.wait_closed()
                self.ready.clear()

    async def _udp_worker(self, transport: asyncio.DatagramTransport,
                          datagrams: asyncio.Queue[tuple[bytes, Any]]) -> None:
        """One datagram is one frame; answered in order, after the event is stored."""
        while True:
            data, addr = await datagrams.get()
            try:
                reply = await self.handle_frame(data, addr)
            except Exception:  # the receiver keeps serving the other panels
                log.exception("SIA datagram from %s failed", addr)
                continue
            if reply is not None and not transport.is_closing():
                transport.sendto(reply, addr)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, Any]]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.queue.put_nowait((data, addr))
        except asyncio.QueueFull:  # no ACK: the panel retries when we have caught up
            log.warning("SIA: datagram from %s dropped, the queue is full", addr)
