"""GET /api/v1/incidents/{id}/eido and /cap over HTTP on SQLite and PostgreSQL, and `intake incidents export`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from aiohttp.test_utils import TestClient, TestServer

from intake.channels.sip_message import parse_pidf_lo
from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.store import Store
from intake.web.app import create_app
from intake.web.auth import create_token
from tests.conftest import Clock
from tests.unit.test_exports import NS, check_cap, eido_refs

AGENCY = "hotline.example.vn"
EIDO_TYPE = "application/emergency.eido+json"
CAP_TYPE = "application/cap+xml"
FIRE_CALL = "Cháy nhà ở số 12 phố Hàng Bạc quận Hoàn Kiếm"


@dataclass
class Web:
    client: TestClient
    tokens: dict[str, str]
    intake: Intake
    clock: Clock

    async def get(self, path: str, role: str | None = "calltaker") -> tuple[int, str, bytes]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        resp = await self.client.get(path, headers=headers)
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    async def post(self, path: str, body: dict[str, Any], role: str = "calltaker",
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
        resp = await self.client.post(path, json=body,
                                      headers={"Authorization": f"Bearer {self.tokens[role]}", **(headers or {})})
        assert resp.status in (200, 201), await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    async def eido(self, incident_id: int, role: str = "calltaker") -> dict[str, Any]:
        status, content_type, body = await self.get(f"/api/v1/incidents/{incident_id}/eido", role)
        assert status == 200, body
        assert content_type == f"{EIDO_TYPE}; charset=utf-8"
        doc: dict[str, Any] = json.loads(body)
        return doc

    async def cap(self, incident_id: int, role: str = "calltaker") -> ET.Element:
        status, content_type, body = await self.get(f"/api/v1/incidents/{incident_id}/cap", role)
        assert status == 200, body
        assert content_type == f"{CAP_TYPE}; charset=utf-8"
        return check_cap(body)


@pytest.fixture
async def web(store: Store, clock: Clock) -> AsyncIterator[Web]:
    settings = Settings(extra={"agency_id": AGENCY, "agency_name": "Trung tâm 112"})
    tokens = {}
    for name, role, agency in [("app", "app", None), ("calltaker", "calltaker", None), ("admin", "admin", None),
                               ("fire", "dispatcher", "fire"), ("police", "dispatcher", "police"),
                               ("medical", "dispatcher", "medical")]:
        tokens[name] = await create_token(store, role=role, name=name, agency=agency, now=clock())
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as client:
        yield Web(client, tokens, Intake(store, settings, clock=clock), clock)


async def three_doors(web: Web) -> int:
    """A house fire: a 114 call, a Telegram user with GPS, the city app with GPS — one incident."""
    call = await web.intake.ingest(ReportIn(
        channel="call", channel_ref="1763798400.17", received_at=web.clock(), phone="0912345678",
        dialled_number="114", text=FIRE_CALL, raw={"call": {"state": "up", "answered_at": web.clock().isoformat()}}))
    web.clock.advance(seconds=30)
    chat = await web.intake.ingest(ReportIn(
        channel="telegram", channel_ref="update:9001", received_at=web.clock(), reporter_id="555",
        reporter_name="Lan", text="cháy nhà to lắm", location=Location(21.0332, 105.8529, 20.0, LocationSource.GPS)))
    web.clock.advance(seconds=30)
    app = await web.post("/api/v1/reports", {"text": "cháy nhà, khói đen", "phone": "0987654321",
                                             "lat": 21.0331, "lon": 105.8528, "accuracy": 15},
                         role="app", headers={"Idempotency-Key": "app-1"})
    assert call.incident_id == chat.incident_id == app["incident_id"], (call, chat, app)
    assert call.incident_id is not None
    return call.incident_id


async def test_eido_of_an_incident_reported_through_three_doors(web: Web) -> None:
    incident_id = await three_doors(web)
    doc = await web.eido(incident_id)
    assert doc["$id"] == f"urn:emergency:uid:incidentid:{incident_id}:{AGENCY}" and doc["eidoVersion"] == "1.0"
    assert doc["incidentComponent"]["incidentTypeInternalCode"] == "structure_fire"
    [call] = doc["callComponent"]
    assert call["callStateRegistryText"] == "callAnswered" and call["localCallType"] == "call 114"
    assert sorted(u for c in doc["callbackComponent"] for u in c["callBackInformationUri"]) == [
        "tel:+84912345678", "tel:+84987654321"]
    assert len(doc["personComponent"]) == 3
    notes = " ".join(n["notesActionComments"] for n in doc["notesComponent"])
    assert FIRE_CALL in notes and "cháy nhà to lắm" in notes and "cháy nhà, khói đen" in notes
    ids, refs = eido_refs(doc)
    assert refs <= ids
    gps = [parse_pidf_lo(loc["locationByValue"].encode()).location for loc in doc["locationComponent"]
           if loc["locationTypeDescriptionRegistryText"] == "Caller"]
    assert sorted((p.lat, p.lon, p.accuracy_m) for p in gps) == [(21.0331, 105.8528, 15.0), (21.0332, 105.8529, 20.0)]


async def test_cap_follows_the_incident_from_alert_to_update_to_cancel(web: Web) -> None:
    created = await web.post("/api/v1/reports", {"text": FIRE_CALL, "phone": "0912345678"}, role="app",
                             headers={"Idempotency-Key": "k1"})
    incident_id = created["incident_id"]
    alert = await web.cap(incident_id)
    assert alert.findtext(f"{NS}msgType") == "Alert"
    assert alert.findtext(f"{NS}identifier") == f"{AGENCY}:incident:{incident_id}:alert"
    assert alert.findtext(f"{NS}sent") == "2026-11-22T08:00:00+00:00"
    assert (alert.findtext(f"{NS}addresses") or "").split()[0] == f"fire.{AGENCY}"
    assert ET.tostring(await web.cap(incident_id)) == ET.tostring(alert)  # asked again: the same message

    web.clock.advance(minutes=2)
    await web.post(f"/api/v1/incidents/{incident_id}/notes", {"text": "Có người kẹt <tầng 3> & khói"})
    update = await web.cap(incident_id)
    assert update.findtext(f"{NS}msgType") == "Update"
    assert update.findtext(f"{NS}sent") == "2026-11-22T08:02:00+00:00"
    assert update.findtext(f"{NS}references") == ",".join(
        alert.findtext(f"{NS}{tag}") or "" for tag in ("sender", "identifier", "sent"))
    assert "Có người kẹt <tầng 3> & khói" in (update.findtext(f"{NS}info/{NS}description") or "")
    web.clock.advance(minutes=1)
    await web.post(f"/api/v1/incidents/{incident_id}/claim", {}, role="fire")
    claimed = await web.cap(incident_id, role="fire")
    assert claimed.findtext(f"{NS}identifier") != update.findtext(f"{NS}identifier")
    assert claimed.findtext(f"{NS}sent") == "2026-11-22T08:03:00+00:00"

    web.clock.advance(minutes=20)
    await web.post(f"/api/v1/incidents/{incident_id}/close", {"reason": "đã dập tắt"}, role="fire")
    cancel = await web.cap(incident_id, role="fire")
    assert cancel.findtext(f"{NS}msgType") == "Cancel"
    assert cancel.findtext(f"{NS}note") == "Closed (fire): đã dập tắt"
    assert cancel.findtext(f"{NS}references") == update.findtext(f"{NS}references")
    assert cancel.findtext(f"{NS}info/{NS}responseType") == "AllClear"
    assert (await web.eido(incident_id))["incidentComponent"]["incidentStatusInternalText"] == ["closed"]


async def test_a_merged_incident_cancels_and_its_target_replaces_it(web: Web) -> None:
    first = await web.post("/api/v1/reports", {"text": "cháy nhà", "lat": 21.03, "lon": 105.85},
                           role="app", headers={"Idempotency-Key": "m1"})
    second = await web.post("/api/v1/reports", {"text": "cháy nhà", "lat": 21.10, "lon": 105.70},
                            role="app", headers={"Idempotency-Key": "m2"})
    source, target = first["incident_id"], second["incident_id"]
    assert source != target
    web.clock.advance(minutes=1)
    await web.post(f"/api/v1/incidents/{source}/merge", {"into": target})
    cancel = await web.cap(source)
    assert cancel.findtext(f"{NS}msgType") == "Cancel"
    assert (cancel.findtext(f"{NS}incidents") or "").split() == [
        f"urn:emergency:uid:incidentid:{source}:{AGENCY}", f"urn:emergency:uid:incidentid:{target}:{AGENCY}"]
    replaced = (await web.eido(source))["mergeComponent"]
    replacing = (await web.eido(target))["mergeComponent"]
    assert [(m["incidentMergeDirectionCode"], m["incidentTrackingIdentifier"]) for m in replaced] == [
        ("REPLACED", f"urn:emergency:uid:incidentid:{target}:{AGENCY}")]
    assert [(m["incidentMergeDirectionCode"], m["incidentTrackingIdentifier"]) for m in replacing] == [
        ("REPLACING", f"urn:emergency:uid:incidentid:{source}:{AGENCY}")]
    target_cap = await web.cap(target)
    assert target_cap.findtext(f"{NS}msgType") == "Update"
    assert target_cap.findtext(f"{NS}info/{NS}parameter[{NS}valueName='hotline-intake:reportCount']/{NS}value") == "2"


async def test_dispatchers_export_their_agencys_incidents_and_those_they_are_told_of(web: Web) -> None:
    medical = await web.post("/api/v1/reports", {"text": "có người ngất xỉu ở ngõ 5 Hàng Bạc"}, role="app",
                             headers={"Idempotency-Key": "a1"})
    fire = await web.post("/api/v1/reports", {"text": FIRE_CALL}, role="app", headers={"Idempotency-Key": "a2"})
    for fmt in ("eido", "cap"):
        path = f"/api/v1/incidents/{medical['incident_id']}/{fmt}"
        assert (await web.get(path, role=None))[0] == 401
        assert (await web.get(path, role="app"))[0] == 403
        status, content_type, body = await web.get(path, role="police")
        assert (status, content_type) == (403, "application/json; charset=utf-8")
        assert json.loads(body)["error"] == "forbidden"
        for role in ("medical", "calltaker", "admin"):
            assert (await web.get(path, role=role))[0] == 200, role
        # A house fire notifies the police (they close the street): the police may read it too.
        assert (await web.get(f"/api/v1/incidents/{fire['incident_id']}/{fmt}", role="police"))[0] == 200


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [("/api/v1/incidents/abc/eido", 400, "id"), ("/api/v1/incidents/0/cap", 400, "id"),
     ("/api/v1/incidents/99999999999999999999/cap", 400, "id"), ("/api/v1/incidents/999/eido", 404, None),
     ("/api/v1/incidents/999/cap", 404, None), ("/api/v1/incidents/1/pdf", 404, None)],
)
async def test_bad_or_unknown_ids_are_clear_json_errors(web: Web, path: str, status: int, field: str | None) -> None:
    got, content_type, body = await web.get(path)
    assert (got, content_type) == (status, "application/json; charset=utf-8")
    answer = json.loads(body)
    assert answer["detail"] and answer.get("field") == field


async def test_a_bad_agency_id_is_a_503_naming_the_setting(store: Store, clock: Clock) -> None:
    token = await create_token(store, role="calltaker", name="ct", agency=None, now=clock())
    settings = Settings(extra={"agency_id": "not a domain"})
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as client:
        resp = await client.get("/api/v1/incidents/1/cap", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 503 and "INTAKE_AGENCY_ID" in (await resp.json())["detail"]
        assert (await client.get("/health")).status == 200  # still serving


async def test_the_openapi_document_describes_the_exports(web: Web) -> None:
    doc = json.loads((await web.get("/api/v1/openapi.json"))[2])
    assert EIDO_TYPE in doc["paths"]["/incidents/{id}/eido"]["get"]["responses"]["200"]["content"]
    assert CAP_TYPE in doc["paths"]["/incidents/{id}/cap"]["get"]["responses"]["200"]["content"]


# --- the command line --------------------------------------------------------------------------------------

def intake_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "intake.cli", *args], capture_output=True, env=env, timeout=120)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "INTAKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db", "INTAKE_AGENCY_ID": AGENCY}


def test_the_cli_prints_both_documents(cli_env: dict[str, str]) -> None:
    made = intake_cli(["report", "--text", FIRE_CALL, "--phone", "0912345678", "--json"], cli_env)
    assert made.returncode == 0, made.stderr
    incident_id = json.loads(made.stdout)["incident_id"]
    cap = intake_cli(["incidents", "export", str(incident_id), "--format", "cap"], cli_env)
    assert cap.returncode == 0, cap.stderr
    root = check_cap(cap.stdout)
    assert root.findtext(f"{NS}identifier") == f"{AGENCY}:incident:{incident_id}:alert"
    eido = intake_cli(["incidents", "export", str(incident_id), "--format", "eido"], cli_env)
    assert eido.returncode == 0, eido.stderr
    doc = json.loads(eido.stdout)
    assert doc["$id"] == f"urn:emergency:uid:incidentid:{incident_id}:{AGENCY}"
    assert FIRE_CALL in doc["notesComponent"][0]["notesActionComments"]


def test_the_cli_refuses_unknown_incidents_formats_and_agency_ids(cli_env: dict[str, str]) -> None:
    missing = intake_cli(["incidents", "export", "42", "--format", "eido"], cli_env)
    assert missing.returncode == 1 and b"incident 42 does not exist" in missing.stderr
    wrong = intake_cli(["incidents", "export", "42", "--format", "pdf"], cli_env)
    assert wrong.returncode == 2 and b"invalid choice" in wrong.stderr
    bad = intake_cli(["incidents", "export", "42", "--format", "cap"], {**cli_env, "INTAKE_AGENCY_ID": "a b"})
    assert bad.returncode == 2 and b"INTAKE_AGENCY_ID" in bad.stderr
