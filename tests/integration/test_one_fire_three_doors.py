"""One fire, three doors, one incident: a call (AMI + its transcript), a Zalo message and the building's
smoke detector (SIA DC-09 over TCP), all through one running server, each match with its reasons."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from intake.config import Settings
from intake.facilities import import_csv
from intake.store import Store
from intake.store.tables import incidents, reports
from intake.telephony.ami_replay import AmiReplayServer
from intake.web.app import INTAKE, create_app
from tests.conftest import Clock
from tests.fakes.zalo_api import FakeZaloApi
from tests.integration.test_ami import AMI
from tests.integration.test_sia import FIXTURES
from tests.integration.test_zalo import ACCESS_TOKEN, APP_ID, OA_SECRET, USER, mac
from tests.unit.test_sia_parse import dc09, read_reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def rows(store: Store, table: Any) -> list[dict[str, Any]]:
    async with store.read() as repo:
        return [dict(r) for r in (await repo.conn.execute(select(table).order_by(table.c.id))).mappings()]


async def until(condition: Any, seconds: float = 20) -> None:
    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - waiting on a running server from outside
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), seconds)


@pytest.fixture
async def server(store: Store) -> AsyncIterator[tuple[TestClient, AmiReplayServer, int, Clock]]:
    await import_csv(store, FIXTURES / "facilities" / "hanoi_sample.csv", Settings(), progress=False)
    clock = Clock(datetime.now(UTC))  # the AMI bridge stamps calls with the wall clock: keep one time line
    sia_port = _free_port()
    async with FakeZaloApi(ACCESS_TOKEN) as zalo, \
            AmiReplayServer(AMI / "normal_call.txt", speed=20) as ami:
        settings = Settings(ami_port=ami.port, ami_secret="intake-secret", extra={
            "zalo_app_id": APP_ID, "zalo_oa_secret": OA_SECRET, "zalo_access_token": ACCESS_TOKEN,
            "zalo_api_url": zalo.url, "sia_port": str(sia_port), "sia_udp": "off"})
        async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as client:
            yield client, ami, sia_port, clock


async def test_a_call_a_zalo_message_and_the_smoke_detector_are_one_incident(
        server: tuple[TestClient, AmiReplayServer, int, Clock], store: Store) -> None:
    client, _ami, sia_port, clock = server
    intake = client.app[INTAKE]

    # 1. The call: Asterisk's events make the report; the caller's words (as the recognizer's finals
    #    would) grow it — the Korean test model cannot hear Vietnamese, so the text is given here.
    async def call_report() -> dict[str, Any] | None:
        found = [r for r in await rows(store, reports) if r["channel"] == "call"]
        return found[0] if found else None

    await until(call_report)
    call = await call_report()
    assert call is not None
    spoken = "Cháy lớn ở tòa nhà số 12 phố Hàng Bạc quận Hoàn Kiếm, khói đen lắm, có người kẹt"
    await intake.update_report(call["id"], text=spoken, actor="asr")

    # 2. A neighbour on Zalo, a minute later: a few words, then the location pin Zalo lets them share.
    clock.advance(minutes=1)
    for event, message in (
        ("user_send_text", {"text": "cháy ở 12 Hàng Bạc, lửa to lắm", "msg_id": "9b1c2d3e4f5a6b7c8d9e"}),
        ("user_send_location", {"msg_id": "9b1c2d3e4f5a6b7c8d9f", "text": "", "attachments": [{
            "type": "location", "payload": {"coordinates": {"latitude": "21.034215", "longitude": "105.852107"}}}]}),
    ):
        body = json.dumps({
            "app_id": APP_ID, "user_id_by_app": "5521772797175877301", "event_name": event,
            "timestamp": str(int(clock.now.timestamp() * 1000)), "sender": {"id": USER},
            "recipient": {"id": "3886132808788086452"}, "message": message,
        }, ensure_ascii=False).encode()
        resp = await client.post("/webhooks/zalo", data=body,
                                 headers={"Content-Type": "application/json", "X-ZEvent-Signature": mac(body)})
        assert resp.status == 200, await resp.text()
        clock.advance(seconds=10)

    # 3. The building's smoke detector (account 1001, Hàng Bạc Plaza): Contact ID 1110, fire, over TCP.
    clock.advance(seconds=20)
    reader, writer = await asyncio.open_connection("127.0.0.1", sia_port)
    writer.write(dc09("ADM-CID", "1001", 7, "#1001|1110 01 015", when=clock.now))
    await writer.drain()
    reply = read_reply(await asyncio.wait_for(reader.readuntil(b"\r"), 10))
    writer.close()
    await writer.wait_closed()
    assert reply["crc_ok"] and reply["type"] == "ACK"  # sent only once the alarm was stored

    stored = await rows(store, reports)
    assert sorted(r["channel"] for r in stored) == ["call", "device", "zalo"]
    (incident,) = [i for i in await rows(store, incidents) if i["merged_into"] is None]
    assert incident["category"] == "fire" and incident["report_count"] == 3
    assert {r["incident_id"] for r in stored} == {incident["id"]}
    by_channel = {r["channel"]: r for r in stored}
    for channel in ("zalo", "device"):
        match = by_channel[channel]["match"]
        assert match["outcome"] == "attached", (channel, match)
        kinds = {reason["code"] for reason in match["reasons"]}
        assert {"distance", "category", "time"} <= kinds, (channel, match["reasons"])
    assert by_channel["device"]["location_source"] == "facility"
    assert by_channel["zalo"]["location_source"] == "gps" and by_channel["call"]["location_source"] == "address"

