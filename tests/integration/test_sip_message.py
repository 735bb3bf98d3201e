"""Text to 112 over SIP MESSAGE: the listener on real UDP/TCP sockets, a real store (SQLite and PostgreSQL), sipp."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from intake.channels.sip_listener import SipMessageListener
from intake.config import Settings
from intake.pipeline import Intake
from intake.store import Store
from intake.store.tables import reports
from tests.conftest import Clock

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sip"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((FIXTURES / "expected.toml").read_text())
SIP_FILES = sorted(FIXTURES.glob("*.sip"))
SIPP = Path("/usr/bin/sipp")
WAIT = 15.0  # an upper bound so a lost answer fails the test instead of hanging it; not a timing assertion


@pytest.fixture
async def listener(intake: Intake, clock: Clock) -> AsyncIterator[SipMessageListener]:
    async with SipMessageListener(intake.ingest, port=0, clock=clock) as sip:
        yield sip


async def sip_reports(store: Store) -> list[dict[str, Any]]:
    async with store.read() as repo:
        rows = (await repo.conn.execute(select(reports).where(reports.c.channel == "sip").order_by(reports.c.id))
                ).mappings().all()
    return [dict(r) for r in rows]


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def call_id_of(message: bytes) -> str:
    for line in message.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip().decode()
    raise AssertionError("no Call-ID")


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[tuple[asyncio.DatagramTransport, _Client]]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    try:
        yield transport, client
    finally:
        transport.close()


async def next_datagram(client: _Client) -> bytes:
    async with asyncio.timeout(WAIT):
        return await client.received.get()


async def answer_to(client: _Client, call_id: str) -> bytes:
    """The next response for `call_id`; any other response before it must be a 400 (garbage answered)."""
    while True:
        response = await next_datagram(client)
        if call_id_of(response) == call_id:
            return response
        assert status_of(response) == 400, response


# --- every fixture, over UDP -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SIP_FILES, ids=lambda p: p.name)
async def test_fixture_over_udp(path: Path, listener: SipMessageListener, store: Store) -> None:
    want = EXPECTED[path.name]
    data = path.read_bytes()
    responses = []
    async with udp_client(listener.port) as (transport, client):
        for _ in range(want.get("sends", 1)):
            transport.sendto(data)
            responses.append(await next_datagram(client))
    assert {status_of(r) for r in responses} == {want["status"]}
    assert len(set(responses)) == 1  # a retransmission gets the very same answer (same To tag)
    if "header" in want:
        assert want["header"] in responses[0].decode().split("\r\n")
    rows = await sip_reports(store)  # read after the answer: a 200 means it is stored
    assert len(rows) == want["reports"]
    if not rows:
        return
    (row,) = rows
    assert row["channel_ref"] == f"{call_id_of(data)}:{data.split(b'CSeq: ')[1].split(b' ')[0].decode()}"
    assert row["text"] == want["text"] and row["phone"] == want["phone"]
    assert row["dialled_number"] == want.get("dialled_number")
    loc = want.get("location")
    if loc is None:
        assert row["location_source"] is None
    else:
        assert (row["lat"], row["lon"], row["accuracy_m"], row["location_source"]) == (
            loc["lat"], loc["lon"], loc["accuracy_m"], "pidf-lo")
    if want.get("category_hint"):
        assert row["category"] == want["category_hint"]


async def test_a_message_with_pidf_lo_is_one_located_report(listener: SipMessageListener, store: Store) -> None:
    data = (FIXTURES / "message__multipart_circle.sip").read_bytes()
    async with udp_client(listener.port) as (transport, client):
        transport.sendto(data)
        assert status_of(await next_datagram(client)) == 200
    (row,) = await sip_reports(store)
    assert row["text"] == "Cháy lớn ở tầng 3, khói đen rất nhiều, có người mắc kẹt"
    assert (row["lat"], row["lon"], row["accuracy_m"]) == (21.0368, 105.8342, 35.0)
    assert row["category"] == "fire" and row["incident_id"] is not None
    assert row["raw"]["service"] == "sos.fire" and row["raw"]["location_shape"] == "Circle"


async def test_retransmissions_sent_at_once_are_one_report(listener: SipMessageListener, store: Store) -> None:
    data = (FIXTURES / "message__retransmission.sip").read_bytes()
    async with udp_client(listener.port) as (transport, client):
        for _ in range(3):
            transport.sendto(data)  # before the first is stored: the three race through ingest
        responses = [await next_datagram(client) for _ in range(3)]
    assert [status_of(r) for r in responses] == [200, 200, 200] and len(set(responses)) == 1
    assert len(await sip_reports(store)) == 1


async def test_the_same_call_id_and_cseq_with_another_text_is_400(listener: SipMessageListener, store: Store
                                                                  ) -> None:
    data = (FIXTURES / "message__retransmission.sip").read_bytes()
    head, _, _ = data.partition(b"\r\n\r\n")
    body = "Lửa đã lan sang nhà bên".encode()
    other = re.sub(rb"Content-Length: \d+", f"Content-Length: {len(body)}".encode(), head) + b"\r\n\r\n" + body
    async with udp_client(listener.port) as (transport, client):
        transport.sendto(data)
        assert status_of(await next_datagram(client)) == 200
        transport.sendto(other)
        assert status_of(await next_datagram(client)) == 400
    (row,) = await sip_reports(store)
    assert row["text"].endswith("chưa thấy lửa")


async def test_garbage_is_dropped_or_400_and_the_listener_keeps_serving(listener: SipMessageListener,
                                                                        store: Store) -> None:
    options = (FIXTURES / "options__keepalive.sip").read_bytes()
    async with udp_client(listener.port) as (transport, client):
        transport.sendto(b"\x00\xff\xfe not SIP at all")
        transport.sendto(b"MESSAGE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKg\r\n"
                         b"Broken header\r\nCall-ID: garbage-1\r\n\r\n")
        transport.sendto(b"\r\n\r\n")  # a keep-alive
        assert status_of(await answer_to(client, "garbage-1")) == 400
        transport.sendto(options)
        assert status_of(await answer_to(client, call_id_of(options))) == 200
        transport.sendto((FIXTURES / "message__plain_text.sip").read_bytes())
        assert status_of(await next_datagram(client)) == 200
    assert len(await sip_reports(store)) == 1


# --- TCP -----------------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: 0\r\n" in head
    return head


async def test_tcp_is_framed_by_content_length(listener: SipMessageListener, store: Store) -> None:
    one = (FIXTURES / "message__plain_text.sip").read_bytes()
    two = (FIXTURES / "message__multipart_point.sip").read_bytes()
    stream = b"\r\n\r\n" + one + two  # a keep-alive ping, then two messages back to back
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        for start in range(0, len(stream), 333):  # cut at places that are not message boundaries
            writer.write(stream[start:start + 333])
            await writer.drain()
        async with asyncio.timeout(WAIT):
            assert await reader.readexactly(2) == b"\r\n"  # pong
        first, second = await read_response(reader), await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_of(first) == status_of(second) == 200
    assert call_id_of(first) == call_id_of(one) and call_id_of(second) == call_id_of(two)
    rows = await sip_reports(store)
    assert [r["phone"] for r in rows] == ["+84912345678", "+84912345678"]
    assert rows[1]["location_source"] == "pidf-lo" and rows[1]["lat"] == 21.0285


async def test_tcp_without_content_length_is_400_and_closed(listener: SipMessageListener, store: Store) -> None:
    data = (FIXTURES / "message__plain_text.sip").read_bytes()
    unframed = b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Content-Length"))
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        writer.write(unframed)
        await writer.drain()
        assert status_of(await read_response(reader)) == 400
        async with asyncio.timeout(WAIT):
            assert await reader.read() == b""  # the stream is out of step: hung up
    finally:
        writer.close()
        await writer.wait_closed()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        writer.write(data)
        await writer.drain()
        assert status_of(await read_response(reader)) == 200
    finally:
        writer.close()
        await writer.wait_closed()
    assert len(await sip_reports(store)) == 1


# --- sipp, the SIP test tool -------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


@pytest.mark.skipif(not SIPP.exists(), reason="sipp is not installed (/usr/bin/sipp, Debian package sip-tester)")
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_sends_a_multipart_message(transport: str, listener: SipMessageListener, store: Store,
                                              tmp_path: Path) -> None:
    scenario = FIXTURES / "sipp__multipart_pidf_lo.xml"
    assert shutil.which(str(SIPP))
    proc = await asyncio.create_subprocess_exec(
        str(SIPP), f"127.0.0.1:{listener.port}", "-sf", str(scenario), "-t", transport, "-m", "1",
        "-i", "127.0.0.1", "-p", str(free_port()), "-nostdin", "-timeout", "30s", "-timeout_error",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]  # 0: every call got its 200
    (row,) = await sip_reports(store)
    assert row["text"] == "Tai nạn giao thông, hai xe máy đâm nhau, một người bất tỉnh"
    assert (row["lat"], row["lon"], row["accuracy_m"], row["location_source"]) == (21.0245, 105.8412, 20.0, "pidf-lo")
    assert row["phone"] == "+84912345678" and row["channel_ref"].endswith(":1")


# --- the app starts the listener -------------------------------------------------------------------------


async def test_the_app_runs_the_listener_when_a_port_is_set(store: Store) -> None:
    from intake.web.app import create_app

    port = free_port()
    app = create_app(Settings(extra={"sip_message_port": str(port)}), store=store)
    async with TestServer(app), udp_client(port) as (transport, client):
        transport.sendto((FIXTURES / "message__plain_text.sip").read_bytes())
        assert status_of(await next_datagram(client)) == 200
    (row,) = await sip_reports(store)
    assert row["dialled_number"] == "112"
