"""Two intake processes share one PostgreSQL and ingest the same reports at once.

Matching is serialised per area (advisory locks on H3 cells) and retries are
deduplicated on (channel, channel_ref): whatever the interleaving, 20 events
reported 10 times each give exactly 20 incidents and 200 reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from intake.store.tables import reports
from tests.conftest import PG_URL, make_pg_store

EVENTS = 20
PER_EVENT = 10


def backlog() -> list[dict[str, object]]:
    lines = []
    for e in range(EVENTS):
        lat, lon = 20.2 + (e // 5) * 0.2, 105.2 + (e % 5) * 0.2  # events ~20 km apart
        for i in range(PER_EVENT):
            lines.append({
                "channel_ref": f"ev{e}-r{i}",
                "text": "cháy nhà, khói rất to",
                "phone": f"09{e:02d}{i:06d}",
                "lat": lat + (i % 3) * 0.0004,
                "lon": lon + (i % 4) * 0.0004,
                "accuracy": 20,
                "received_at": f"2026-11-22T08:{i:02d}:00+07:00",
            })
    return lines


@pytest.mark.postgres
async def test_two_processes_same_reports_no_duplicates(tmp_path: Path) -> None:
    await _reset()
    lines = backlog()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(x) + "\n" for x in lines))
    shuffled = lines[:]
    random.Random(7).shuffle(shuffled)
    b.write_text("".join(json.dumps(x) + "\n" for x in shuffled))
    env = {**os.environ, "INTAKE_DATABASE_URL": PG_URL}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", "intake.cli", "report", "--jsonl", str(f),
                                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for f in (a, b)]
    outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 300)
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    results = [json.loads(line) for out, _ in outs for line in out.decode().splitlines()]
    assert len(results) == 2 * EVENTS * PER_EVENT
    assert all("error" not in r for r in results)
    # Each report was stored once: every line is "new" in exactly one process and a duplicate in the other.
    by_ref: dict[int, list[str]] = {}
    for r in results:
        by_ref.setdefault(r["report_id"], []).append(r["outcome"])
    assert len(by_ref) == EVENTS * PER_EVENT
    assert all(sorted(o)[1] == "duplicate" and o.count("duplicate") == 1 for o in by_ref.values())
    counts = await _counts()
    assert counts == {"reports": EVENTS * PER_EVENT, "active": EVENTS, "sizes": [PER_EVENT] * EVENTS}


async def _reset() -> None:
    store = await make_pg_store()
    await store.close()


async def _counts() -> dict[str, object]:
    from sqlalchemy import func, select

    store = await make_store_no_reset()
    try:
        async with store.read() as repo:
            n = (await repo.conn.execute(select(func.count()).select_from(reports))).scalar_one()
            active = await repo.list_incidents(statuses=["open", "acknowledged"], limit=1000)
            merged = await repo.count_incidents(["merged"])
        assert merged == 0
        return {"reports": n, "active": len(active), "sizes": sorted(r["report_count"] for r in active)}
    finally:
        await store.close()


async def make_store_no_reset():  # type: ignore[no-untyped-def]
    from intake.store import Store

    return Store(PG_URL)
