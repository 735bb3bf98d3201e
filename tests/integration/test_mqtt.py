"""The MQTT door against the local Mosquitto (127.0.0.1:1883) and a real store.

Each test has its own topic and client id, so tests (and other helpers on the same broker) never
see each other's messages; the persistent sessions a test makes are removed when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from intake.channels.devices.events import Disposition
from intake.channels.devices.mqtt import MessageResult, MqttListener, parse_url
from intake.pipeline import Intake
from intake.store import Store
from tests.conftest import Clock
from tests.integration.test_sia import HANG_BAC, device_reports, device_row, registry, store_refuses_reports

BROKER = ("127.0.0.1", 1883)
FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "mqtt").glob("*.json"))
ALARM = b'{"device_id": "hangbac/panel1", "code": "CID:1110", "zone": "015", "time": "2026-11-22T15:00:05+07:00"}'


@dataclass
class Door:
    listener: MqttListener
    results: asyncio.Queue[MessageResult]
    topic: str  # where devices publish (under the listener's filter)

    async def publish(self, payload: bytes, subtopic: str = "hangbac/panel1") -> None:
        async with aiomqtt.Client(*BROKER, identifier=f"test-pub-{uuid.uuid4().hex[:8]}") as pub:
            await pub.publish(f"{self.topic}/{subtopic}", payload, qos=1)

    async def next_result(self) -> MessageResult:
        return await asyncio.wait_for(self.results.get(), 15)


async def forget_session(client_id: str) -> None:
    """A clean-session connect with the same id removes the broker's persistent session."""
    async with aiomqtt.Client(*BROKER, identifier=client_id, clean_session=True):
        pass


@pytest.fixture
async def door(store: Store, intake: Intake) -> AsyncIterator[Door]:
    await registry(store)
    base = f"intake-test/{uuid.uuid4().hex}"
    results: asyncio.Queue[MessageResult] = asyncio.Queue()

    async def collect(result: MessageResult) -> None:
        results.put_nowait(result)

    client_id = f"intake-test-{uuid.uuid4().hex[:12]}"
    listener = MqttListener(intake, f"mqtt://{BROKER[0]}:{BROKER[1]}/{base}/#", client_id=client_id,
                            on_result=collect, backoff_initial=0.05, backoff_max=0.2)
    d = Door(listener, results, base)
    try:
        yield d
    finally:
        await forget_session(client_id)


@pytest.fixture
async def running(door: Door) -> AsyncIterator[Door]:
    async with _running(door.listener):
        yield door


class _running:
    """Run a listener until the block ends; enter once it is subscribed."""

    def __init__(self, listener: MqttListener) -> None:
        self.listener = listener
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self.task = asyncio.create_task(self.listener.run(self.stop))
        subscribed = asyncio.create_task(self.listener.subscribed.wait())
        await asyncio.wait({self.task, subscribed}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if not subscribed.done():
            subscribed.cancel()
            self.stop.set()
            await self.task
            pytest.fail("the MQTT listener did not subscribe")

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


# --------------------------------------------------------------------------- every fixture ---


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_every_fixture_through_the_door(path: Path, door: Door, store: Store) -> None:
    expected = path.stem.split("__")[1].rsplit("_", 1)[-1]
    result = await door.listener.handle(f"{door.topic}/x", path.read_bytes())
    stored = await device_reports(store)
    if expected == "dropped":
        assert result.dropped and result.handled is None
        assert stored == []
    else:
        assert result.handled is not None and result.handled.disposition.value == expected, result
        assert len(stored) == (1 if expected == "reported" else 0)
        assert (await device_row(store, "hangbac/panel1"))["last_seen_at"] is not None


# ------------------------------------------------------------------------------ the broker ---


async def test_an_alarm_published_becomes_a_report_at_the_facility(running: Door, store: Store) -> None:
    await running.publish(ALARM)
    result = await running.next_result()
    assert result.handled is not None and result.handled.disposition == Disposition.REPORTED
    (report,) = await device_reports(store)
    assert report["category"] == "fire" and (report["lat"], report["lon"]) == HANG_BAC
    assert report["location_source"] == "facility" and "Nguyễn Văn An" in report["reporter_name"]
    assert report["channel_ref"] == "mqtt:hangbac/panel1:20261122T080005.000000:CID:1110:015"


async def test_a_redelivered_message_is_one_report(running: Door, store: Store) -> None:
    await running.publish(ALARM)
    await running.publish(ALARM)
    first, second = await running.next_result(), await running.next_result()
    assert first.handled is not None and second.handled is not None
    assert (first.handled.disposition, second.handled.disposition) == (Disposition.REPORTED, Disposition.DUPLICATE)
    assert len(await device_reports(store)) == 1


async def test_malformed_and_unknown_messages_are_dropped_and_the_listener_goes_on(running: Door,
                                                                                    store: Store) -> None:
    await running.publish(b"\xff\xfe not json")
    await running.publish(b'{"device_id": "ghost/panel9", "code": "CID:1110", "time": "2026-11-22T08:00:05Z"}')
    await running.publish(ALARM)
    bad, ghost, good = [await running.next_result() for _ in range(3)]
    assert bad.dropped is not None and "JSON" in bad.dropped
    assert ghost.dropped is not None and "ghost/panel9" in ghost.dropped
    assert good.handled is not None and good.handled.disposition == Disposition.REPORTED
    assert len(await device_reports(store)) == 1


async def test_a_restoral_updates_the_alarm(running: Door, store: Store, clock: Clock) -> None:
    await running.publish(ALARM)
    await running.next_result()
    await running.publish(b'{"device_id": "hangbac/panel1", "code": "CID:3110", "zone": "015", '
                          b'"time": "2026-11-22T15:02:00+07:00"}')
    result = await running.next_result()
    assert result.handled is not None and result.handled.disposition == Disposition.RESTORED
    (report,) = await device_reports(store)
    assert report["raw"]["restored_at"] == "2026-11-22T15:02:00+07:00"


async def test_a_message_is_acknowledged_only_once_stored(running: Door, store: Store,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="intake.channels.devices.mqtt")
    async with store_refuses_reports(store):
        await running.publish(ALARM)
        for _ in range(1000):  # the listener tries, fails, drops the session without PUBACK, reconnects
            if any("session ended" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        assert any("session ended" in r.getMessage() for r in caplog.records)
        assert await device_reports(store) == []
    result = await running.next_result()  # the broker redelivers the unacknowledged message
    assert result.handled is not None and result.handled.disposition == Disposition.REPORTED
    assert len(await device_reports(store)) == 1


async def test_a_message_sent_while_the_listener_was_away_arrives_when_it_returns(door: Door,
                                                                                   store: Store) -> None:
    async with _running(door.listener):  # the first connection makes the persistent session
        pass
    await door.publish(ALARM)  # QoS 1: the broker keeps it for the session
    assert await device_reports(store) == []
    async with _running(door.listener):
        result = await door.next_result()
    assert result.handled is not None and result.handled.disposition == Disposition.REPORTED
    assert len(await device_reports(store)) == 1


async def test_the_listener_reconnects_with_backoff(intake: Intake, caplog: pytest.LogCaptureFixture) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens there now
    listener = MqttListener(intake, f"mqtt://127.0.0.1:{port}/x/#", client_id="intake-test-nobroker",
                            backoff_initial=0.01, backoff_max=0.05)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="intake.channels.devices.mqtt")
    task = asyncio.create_task(listener.run(stop))
    for _ in range(500):
        if sum("reconnecting" in r.getMessage() for r in caplog.records) >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task  # returns once stopped, without raising
    assert sum("reconnecting" in r.getMessage() for r in caplog.records) >= 3
    assert not listener.subscribed.is_set()


def test_the_url_names_broker_credentials_and_topic() -> None:
    t = parse_url("mqtt://intake:s%40cret@broker.local/intake/devices/#")
    assert (t.host, t.port, t.topic, t.username, t.password, t.tls) == (
        "broker.local", 1883, "intake/devices/#", "intake", "s@cret", False)
    assert parse_url("mqtts://b/t/#").port == 8883
    for bad in ("http://b/t", "mqtt://b", "mqtt:///t/#"):
        with pytest.raises(ValueError):
            parse_url(bad)
