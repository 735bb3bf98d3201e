"""`intake bench calls`: calls through a real Asterisk at R a second, measured as a call-taker sees them.

For each rate, a fresh bed (Asterisk from `dialplans/`, `intake serve`, one call-taker's seat that answers
after a second) takes `calls` calls from sipp phones, each playing its own stretch of the test speech. What
it prints:

- screen-pop latency: from Asterisk's own Timestamp on the call's Newchannel to the `call.ringing` event
  arriving on the stream WebSocket (what the console receives), percentiles;
- transcripts: paired (the call's audio reached its own report), lost (a call whose audio never paired, or
  words kept on a report of their own), live (words on the stream before the call ended) and late (words only
  after the hang-up: the recognizer pool was full and the call was recorded and transcribed afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from intake.testbed.bed import Bed


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _watch(url: str, token: str, pops: dict[int, float], ready: asyncio.Event, stop: asyncio.Event) -> None:
    """Receive time of every call.ringing on the stream, by report id."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
            http.ws_connect(f"{url}/api/v1/stream") as ws:
        ready.set()
        while not stop.is_set():
            try:
                msg = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data.get("kind") == "call.ringing" and data.get("report_id") is not None:
                pops.setdefault(int(data["report_id"]), time.time())


async def run_rate(root: Path, *, rate: float, calls: int, talk_s: float) -> dict[str, Any]:
    from intake.web.auth import create_token

    async with Bed(root) as bed:
        token = await create_token(await bed.store(), role="calltaker", name="bench", agency=None,
                                   now=datetime.now(UTC))
        await bed.seat(answer_after_s=1.0)
        pops: dict[int, float] = {}
        ready, stop = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(_watch(bed.intake.url, token, pops, ready, stop))
        await asyncio.wait_for(ready.wait(), 10)
        numbers = [f"0913{i:06d}" for i in range(calls)]
        speech = [bed.speech((i * 1.3) % 10, min(talk_s - 1, 6.0)) for i in range(calls)]
        phones = await bed.calls_at_rate(numbers, rate, talk_s=talk_s, speech=list(speech))
        for phone in phones:
            await phone.wait(talk_s + 120)
        rows = [await bed.ended_call(n, within_s=120) for n in numbers]
        async def transcribed() -> bool:
            return all([(await bed.report(r["id"]) or {}).get("text") for r in rows])

        with contextlib.suppress(AssertionError):  # deferred transcription finishes after the calls, or not
            await bed.until(transcribed, 90, "every transcript")
        stop.set()
        await watcher
        latencies, live, late, lost = [], 0, 0, 0
        for r in rows:
            row = await bed.report(r["id"]) or r
            call = row["raw"]["call"]
            if call.get("asterisk_ts") and r["id"] in pops:
                latencies.append((pops[r["id"]] - float(call["asterisk_ts"])) * 1000)
            if not call.get("audio_connected") or not row.get("text"):
                lost += 1
                continue
            events = await bed.events(r["id"])
            ended = next((e["id"] for e in events if e["kind"] == "call.updated"
                          and e["payload"]["call"]["state"] == "hungup"), None)
            words = [e["id"] for e in events if e["kind"] == "call.transcript"]
            if words and ended is not None and words[0] < ended:
                live += 1
            else:
                late += 1
        orphans = [r for r in await bed.call_reports() if r["channel_ref"].startswith("audiosocket:")]
    return {
        "rate_per_s": rate, "calls": calls, "talk_s": talk_s,
        "screen_pop_ms": {"n": len(latencies), "p50": round(_pct(latencies, 0.5), 1),
                          "p95": round(_pct(latencies, 0.95), 1), "p99": round(_pct(latencies, 0.99), 1),
                          "max": round(max(latencies), 1) if latencies else None,
                          "mean": round(statistics.fmean(latencies), 1) if latencies else None},
        "transcripts": {"paired": calls - lost, "lost": lost + len(orphans), "live": live, "late": late},
    }


def main(rates: list[float], calls: int, talk_s: float, as_json: bool) -> int:
    results = []
    for rate in rates:
        with tempfile.TemporaryDirectory(prefix="intake-bench-calls-") as tmp:
            results.append(asyncio.run(run_rate(Path(tmp), rate=rate, calls=calls, talk_s=talk_s)))
    report = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print("intake bench calls: a real Asterisk 22 from dialplans/, sipp callers, one seat answering after 1 s")
    print(f"{'rate/s':>6} {'calls':>5}  screen-pop ms p50 / p95 / p99 / max    transcripts paired lost live late")
    for r in results:
        s, t = r["screen_pop_ms"], r["transcripts"]
        print(f"{r['rate_per_s']:>6g} {r['calls']:>5}  {s['p50']:>8} / {s['p95']} / {s['p99']} / {s['max']}"
              f"{'':>8}{t['paired']:>6} {t['lost']:>4} {t['live']:>4} {t['late']:>4}")
    return 0


__all__ = ["main", "run_rate"]
