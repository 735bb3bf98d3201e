"""The SIA DC-09 receiver on real sockets and a real store: ACK after storing, NAK, DUH, restorals, supervision."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.channels import devices
from intake.channels.devices import events
from intake.channels.devices.sia import MAX_FRAME, SiaReceiver
from intake.config import Settings
from intake.facilities import import_csv
from intake.pipeline import Intake
from intake.store import Store
from intake.store.tables import outbox, reports
from tests.conftest import T0, Clock
from tests.unit.test_sia_parse import KEY16, dc09, read_reply

FIXTURES = Path(__file__).parent.parent / "fixtures"
SIA_FIXTURES = sorted((FIXTURES / "sia").glob("*.dc09"))
#: Events of the fixture folder that open a report when acknowledged, and the agency they go to.
REPORTING = {"fire_alarm": "fire", "smoke_alarm": "fire", "medical_alarm": "medical", "panic_alarm": "police",
             "burglary": "police"}
HANG_BAC = (21.03410, 105.85190)  # facility HN-0001 (account 1001) in the sample registry
T5 = T0 + timedelta(seconds=5)


async def registry(store: Store) -> None:
    """The sample facility registry, with the secrets and heartbeat intervals an installer would add."""
    await import_csv(store, FIXTURES / "facilities" / "hanoi_sample.csv", Settings(), progress=False)
    async with store.transaction() as repo:
        hn1 = await repo.facility_by_external_id("HN-0001")
        hn2 = await repo.facility_by_external_id("HN-0002")
        hn3 = await repo.facility_by_external_id("HN-0003")
        assert hn1 and hn2 and hn3
        await repo.set_facility_devices(hn1["id"], [
            {"device_id": "1001", "kind": "sia", "heartbeat_s": 60},
            {"device_id": "hangbac/panel1", "kind": "mqtt", "heartbeat_s": 300}])
        await repo.set_facility_devices(hn2["id"], [
            {"device_id": "1002", "kind": "sia", "secret": KEY16},
            {"device_id": "dx-cam-01", "kind": "camera", "secret": "cam-secret-dx01-5f2a"}])
        await repo.set_facility_devices(hn3["id"], [
            {"device_id": "ocd-01", "kind": "http", "secret": "ocd-secret-91c4"}])


async def device_reports(store: Store) -> list[dict[str, Any]]:
    async with store.read() as repo:
        rows = (await repo.conn.execute(
            select(reports).where(reports.c.channel == events.CHANNEL).order_by(reports.c.id))).mappings().all()
    return [dict(r) for r in rows]


async def outbox_rows(store: Store, topic: str) -> list[dict[str, Any]]:
    async with store.read() as repo:
        rows = (await repo.conn.execute(
            select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.id))).mappings().all()
    return [dict(r) for r in rows]


async def device_row(store: Store, device_id: str) -> dict[str, Any]:
    async with store.read() as repo:
        row = await repo.device(device_id)
    assert row is not None
    return row


@contextlib.asynccontextmanager
async def store_refuses_reports(store: Store) -> AsyncIterator[None]:
    """A real storage failure while the block runs: every insert into reports is refused by the database."""
    from sqlalchemy import text

    if store.is_postgres:
        setup = ["CREATE FUNCTION refuse_reports() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
                 "LANGUAGE plpgsql",
                 "CREATE TRIGGER refuse_reports BEFORE INSERT ON reports FOR EACH ROW "
                 "EXECUTE FUNCTION refuse_reports()"]
        teardown = ["DROP TRIGGER refuse_reports ON reports", "DROP FUNCTION refuse_reports()"]
    else:
        setup = ["CREATE TRIGGER refuse_reports BEFORE INSERT ON reports BEGIN SELECT RAISE(ABORT, 'disk full'); END"]
        teardown = ["DROP TRIGGER refuse_reports"]
    async with store.transaction() as repo:
        for sql in setup:
            await repo.conn.execute(text(sql))
    try:
        yield
    finally:
        async with store.transaction() as repo:
            for sql in teardown:
                await repo.conn.execute(text(sql))


@pytest.fixture
async def receiver(store: Store, intake: Intake) -> AsyncIterator[SiaReceiver]:
    await registry(store)
    rx = SiaReceiver(intake, "127.0.0.1", 0)
    stop = asyncio.Event()
    running = asyncio.create_task(rx.run(stop))
    ready = asyncio.create_task(rx.ready.wait())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        ready.cancel()
        await running  # raises what stopped it
    try:
        yield rx
    finally:
        stop.set()
        await running


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r"), 10)


@contextlib.asynccontextmanager
async def connect(rx: SiaReceiver) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", rx.tcp_port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def send(rx: SiaReceiver, *frames: bytes) -> list[dict[str, Any]]:
    """Send frames on one TCP connection, one at a time, as a panel does; the replies."""
    replies = []
    async with connect(rx) as (reader, writer):
        for f in frames:
            writer.write(f)
            await writer.drain()
            replies.append(read_reply(await read_frame(reader), KEY16.encode()))
    return replies


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def send_udp(rx: SiaReceiver, data: bytes) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_UdpClient, remote_addr=("127.0.0.1", rx.udp_port))
    try:
        transport.sendto(data)
        return read_reply(await asyncio.wait_for(proto.replies.get(), 10), KEY16.encode())
    finally:
        transport.close()


# --------------------------------------------------------------------------- every fixture ---


@pytest.mark.parametrize("path", SIA_FIXTURES, ids=[p.stem for p in SIA_FIXTURES])
async def test_every_fixture_gets_its_reply(path: Path, receiver: SiaReceiver, store: Store) -> None:
    event, variant = path.stem.split("__")
    expected = variant.rsplit("_", 1)[1].upper()
    reply = await receiver.handle_frame(path.read_bytes())
    assert reply is not None
    got = read_reply(reply, KEY16.encode())
    assert got["crc_ok"] and got["type"].lstrip("*") == expected, got
    stored = await device_reports(store)
    if expected == "ACK" and event in REPORTING:
        assert len(stored) == 1 and stored[0]["category"] == REPORTING[event]
        assert stored[0]["channel_ref"].startswith("sia:")
    else:
        assert stored == []


# ------------------------------------------------------------------------------ over TCP ---


async def test_fire_alarm_becomes_a_report_at_the_facility(receiver: SiaReceiver, store: Store) -> None:
    (reply,) = await send(receiver, dc09("ADM-CID", "1001", 11, "#1001|1110 01 015", when=T5))
    assert reply["crc_ok"] and reply["body"] == '"ACK"0011R1L0#1001[]'
    (report,) = await device_reports(store)
    assert report["category"] == "fire" and report["incident_id"] is not None
    assert (report["lat"], report["lon"]) == HANG_BAC and report["location_source"] == "facility"
    assert "Hàng Bạc Plaza" in report["location_label"] and "12 Hàng Bạc" in report["location_label"]
    assert "Nguyễn Văn An" in report["reporter_name"] and "+84912000111" in report["reporter_name"]
    assert report["device_id"] == "1001" and report["device_event_code"] == "CID:1110"
    assert report["facility_id"] is not None and report["raw"]["zone"] == "015"
    assert report["channel_ref"] == "sia:1001:0011:20261122T080005"


async def test_an_alarm_that_could_not_be_stored_is_nak_and_its_retry_is_stored(receiver: SiaReceiver,
                                                                                  store: Store) -> None:
    alarm = dc09("ADM-CID", "1001", 11, "#1001|1110 01 015", when=T5)
    async with store_refuses_reports(store):
        (reply,) = await send(receiver, alarm)
    assert reply["type"] == "NAK"
    assert await device_reports(store) == []
    (reply,) = await send(receiver, alarm)  # the panel sends it again
    assert reply["type"] == "ACK"
    assert len(await device_reports(store)) == 1


async def test_encrypted_alarm_gets_an_encrypted_ack(receiver: SiaReceiver, store: Store) -> None:
    (reply,) = await send(receiver, dc09("SIA-DCS", "1002", 13, "#1002|Nri1/FA0012", when=T5, key=KEY16.encode()))
    assert reply["crc_ok"] and reply["type"] == "*ACK" and reply["decrypted"].endswith("]_08:00:00,11-22-2026")
    (report,) = await device_reports(store)
    assert report["category"] == "fire" and report["device_id"] == "1002" and report["raw"]["zone"] == "0012"


async def test_a_retransmission_is_one_report(receiver: SiaReceiver, store: Store) -> None:
    alarm = dc09("SIA-DCS", "1001", 12, "#1001|Nri1/FA501", when=T5)
    replies = await send(receiver, alarm, alarm)
    assert [r["type"] for r in replies] == ["ACK", "ACK"]
    assert (await send_udp(receiver, alarm))["type"] == "ACK"  # and once more over the backup path
    assert len(await device_reports(store)) == 1


async def test_the_same_sequence_with_other_content_is_not_acknowledged(receiver: SiaReceiver, store: Store) -> None:
    await send(receiver, dc09("SIA-DCS", "1001", 12, "#1001|Nri1/FA501", when=T5))
    (reply,) = await send(receiver, dc09("SIA-DCS", "1001", 12, "#1001|Nri1/FA502", when=T5))
    assert reply["type"] == "DUH"
    (report,) = await device_reports(store)
    assert report["raw"]["zone"] == "501"


async def test_a_restoral_updates_the_alarm_report_of_its_zone(receiver: SiaReceiver, store: Store,
                                                               clock: Clock) -> None:
    await send(receiver, dc09("ADM-CID", "1001", 11, "#1001|1110 01 015", when=T5),
               dc09("ADM-CID", "1001", 12, "#1001|1110 01 016", when=T5))
    clock.advance(minutes=3)
    restoral = dc09("ADM-CID", "1001", 13, "#1001|3110 01 015", when=clock.now)
    replies = await send(receiver, restoral, restoral)
    assert [r["type"] for r in replies] == ["ACK", "ACK"]
    first, second = await device_reports(store)
    assert first["raw"]["restored_at"] == clock.now.isoformat()
    assert first["raw"]["restoral"]["code"] == "CID:3110"
    assert "restored_at" not in second["raw"]  # zone 016 is still in alarm
    assert first["version"] == 2  # updated once: the retransmitted restoral changed nothing


async def test_a_heartbeat_is_logged_not_reported(receiver: SiaReceiver, store: Store) -> None:
    replies = await send(receiver, dc09("NULL", "1001", 19, "", when=T5),
                         dc09("ADM-CID", "1001", 21, "#1001|1602 00 000", when=T5))
    assert [r["type"] for r in replies] == ["ACK", "ACK"]
    assert await device_reports(store) == []
    assert (await device_row(store, "1001"))["last_seen_at"] == T0


async def test_a_device_that_stops_its_heartbeats_is_flagged(receiver: SiaReceiver, store: Store,
                                                            clock: Clock) -> None:
    await send(receiver, dc09("NULL", "1001", 1, "", when=clock.now))
    clock.advance(seconds=119)  # heartbeat_s 60: two missed intervals is a fault, one is not
    assert await events.check_supervision(store, clock.now) == []
    clock.advance(seconds=2)
    assert await events.check_supervision(store, clock.now) == ["1001"]
    assert (await device_row(store, "1001"))["silent_since"] == clock.now
    assert await events.check_supervision(store, clock.advance(minutes=5)) == []  # flagged once
    (silent,) = await outbox_rows(store, "device")
    assert silent["kind"] == "device.silent"
    assert silent["payload"]["device"]["device_id"] == "1001"
    assert silent["payload"]["facility"]["contact_phone"] == "+84912000111"
    # The panel is back: the flag clears and the consoles hear it.
    await send(receiver, dc09("NULL", "1001", 2, "", when=clock.now))
    assert (await device_row(store, "1001"))["silent_since"] is None
    assert [r["kind"] for r in await outbox_rows(store, "device")] == ["device.silent", "device.resumed"]


async def test_a_device_never_heard_is_not_flagged(receiver: SiaReceiver, store: Store, clock: Clock) -> None:
    assert await events.check_supervision(store, clock.advance(hours=5)) == []


async def test_bad_crc_is_nak_and_nothing_is_stored(receiver: SiaReceiver, store: Store) -> None:
    (reply,) = await send(receiver, dc09("SIA-DCS", "1001", 12, "#1001|Nri1/FA501", when=T5, bad_crc=True))
    assert reply["crc_ok"] and reply["type"] == "NAK" and reply["body"].endswith("_08:00:00,11-22-2026")
    assert await device_reports(store) == []
    assert (await device_row(store, "1001"))["last_seen_at"] is None


async def test_unknown_account_is_duh(receiver: SiaReceiver, store: Store) -> None:
    (reply,) = await send(receiver, dc09("SIA-DCS", "7777", 5, "#7777|Nri1/FA501", when=T5))
    assert reply["type"] == "DUH" and reply["body"] == '"DUH"0005R1L0#7777[]'
    assert await device_reports(store) == []


async def test_the_receiver_keeps_serving_after_garbage(receiver: SiaReceiver, store: Store) -> None:
    async with connect(receiver) as (reader, writer):
        writer.write(b"\x00\xff\xfe garbage \x01\x02\r")
        await writer.drain()
        assert read_reply(await read_frame(reader))["type"] == "NAK"
        writer.write(b"noise before the frame" + dc09("SIA-DCS", "1001", 12, "#1001|Nri1/FA501", when=T5))
        await writer.drain()
        assert read_reply(await read_frame(reader))["type"] == "ACK"
    async with connect(receiver) as (reader, writer):  # a flood without a frame end: NAK and hang up
        writer.write(b"A" * (MAX_FRAME + 100))
        await writer.drain()
        assert read_reply(await read_frame(reader))["type"] == "NAK"
        assert await asyncio.wait_for(reader.read(), 10) == b""
    (reply,) = await send(receiver, dc09("ADM-CID", "1001", 13, "#1001|1130 02 021", when=T5))
    assert reply["type"] == "ACK"
    assert [r["category"] for r in await device_reports(store)] == ["fire", "police"]


async def test_alarm_over_udp(receiver: SiaReceiver, store: Store) -> None:
    reply = await send_udp(receiver, dc09("ADM-CID", "1001", 11, "#1001|1100 01 003", when=T5))
    assert reply["crc_ok"] and reply["type"] == "ACK"
    (report,) = await device_reports(store)
    assert report["category"] == "medical"


# --------------------------------------------------------------------------- configuration ---


async def test_the_listeners_are_off_until_configured(intake: Intake) -> None:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        assert devices.start(tg, intake, Settings(), stop) == []
        stop.set()


async def test_the_app_starts_the_receiver_from_settings(store: Store, clock: Clock) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from intake.web.app import create_app

    await registry(store)
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    app = create_app(Settings(extra={"sia_port": str(port), "device_supervision_s": "3600"}), store=store, clock=clock)
    async with TestClient(TestServer(app)):
        for _ in range(100):  # the receiver binds as the app starts
            with contextlib.suppress(ConnectionRefusedError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the SIA receiver did not start")
        writer.write(dc09("ADM-CID", "1001", 11, "#1001|1110 01 015", when=T5))
        await writer.drain()
        assert read_reply(await read_frame(reader))["type"] == "ACK"
        writer.close()
        await writer.wait_closed()
    assert len(await device_reports(store)) == 1
