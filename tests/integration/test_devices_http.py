"""IP devices and AI cameras over HTTP: POST /api/v1/devices/{device_id}/events with the device's own secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from intake.config import Settings
from intake.store import Store
from tests.conftest import Clock
from tests.integration.test_sia import device_reports, device_row, registry

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "devices_http").glob("*.http"))
DONG_XUAN = (21.03810, 105.84960)  # facility HN-0002, where camera dx-cam-01 hangs


def load_http(path: Path) -> tuple[str, dict[str, str], bytes]:
    """A raw HTTP request as a fixture: request line, headers, blank line, body."""
    head, _, body = path.read_bytes().partition(b"\n\n")
    lines = head.decode().splitlines()
    target = lines[0].split()[1]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers.pop("Content-Length", None)
    headers.pop("Host", None)
    return target, headers, body


@pytest.fixture
async def client(store: Store, clock: Clock) -> AsyncIterator[TestClient]:
    from intake.web.app import create_app

    await registry(store)
    app = create_app(Settings(extra={"devices_http": "on", "device_supervision_s": "3600"}), store=store, clock=clock)
    async with TestClient(TestServer(app)) as c:
        yield c


async def post(client: TestClient, path: Path) -> tuple[int, dict[str, Any]]:
    target, headers, body = load_http(path)
    resp = await client.post(target, data=body, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_every_fixture_gets_its_status(path: Path, client: TestClient, store: Store) -> None:
    expected = int(path.stem.rsplit("_", 1)[1])
    status, body = await post(client, path)
    assert status == expected, body
    stored = await device_reports(store)
    assert len(stored) == (1 if expected == 201 else 0)
    if expected >= 400:
        assert body["error"] and body["detail"]


async def test_a_camera_detection_becomes_a_fire_report_with_its_snapshot(client: TestClient, store: Store) -> None:
    status, body = await post(client, FIXTURES[0].parent / "smoke__camera_201.http")
    assert status == 201 and body["outcome"] == "reported" and body["code"] == "CAM:SMOKE"
    (report,) = await device_reports(store)
    assert report["id"] == body["report_id"] and report["incident_id"] == body["incident_id"]
    assert report["category"] == "fire" and (report["lat"], report["lon"]) == DONG_XUAN
    assert "Chợ Đồng Xuân" in report["location_label"] and "Trần Thị Bình" in report["reporter_name"]
    (snapshot,) = report["attachments"]
    assert snapshot["type"] == "image" and snapshot["confidence"] == 0.91
    assert snapshot["url"] == "https://nvr.dongxuan.example/snapshots/dx-cam-01/20261122T150005.jpg"
    assert report["channel_ref"] == "http:dx-cam-01:dx01-000881"


async def test_a_retried_post_is_one_report(client: TestClient, store: Store) -> None:
    path = FIXTURES[0].parent / "smoke__camera_201.http"
    first, again = await post(client, path), await post(client, path)
    assert (first[0], again[0]) == (201, 200)
    assert again[1]["outcome"] == "duplicate" and again[1]["report_id"] == first[1]["report_id"]
    assert len(await device_reports(store)) == 1


async def test_an_ip_panel_alarm_is_located_at_its_facility_and_restored(client: TestClient, store: Store,
                                                                           clock: Clock) -> None:
    status, _ = await post(client, FIXTURES[0].parent / "fire_alarm__ip_panel_201.http")
    assert status == 201
    clock.advance(minutes=4)
    target, headers, _ = load_http(FIXTURES[0].parent / "fire_alarm__ip_panel_201.http")
    restoral = {"code": "CID:3115", "zone": "004", "time": "2026-11-22T15:04:00+07:00"}
    resp = await client.post(target, data=json.dumps(restoral), headers=headers)
    assert resp.status == 200 and (await resp.json())["outcome"] == "restored"
    (report,) = await device_reports(store)
    assert report["category"] == "fire" and report["location_source"] == "facility"
    assert report["ward_code"] is not None  # HN-0003 has no coordinates: its address was located
    assert report["raw"]["restored_at"] == "2026-11-22T15:04:00+07:00"
    assert (await device_row(store, "ocd-01"))["last_seen_at"] == clock.now


async def test_a_heartbeat_is_logged(client: TestClient, store: Store) -> None:
    status, body = await post(client, FIXTURES[0].parent / "heartbeat__ip_panel_200.http")
    assert status == 200 and body["outcome"] == "logged" and body["report_id"] is None
    assert (await device_row(store, "ocd-01"))["last_seen_at"] is not None


async def test_a_wrong_secret_stores_nothing_and_touches_nothing(client: TestClient, store: Store) -> None:
    status, _ = await post(client, FIXTURES[0].parent / "smoke__wrong_secret_401.http")
    assert status == 401
    assert (await device_row(store, "dx-cam-01"))["last_seen_at"] is None


async def test_the_door_is_off_until_configured(store: Store) -> None:
    from intake.web.app import create_app

    await registry(store)
    async with TestClient(TestServer(create_app(Settings(), store=store))) as c:
        target, headers, body = load_http(FIXTURES[0].parent / "smoke__camera_201.http")
        resp = await c.post(target, data=body, headers=headers)
        assert resp.status == 404 and "INTAKE_DEVICES_HTTP" in (await resp.json())["detail"]
    assert await device_reports(store) == []
