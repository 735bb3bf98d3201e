"""The CLI forms a newcomer (and our checks) use, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INTAKE = [sys.executable, "-m", "intake.cli"]
FIXTURES = Path(__file__).parent.parent / "fixtures"


def run(args: list[str], env: dict[str, str], stdin: str | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*INTAKE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "INTAKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}


def test_report_json_then_incidents_list(env: dict[str, str]) -> None:
    out = run(["report", "--text", "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm", "--phone", "0912345678",
               "--json"], env)
    result = json.loads(out.stdout)
    assert {"report_id", "incident_id", "outcome", "category"} <= set(result)
    assert result["category"] == "fire" and result["outcome"] == "created"
    listing = json.loads(run(["incidents", "list", "--json"], env).stdout)
    assert isinstance(listing, list) and len(listing) == 1
    incident = listing[0]
    assert {"id", "category", "status", "report_count", "lat", "lon"} <= set(incident)
    assert incident["id"] == result["incident_id"] and incident["category"] == "fire"
    assert incident["lat"] is not None and "Hoàn Kiếm" in incident["location_label"]


def test_report_with_coordinates(env: dict[str, str]) -> None:
    out = run(["report", "--text", "có người ngất", "--lat", "21.03", "--lon", "105.85", "--accuracy", "15",
               "--json"], env)
    result = json.loads(out.stdout)
    assert result["location"]["lat"] == 21.03 and result["location"]["accuracy_m"] == 15


def test_report_with_bad_coordinates_is_refused(env: dict[str, str]) -> None:
    proc = run(["report", "--text", "cháy", "--lat", "95", "--lon", "105"], env, check=False)
    assert proc.returncode == 2 and "lat" in proc.stderr
    assert json.loads(run(["incidents", "list", "--json"], env).stdout) == []


def test_classify_one_text(env: dict[str, str]) -> None:
    result = json.loads(run(["classify", "nhà bên cạnh đang cháy", "--json"], env).stdout)
    assert set(result) >= {"category", "confidence", "evidence"} and result["category"] == "fire"


def test_classify_reads_one_text_a_line(env: dict[str, str]) -> None:
    out = run(["classify"], env, stdin="chay nha\nco nguoi bi dau tim\ntrộm xe máy\n").stdout
    cats = [json.loads(line)["category"] for line in out.splitlines()]
    assert cats == ["fire", "medical", "police"]


def test_jsonl_backlog_keeps_input_order_and_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    lines = [
        {"text": "cháy nhà", "lat": 21.03, "lon": 105.85, "received_at": "2026-11-22T07:00:00+07:00"},
        {"text": "cháy lớn", "lat": 21.0301, "lon": 105.8501, "received_at": "2026-11-22T07:02:00+07:00",
         "phone": "0912345678"},
        {"text": "tai nạn xe máy", "lat": 20.9, "lon": 105.7, "received_at": "2026-11-22T07:05:00+07:00",
         "channel": "sms"},
        {"text": "x", "lat": 200, "lon": 1},
    ]
    f = tmp_path / "backlog.jsonl"
    f.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    proc = run(["report", "--jsonl", str(f)], env, check=False)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3, 4]
    assert [r.get("outcome") for r in results[:3]] == ["created", "attached", "created"]
    assert results[3]["error"] == "invalid" and proc.returncode == 1
    again = [json.loads(x) for x in run(["report", "--jsonl", "-"], env, stdin=f.read_text(), check=False)
             .stdout.splitlines()]
    assert [r.get("outcome") for r in again[:3]] == ["duplicate"] * 3
    assert len(json.loads(run(["incidents", "list", "--json"], env).stdout)) == 2


def test_tokens_create_prints_a_token(env: dict[str, str]) -> None:
    token = run(["tokens", "create", "--role", "calltaker"], env).stdout.strip()
    assert token.startswith("hi_") and len(token) > 30
    proc = run(["tokens", "create", "--role", "dispatcher"], env, check=False)
    assert proc.returncode == 2 and "agency" in proc.stderr


def test_facilities_import(env: dict[str, str]) -> None:
    out = run(["facilities", "import", str(FIXTURES / "facilities" / "hanoi_sample.csv"), "--quiet"], env).stdout
    assert "3 created" in out and "5 devices" in out and "1 located from their address" in out
    again = run(["facilities", "import", str(FIXTURES / "facilities" / "hanoi_sample.csv"), "--quiet"], env).stdout
    assert "0 created, 3 updated" in again


def test_facilities_import_refuses_a_bad_file_whole(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,address,lat,lon\nA,Tower,1 Main St,21.0,105.8\nB,Mall,2 Main St,abc,105.8\n")
    proc = run(["facilities", "import", str(bad), "--quiet"], env, check=False)
    assert proc.returncode == 1 and "line 3" in proc.stderr


def test_bench_ingest_prints_its_figures_as_json(env: dict[str, str]) -> None:
    out = run(["bench", "ingest", "--backend", "both", "--open", "100,300", "--reports", "60", "--concurrency",
               "1,8", "--json"], env).stdout
    rows = json.loads(out)
    assert [(r["backend"], r["open_incidents"], r["in_flight"]) for r in rows] == [
        (b, n, c) for b in ("sqlite", "postgres") for n in (100, 300) for c in (1, 8)]
    for r in rows:
        assert {"backend", "open_incidents", "reports_per_s", "p50_ms", "p99_ms"} <= set(r)
        assert r["reports"] == 60 and r["reports_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]


def test_transcribe_json(env: dict[str, str]) -> None:
    wav = FIXTURES / "audio" / "ko_fire_16k.wav"
    result = json.loads(run(["transcribe", str(wav), "--json"], env).stdout)
    assert {"transcript", "category", "confidence", "evidence", "duration_s"} <= set(result)
    assert abs(result["duration_s"] - 4.39) < 0.1
