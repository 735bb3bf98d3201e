"""`intake bench ingest`: reports/s and latency of the one road as open incidents grow.

Method: for each backend, open incidents are bulk-loaded up to each level
(1,000 → 10,000 → 100,000 by default), then `--reports` synthetic reports are
ingested through the real `Intake.ingest` (normalise, classify, locate, match,
store, outbox) with `--concurrency` reports in flight. Background incidents are
spread over Vietnam's area, as in a national deployment, so the density a report
meets stays realistic; a share of the reports (`--duplicate-rate`) are new
reports of an event reported a moment earlier, and must attach to it. Half of
each run's reports fall in one city (a different city each run, see CITIES).
The channel mix is app 40%, call 30%, telegram 15%, zalo 10%, device 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from intake.config import Settings
from intake.core import geo
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.store import Store, open_store

VIETNAM = (8.6, 23.3, 102.2, 109.4)  # lat min/max, lon min/max
# Each measured run sends half its reports to one city, a different one each run, so every run meets
# the same local density and only the national number of open incidents changes between levels.
CITIES = [
    (20.95, 21.10, 105.75, 105.90),  # Hà Nội
    (10.70, 10.85, 106.60, 106.75),  # TP Hồ Chí Minh
    (16.00, 16.10, 108.15, 108.25),  # Đà Nẵng
    (20.80, 20.90, 106.60, 106.75),  # Hải Phòng
    (10.00, 10.08, 105.72, 105.80),  # Cần Thơ
    (16.43, 16.50, 107.55, 107.62),  # Huế
    (12.20, 12.28, 109.15, 109.22),  # Nha Trang
    (18.65, 18.70, 105.65, 105.72),  # Vinh
]
CHANNELS = [("app", 0.40), ("call", 0.30), ("telegram", 0.15), ("zalo", 0.10), ("device", 0.05)]
TEXTS = [
    "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm",
    "chay lon o cho, khoi den mu mit",
    "Có người ngất xỉu giữa đường, cần xe cấp cứu gấp",
    "tai nan giao thong, 2 xe may va cham, co nguoi bi thuong",
    "Có cướp giật túi xách ở ngõ 45 Hào Nam, Đống Đa",
    "there is a fire in the building, people trapped on the 3rd floor",
    "my father has chest pain and cannot breathe",
    "đánh nhau to ở quán karaoke, có dao",
    "rò rỉ khí gas trong bếp, mùi rất nặng",
    "em bé bị đuối nước ở hồ",
]


@dataclass
class Level:
    backend: str
    open_incidents: int
    in_flight: int
    reports: int
    seconds: float
    latencies_ms: list[float]
    attached: int

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)

        return {
            "backend": self.backend,
            "open_incidents": self.open_incidents,
            "in_flight": self.in_flight,
            "reports": self.reports,
            "reports_per_s": round(self.reports / self.seconds, 1),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1], 2),
            "mean_ms": round(statistics.fmean(lat), 2),
            "attached_share": round(self.attached / self.reports, 3),
        }


def _point(rng: random.Random, box: tuple[float, float, float, float]) -> tuple[float, float]:
    return rng.uniform(box[0], box[1]), rng.uniform(box[2], box[3])


def _channel(rng: random.Random) -> str:
    x = rng.random()
    for name, share in CHANNELS:
        if x < share:
            return name
        x -= share
    return CHANNELS[-1][0]


async def preload(store: Store, count: int, start_id: int, now: datetime, rng: random.Random) -> None:
    rows = []
    for i in range(count):
        lat, lon = _point(rng, VIETNAM)
        at = now - timedelta(minutes=rng.uniform(0, 300))
        rows.append({
            "category": rng.choice(["fire", "police", "medical"]),
            "status": "open", "priority": 2, "summary": "background incident",
            "lat": lat, "lon": lon, "accuracy_m": 50.0, "location_source": "gps",
            "cell": geo.cell(lat, lon), "opened_at": at, "updated_at": at, "last_report_at": at,
            "report_count": 1, "needs_review": False, "kinds": [], "also_notify": [],
            "reporter_keys": [f"+8491{start_id + i:07d}"], "text_tokens": ["chay", "nha"],
            "version": 1,
        })
        if len(rows) == 5000:
            async with store.transaction() as repo:
                await repo.bulk_insert_incidents(rows)
            rows = []
    async with store.transaction() as repo:
        await repo.bulk_insert_incidents(rows)
        await repo.analyze()  # as autovacuum would after such a load; without it the planner guesses


def synthetic_reports(n: int, rng: random.Random, now: datetime, tag: str, duplicate_rate: float,
                      city: tuple[float, float, float, float] = CITIES[0]) -> list[ReportIn]:
    out: list[ReportIn] = []
    recent: list[tuple[float, float, str]] = []
    for i in range(n):
        if recent and rng.random() < duplicate_rate:
            lat0, lon0, text = rng.choice(recent[-50:])
            lat, lon = lat0 + rng.gauss(0, 0.0008), lon0 + rng.gauss(0, 0.0008)
        else:
            lat, lon = _point(rng, VIETNAM if rng.random() < 0.5 else city)
            text = rng.choice(TEXTS)
            recent.append((lat, lon, text))
        channel = _channel(rng)
        loc = None if channel == "call" and rng.random() < 0.5 else Location(
            lat, lon, rng.choice([8.0, 20.0, 50.0, 150.0]), LocationSource.GPS, observed_at=now)
        out.append(ReportIn(
            channel=channel, channel_ref=f"{tag}-{i}", received_at=now + timedelta(milliseconds=i),
            text="" if channel == "device" else text, phone=f"09{rng.randrange(10**8):08d}",
            location=loc, dialled_number="112" if channel == "call" else None,
            device_id=f"panel-{i}" if channel == "device" else None,
            device_event_code="CID:1110" if channel == "device" else None,
            raw={"i": i, "tag": tag},
        ))
    return out


async def measure(store: Store, backend: str, open_count: int, reports: list[ReportIn], concurrency: int,
                  settings: Settings) -> Level:
    now = reports[0].received_at
    intake = Intake(store, settings, clock=lambda: now)
    latencies: list[float] = []
    attached = 0
    queue: asyncio.Queue[ReportIn] = asyncio.Queue()
    for r in reports:
        queue.put_nowait(r)

    async def worker() -> None:
        nonlocal attached
        while True:
            try:
                r = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t = time.perf_counter()
            result = await intake.ingest(r)
            latencies.append((time.perf_counter() - t) * 1000)
            attached += result.outcome.value == "attached"

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    seconds = time.perf_counter() - t0
    return Level(backend, open_count, concurrency, len(reports), seconds, latencies, attached)


async def _pg_fresh(url: str) -> str:
    """A database of its own for the benchmark, made anew (never the test database)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = u.database or "intake_bench"
    if not name.startswith("intake_bench"):
        raise SystemExit(f"bench: refusing to drop database {name!r}; name one that starts with intake_bench")
    admin = await asyncpg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                                  database="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return u.set(database=name).render_as_string(hide_password=False)


async def run_backend(backend: str, url: str, levels: list[int], n_reports: int, concurrency: list[int],
                      duplicate_rate: float, settings: Settings, log: Any) -> list[Level]:
    store = await open_store(url, sqlite_synchronous=settings.sqlite_synchronous)
    rng = random.Random(42)
    now = datetime.now(UTC).replace(microsecond=0)
    results: list[Level] = []
    loaded = 0
    try:
        # Warm up imports, caches and connections, outside the measurement.
        await measure(store, backend, 0, synthetic_reports(50, rng, now, "warm", duplicate_rate), max(concurrency),
                      settings)
        run = 0
        for level in levels:
            log(f"{backend}: loading open incidents to {level:,} ...")
            await preload(store, level - loaded, loaded, now, rng)
            loaded = level
            for in_flight in concurrency:
                city = CITIES[run % len(CITIES)]
                run += 1
                reports = synthetic_reports(n_reports, rng, now, f"L{level}c{in_flight}", duplicate_rate, city)
                log(f"{backend}: ingesting {n_reports:,} reports with {in_flight} in flight ...")
                results.append(await measure(store, backend, level, reports, in_flight, settings))
                log(f"{backend}: {json.dumps(results[-1].as_dict())}")
    finally:
        await store.close()
    return results


def main(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    levels = [int(x) for x in args.open.split(",") if x.strip()]
    concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[Level] = []

    async def go() -> None:
        for backend in backends:
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
                    results.extend(await run_backend(backend, url, levels, args.reports, concurrency,
                                                     args.duplicate_rate, settings, log))
            else:
                url = await _pg_fresh(args.postgres_url)
                results.extend(await run_backend(backend, url, levels, args.reports, concurrency,
                                                 args.duplicate_rate, settings, log))

    asyncio.run(go())
    rows = [r.as_dict() for r in results]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'backend':<9} {'open':>8} {'in flight':>9} {'reports/s':>10} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'attached':>9}")
    for r in rows:
        print(f"{r['backend']:<9} {r['open_incidents']:>8,} {r['in_flight']:>9} {r['reports_per_s']:>10,.0f} "
              f"{r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
              f"{r['attached_share']:>9.0%}")
    print(f"(sqlite synchronous={settings.sqlite_synchronous}, {args.reports} reports a row, "
          f"duplicate rate {args.duplicate_rate:.0%})")
    return 0
