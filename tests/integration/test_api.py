"""The queue API over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from intake.config import Settings
from intake.store import Store
from intake.web.app import create_app
from intake.web.auth import create_token
from tests.conftest import Clock


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str], store: Store, clock: Clock) -> None:
        self.client = client
        self.tokens = tokens
        self.store = store
        self.clock = clock
        self.n = 0

    def headers(self, role: str, key: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[role]}"}
        if key is not None:
            h["Idempotency-Key"] = key
        return h

    async def report(self, body: Any, *, key: str | None = None, role: str = "app") -> tuple[int, dict[str, Any]]:
        self.n += 1
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        resp = await self.client.post("/api/v1/reports", data=data,
                                      headers={**self.headers(role, key or f"k{self.n}"),
                                               "Content-Type": "application/json"})
        return resp.status, await resp.json()

    async def get(self, path: str, role: str = "calltaker") -> tuple[int, Any]:
        resp = await self.client.get(path, headers=self.headers(role))
        return resp.status, await resp.json()

    async def post(self, path: str, body: Any = None, role: str = "calltaker") -> tuple[int, Any]:
        resp = await self.client.post(path, json=body, headers=self.headers(role))
        return resp.status, await resp.json()

    async def stored(self) -> int:
        async with self.store.read() as repo:
            return await repo.count_incidents(["open", "acknowledged", "closed", "merged"])


@pytest.fixture
async def api(store: Store, clock: Clock) -> AsyncIterator[Api]:
    settings = Settings(max_body_bytes=64_000)
    tokens = {}
    for role, agency in [("app", None), ("calltaker", None), ("admin", None), ("fire", "fire"),
                         ("fire2", "fire"), ("police", "police")]:
        tokens[role] = await create_token(store, role="dispatcher" if agency else role, name=role,
                                          agency=agency, now=clock())
    app = create_app(settings, store=store, clock=clock)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens, store, clock)


FIRE = {"text": "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm", "phone": "0912345678"}


async def test_post_report_creates_an_incident_visible_in_the_queue(api: Api) -> None:
    status, body = await api.report(FIRE)
    assert status == 201
    assert body["outcome"] == "created" and body["category"] == "fire"
    status, page = await api.get("/api/v1/incidents")
    assert status == 200
    assert [i["id"] for i in page["items"]] == [body["incident_id"]]
    assert page["items"][0]["location_label"] and "Hoàn Kiếm" in page["items"][0]["location_label"]


async def test_a_retry_with_the_same_key_returns_the_same_report(api: Api) -> None:
    s1, b1 = await api.report(FIRE, key="abc")
    s2, b2 = await api.report(FIRE, key="abc")
    assert (s1, s2) == (201, 200)
    assert b2["outcome"] == "duplicate" and b2["report_id"] == b1["report_id"]
    assert await api.stored() == 1


async def test_a_key_reused_for_a_different_body_is_422(api: Api) -> None:
    await api.report(FIRE, key="abc")
    status, body = await api.report({"text": "có cướp"}, key="abc")
    assert status == 422 and body["error"] == "idempotency_key_reused"
    assert await api.stored() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"text": 42}, "text"),
        ({"text": "cháy", "lat": 91, "lon": 105}, "lat"),
        ({"text": "cháy", "lat": 21, "lon": 181}, "lon"),
        ({"text": "cháy", "lat": 21}, "lon"),
        ({"text": "cháy", "lat": "21", "lon": 105}, "lat"),
        ({"text": "cháy", "lat": True, "lon": 105}, "lat"),
        ({"text": "cháy", "category": "aliens"}, "category"),
        ({"text": "cháy", "lattitude": 21.0}, "lattitude"),
        ({}, "text"),
        ({"text": "cháy", "received_at": "yesterday"}, "received_at"),
        ({"text": "cháy", "received_at": "2026-11-22T08:00:00"}, "received_at"),
        ({"text": "cháy", "lat": 21, "lon": 105, "accuracy": -1}, "accuracy"),
        ({"text": "x" * 5001}, "text"),
    ],
)
async def test_bad_input_is_a_clear_400_and_stores_nothing(api: Api, body: Any, field: str | None) -> None:
    status, answer = await api.report(body)
    assert status == 400
    assert answer["error"] == "invalid_payload" and answer["detail"]
    assert answer["field"] == field
    assert await api.stored() == 0


async def test_a_huge_body_is_413(api: Api) -> None:
    status, answer = await api.report({"text": "cháy " * 20_000})
    assert status == 413 and answer["error"] == "too_large"
    assert await api.stored() == 0


async def test_a_missing_idempotency_key_is_400(api: Api) -> None:
    resp = await api.client.post("/api/v1/reports", json=FIRE, headers={"Authorization": f"Bearer {api.tokens['app']}"})
    assert resp.status == 400 and (await resp.json())["field"] == "Idempotency-Key"


async def test_no_token_is_401_and_a_wrong_role_is_403(api: Api) -> None:
    resp = await api.client.post("/api/v1/reports", json=FIRE, headers={"Idempotency-Key": "x"})
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    resp = await api.client.get("/api/v1/incidents", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    status, body = await api.get("/api/v1/incidents", role="app")
    assert status == 403 and body["error"] == "forbidden"
    assert await api.stored() == 0


async def test_an_unknown_route_is_a_json_404(api: Api) -> None:
    status, body = await api.get("/api/v1/nothing-here")
    assert status == 404 and body["error"] == "not_found"


async def test_openapi_document_lists_every_route(api: Api) -> None:
    resp = await api.client.get("/api/v1/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    for path in ["/reports", "/incidents", "/incidents/{id}", "/incidents/{id}/claim", "/incidents/{id}/release",
                 "/incidents/{id}/ack", "/incidents/{id}/close", "/incidents/{id}/merge", "/incidents/{id}/split",
                 "/incidents/{id}/notes", "/stream"]:
        assert path in doc["paths"], path


async def test_incident_detail_has_reports_and_events(api: Api) -> None:
    _, r = await api.report(FIRE)
    status, inc = await api.get(f"/api/v1/incidents/{r['incident_id']}")
    assert status == 200
    assert [x["id"] for x in inc["reports"]] == [r["report_id"]]
    assert [e["kind"] for e in inc["events"]] == ["opened"]
    status, body = await api.get("/api/v1/incidents/999")
    assert status == 404
    status, body = await api.get("/api/v1/incidents/abc")
    assert status == 400 and body["field"] == "id"


async def test_list_filters_and_cursor_pages(api: Api) -> None:
    ids = []
    for i in range(5):
        _, r = await api.report({"text": "cháy nhà", "lat": 21.0 + i * 0.1, "lon": 105.8})
        ids.append(r["incident_id"])
    _, r = await api.report({"text": "có người ngất xỉu, cần cấp cứu", "lat": 20.5, "lon": 105.8})
    medical = r["incident_id"]
    status, page1 = await api.get("/api/v1/incidents?category=fire&limit=2")
    assert status == 200 and [i["id"] for i in page1["items"]] == [ids[4], ids[3]]
    status, page2 = await api.get(f"/api/v1/incidents?category=fire&limit=2&cursor={page1['next_cursor']}")
    assert [i["id"] for i in page2["items"]] == [ids[2], ids[1]]
    status, page3 = await api.get(f"/api/v1/incidents?category=fire&limit=2&cursor={page2['next_cursor']}")
    assert [i["id"] for i in page3["items"]] == [ids[0]] and page3["next_cursor"] is None
    status, near = await api.get("/api/v1/incidents?near=21.2,105.8,2000")
    assert [i["id"] for i in near["items"]] == [ids[2]]
    status, med = await api.get("/api/v1/incidents?category=medical")
    assert [i["id"] for i in med["items"]] == [medical]
    status, body = await api.get("/api/v1/incidents?category=aliens")
    assert status == 400 and body["field"] == "category"
    status, body = await api.get("/api/v1/incidents?near=1,2")
    assert status == 400 and body["field"] == "near"


async def test_claim_is_a_lease_and_a_second_claimer_gets_409(api: Api) -> None:
    _, r = await api.report(FIRE)
    path = f"/api/v1/incidents/{r['incident_id']}"
    status, inc = await api.post(f"{path}/claim", role="fire")
    assert status == 200 and inc["lease"]["holder"] == "fire"
    status, body = await api.post(f"{path}/claim", role="fire2")
    assert status == 409 and body["info"]["holder"] == "fire"
    api.clock.advance(seconds=121)  # the lease ran out
    status, inc = await api.post(f"{path}/claim", role="fire2")
    assert status == 200 and inc["lease"]["holder"] == "fire2"
    status, _ = await api.post(f"{path}/release", role="fire")
    assert status == 409
    status, inc = await api.post(f"{path}/release", role="fire2")
    assert status == 200 and inc["lease"] is None


async def test_a_dispatcher_acts_only_on_its_agency(api: Api) -> None:
    _, r = await api.report(FIRE)
    status, _ = await api.post(f"/api/v1/incidents/{r['incident_id']}/claim", role="police")
    assert status == 403


async def test_ack_and_close(api: Api) -> None:
    _, r = await api.report(FIRE)
    path = f"/api/v1/incidents/{r['incident_id']}"
    status, inc = await api.post(f"{path}/ack", role="fire")
    assert status == 200 and inc["status"] == "acknowledged" and inc["acked_by"] == "fire"
    status, _ = await api.post(f"{path}/ack", role="fire")
    assert status == 409
    status, inc = await api.post(f"{path}/close", {"reason": "extinguished"}, role="fire")
    assert status == 200 and inc["status"] == "closed"
    status, _ = await api.post(f"{path}/close", {"reason": "again"}, role="fire")
    assert status == 409
    _, detail = await api.get(path)
    assert [e["kind"] for e in detail["events"]] == ["opened", "acknowledged", "closed"]


async def test_merge_and_split(api: Api) -> None:
    _, a = await api.report({"text": "cháy nhà", "lat": 21.0, "lon": 105.8})
    _, b = await api.report({"text": "cháy nhà", "lat": 21.2, "lon": 105.8})
    status, merged = await api.post(f"/api/v1/incidents/{b['incident_id']}/merge", {"into": a["incident_id"]})
    assert status == 200 and merged["id"] == a["incident_id"] and merged["report_count"] == 2
    _, gone = await api.get(f"/api/v1/incidents/{b['incident_id']}")
    assert gone["status"] == "merged" and gone["merged_into"] == a["incident_id"]
    status, _ = await api.post(f"/api/v1/incidents/{a['incident_id']}/merge", {"into": "x"})
    assert status == 400
    status, new = await api.post(f"/api/v1/incidents/{a['incident_id']}/split", {"report_ids": [b["report_id"]]})
    assert status == 201 and new["report_count"] == 1 and new["id"] not in (a["incident_id"], b["incident_id"])
    _, kept = await api.get(f"/api/v1/incidents/{a['incident_id']}")
    assert kept["report_count"] == 1 and [x["id"] for x in kept["reports"]] == [a["report_id"]]
    status, _ = await api.post(f"/api/v1/incidents/{a['incident_id']}/split", {"report_ids": [a["report_id"]]})
    assert status == 400  # a split must leave a report behind


async def test_notes_are_audited(api: Api) -> None:
    _, r = await api.report(FIRE)
    status, _ = await api.post(f"/api/v1/incidents/{r['incident_id']}/notes", {"text": "caller on the 3rd floor"})
    assert status == 201
    status, _ = await api.post(f"/api/v1/incidents/{r['incident_id']}/notes", {"text": ""})
    assert status == 400
    _, detail = await api.get(f"/api/v1/incidents/{r['incident_id']}")
    assert detail["events"][-1]["kind"] == "note"
    assert detail["events"][-1]["data"]["text"] == "caller on the 3rd floor"


async def _read_events(ws: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive_json(), timeout=10)
        if msg["type"] == "event":
            out.append(msg)
    return out


async def test_stream_pushes_live_and_resumes_without_gap_or_duplicate(api: Api) -> None:
    token = api.tokens["calltaker"]
    ws = await api.client.ws_connect(f"/api/v1/stream?cursor=0&token={token}")
    hello = await ws.receive_json()
    assert hello == {"type": "hello", "cursor": 0}
    _, r1 = await api.report({"text": "cháy nhà", "lat": 21.0, "lon": 105.8})
    await api.report({"text": "cháy nhà", "lat": 21.0, "lon": 105.8001})
    first = await _read_events(ws, 2)
    assert [e["kind"] for e in first] == ["incident.opened", "incident.updated"]
    await ws.close()
    # Events happen while the consumer is away ...
    _, r3 = await api.report({"text": "cướp giật túi xách", "lat": 20.0, "lon": 105.0})
    await api.post(f"/api/v1/incidents/{r1['incident_id']}/notes", {"text": "on the way"})
    # ... and it resumes from the last cursor it saw.
    ws = await api.client.ws_connect(f"/api/v1/stream?cursor={first[-1]['cursor']}&token={token}")
    await ws.receive_json()
    rest = await _read_events(ws, 2)
    await ws.close()
    assert [e["kind"] for e in rest] == ["incident.opened", "incident.note"]
    assert rest[0]["incident_id"] == r3["incident_id"]
    cursors = [e["cursor"] for e in first + rest]
    assert cursors == sorted(set(cursors))
