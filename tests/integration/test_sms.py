"""SMS through Twilio: signed form posts in, TwiML out; AML SMS become call locations, not reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from intake.config import Settings
from intake.store import Store
from intake.store.tables import location_fixes, reports
from tests.conftest import Clock

TOKEN = "12345678901234567890123456789012"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "sms"
ASK_ADDRESS = "Vui lòng nhắn lại địa chỉ"


@dataclass(frozen=True)
class Posted:
    """A recorded webhook request (`tests/fixtures/*/*.http`)."""

    route: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


def load_http(path: Path) -> Posted:
    head, _, body = path.read_bytes().partition(b"\r\n\r\n")
    request_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    headers.pop("Host")  # the test server's own; the signed host comes in X-Forwarded-Host
    return Posted(route=request_line.split()[1], headers=headers, body=body)


async def send(client: TestClient, posted: Posted) -> Any:
    return await client.post(posted.route, data=posted.body, headers=posted.headers)


@pytest.fixture
async def client(store: Store, clock: Clock) -> AsyncIterator[TestClient]:
    from intake.web.app import create_app

    app = create_app(Settings(extra={"twilio_auth_token": TOKEN}), store=store, clock=clock)
    async with TestClient(TestServer(app)) as c:
        yield c


async def rows(store: Store, table: Any, **where: object) -> list[dict[str, Any]]:
    async with store.read() as repo:
        stmt = select(table).where(*(table.c[k] == v for k, v in where.items())).order_by(table.c.id)
        return [dict(r) for r in (await repo.conn.execute(stmt)).mappings().all()]


async def count(store: Store, table: Any, **where: object) -> int:
    async with store.read() as repo:
        stmt = select(func.count()).select_from(table).where(*(table.c[k] == v for k, v in where.items()))
        return int((await repo.conn.execute(stmt)).scalar_one())


def messages(twiml: str) -> list[str]:
    root = ElementTree.fromstring(twiml)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def expected_status(name: str) -> int:
    return 403 if "forged" in name else 400 if "malformed" in name else 200


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.http")), ids=lambda p: p.stem)
async def test_every_fixture(client: TestClient, store: Store, path: Path) -> None:
    resp = await send(client, load_http(path))
    status = expected_status(path.stem)
    assert resp.status == status, await resp.text()
    sms_reports, fixes = await count(store, reports, channel="sms"), await count(store, location_fixes)
    if status != 200:
        body = await resp.json()
        assert body["error"] in ("forbidden", "invalid_payload") and body["detail"]
        assert (sms_reports, fixes) == (0, 0)
        return
    assert resp.content_type == "text/xml"
    replies = messages(await resp.text())
    if path.stem.startswith("message__"):
        assert (sms_reports, fixes) == (1, 0)
        assert len(replies) == 1 and "Mã sự việc: #" in replies[0]
    else:  # AML: a location, never a report, and nothing texted back
        assert replies == []
        assert (sms_reports, fixes) == (0, 0 if "no_location" in path.stem else 1)


async def test_an_sms_with_an_address_is_a_located_report_and_gets_its_incident_number(
        client: TestClient, store: Store) -> None:
    posted = load_http(FIXTURES / "message__report_with_address.http")
    resp = await send(client, posted)
    (reply,) = messages(await resp.text())
    (report,) = await rows(store, reports, channel="sms")
    assert report["channel_ref"] == posted.form["MessageSid"]
    assert report["phone"] == "+84912345678" and report["text"] == posted.form["Body"]
    assert report["category"] == "fire" and report["lat"] is not None
    assert f"#{report['incident_id']}" in reply and ASK_ADDRESS not in reply


async def test_an_sms_without_a_place_is_asked_for_the_address(client: TestClient, store: Store) -> None:
    resp = await send(client, load_http(FIXTURES / "message__report_without_address.http"))
    (reply,) = messages(await resp.text())
    (report,) = await rows(store, reports, channel="sms")
    assert report["lat"] is None
    assert ASK_ADDRESS in reply and f"#{report['incident_id']}" in reply


async def test_mms_media_become_attachments(client: TestClient, store: Store) -> None:
    posted = load_http(FIXTURES / "message__mms_photo.http")
    assert (await send(client, posted)).status == 200
    (report,) = await rows(store, reports, channel="sms")
    assert report["attachments"] == [{"type": "image/jpeg", "url": posted.form["MediaUrl0"]}]


async def test_a_retried_message_is_one_report_with_the_same_answer(client: TestClient, store: Store) -> None:
    posted = load_http(FIXTURES / "message__report_with_address.http")
    first = await (await send(client, posted)).text()
    again = await send(client, posted)
    assert again.status == 200 and await again.text() == first
    assert await count(store, reports, channel="sms") == 1


async def test_a_forged_or_tampered_message_is_403_and_stores_nothing(client: TestClient, store: Store) -> None:
    posted = load_http(FIXTURES / "message__report_with_address.http")
    forged = {**posted.headers, "X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    assert (await client.post(posted.route, data=posted.body, headers=forged)).status == 403
    tampered = posted.body.replace(b"From=%2B84912345678", b"From=%2B84999999999")
    assert tampered != posted.body
    assert (await client.post(posted.route, data=tampered, headers=posted.headers)).status == 403
    unsigned = {k: v for k, v in posted.headers.items() if k != "X-Twilio-Signature"}
    assert (await client.post(posted.route, data=posted.body, headers=unsigned)).status == 403
    assert await count(store, reports) == 0


async def test_an_aml_sms_is_stored_as_a_fix_not_a_report(client: TestClient, store: Store) -> None:
    posted = load_http(FIXTURES / "aml__v1_gnss.http")
    resp = await send(client, posted)
    assert resp.status == 200 and messages(await resp.text()) == []
    assert await count(store, reports) == 0
    (fix,) = await rows(store, location_fixes)
    assert fix["channel"] == "aml_sms" and fix["channel_ref"] == posted.form["MessageSid"]
    assert fix["phone"] == "+84912345678" and (fix["lat"], fix["lon"], fix["accuracy_m"]) == (21.03412, 105.85067, 12)
    assert fix["source"] == "gps" and fix["report_id"] is None  # no call yet: it waits
    assert fix["raw"]["body"] == posted.form["Body"]


async def test_the_door_is_off_until_configured(store: Store) -> None:
    from intake.web.app import create_app

    posted = load_http(FIXTURES / "message__report_with_address.http")
    async with TestClient(TestServer(create_app(Settings(), store=store))) as c:
        resp = await send(c, posted)
        assert resp.status == 404 and "INTAKE_TWILIO_AUTH_TOKEN" in (await resp.json())["detail"]
