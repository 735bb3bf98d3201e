"""`intake bench console`: from Asterisk's Newchannel to the call's card on a call-taker's screen.

Method: the real server (create_app, its AMI bridge, a temporary SQLite file with synchronous=FULL)
runs against a local AMI server replaying the recorded Asterisk 22 captures (normal_call and
overlapping_calls, repeated with new Linkedids and callers, a call every `--gap` seconds, each sped up
`--speed` times). A headless Chromium, logged in as a call-taker, has /console open; a
MutationObserver in the page notes when each call's card (an element with its data-linkedid) enters
the page, as performance.timeOrigin + performance.now(). The replay notes time.time() just before it
writes each Newchannel to the socket. Both clocks are this machine's wall clock.

The path measured is the whole one: AMI parse → the call's report stored (one fsync) → AML fixes
looked up → screen-pop built (caller's history, facility, nearby incidents) → outbox row (a second
fsync) → the stream wakes → WebSocket → the page renders the card.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intake.telephony.ami_replay import AmiReplayServer, Entry, load_transcript

TEMPLATES = ("normal_call.txt", "overlapping_calls.txt")
SECRET = "bench-secret"

OBSERVER_JS = """() => {
  window.__popAt = {};
  const seen = (node) => {
    if (node.nodeType !== 1) return;
    const id = node.dataset && node.dataset.linkedid;
    if (id && !(id in window.__popAt)) window.__popAt[id] = performance.timeOrigin + performance.now();
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") seen(r.target);
      for (const n of r.addedNodes) seen(n);
    }
  }).observe(document.getElementById("queue"), {childList: true, subtree: true, attributes: true,
                                               attributeFilter: ["data-linkedid"]});
}"""


class GatedReplay(AmiReplayServer):
    """A replay that starts only when `gate` is set, and notes when each call's Newchannel left."""

    def __init__(self, transcript: str | Path | list[Entry], **kwargs: Any) -> None:
        super().__init__(transcript, **kwargs)
        self.gate = asyncio.Event()
        self.newchannel_sent: dict[str, float] = {}  # Linkedid → time.time() just before the write

    async def _replay(self) -> None:
        await self.gate.wait()
        await super()._replay()

    def _track(self, h: dict[str, str]) -> None:
        if h.get("event", "").lower() == "newchannel":
            self.newchannel_sent.setdefault(h.get("linkedid", ""), time.time())
        super()._track(h)


def shared_ami_dir() -> Path:
    """The recorded AMI captures: shared/fixtures/asterisk/ami beside the checkout (or INTAKE_SHARED_DIR)."""
    import os

    here = Path(__file__).resolve()
    for c in (os.environ.get("INTAKE_SHARED_DIR"), here.parents[3] / "shared", "/work/shared"):
        if c and (Path(c) / "fixtures" / "asterisk" / "ami").is_dir():
            return Path(c) / "fixtures" / "asterisk" / "ami"
    raise SystemExit("bench console: the AMI captures (shared/fixtures/asterisk/ami) were not found; "
                     "set INTAKE_SHARED_DIR")


_ID_LINE = re.compile(rb"^(Uniqueid|Linkedid|CallerIDNum|Channel): ([^\r\n]*)", re.MULTILINE)


def many_calls(ami_dir: Path, calls: int, gap: float, speed: float) -> list[Entry]:
    """`calls` calls from the captures, each with its own Linkedid, Uniqueids, channel and caller number."""
    templates = []
    for name in TEMPLATES:
        # Events only: the replay answers the bench client's own actions (login, pings) itself.
        entries = [e for e in load_transcript(ami_dir / name) if e.direction == "recv" and "event" in e.headers]
        linkedids = list(dict.fromkeys(e.headers["linkedid"] for e in entries if e.headers.get("linkedid")))
        templates.append((entries, linkedids))
    out: list[Entry] = []
    t0 = time.time()
    made = 0
    rep = 0
    while made < calls:
        entries, linkedids = templates[rep % len(templates)]
        first = entries[0].t
        start = t0 + made * gap
        n_calls = min(len(linkedids), calls - made)
        keep = set(linkedids[:n_calls])

        def rename(match: re.Match[bytes], rep: int = rep) -> bytes:
            name, value = match.group(1), match.group(2)
            if name == b"CallerIDNum" and value.isdigit():
                return b"CallerIDNum: 09" + f"{rep:04d}".encode() + value[-4:]
            if name == b"Channel" and b"/" in value:
                return name + b": " + value + f"-r{rep}".encode()
            if name in (b"Uniqueid", b"Linkedid") and value:
                return name + b": r" + str(rep).encode() + b"-" + value
            return match.group(0)

        for e in entries:
            if e.headers.get("linkedid") not in keep:
                continue
            out.append(Entry("recv", start + (e.t - first) / speed, _ID_LINE.sub(rename, e.data)))
        made += n_calls
        rep += 1
    out.sort(key=lambda e: e.t)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(ordered[-1], 1),
            "min_ms": round(ordered[0], 1)}


async def measure(calls: int, *, chromium: str, gap: float = 0.25, speed: float = 10.0,
                  log: Any = print) -> dict[str, Any]:
    from aiohttp import web
    from playwright.async_api import async_playwright

    from intake.config import Settings
    from intake.store import open_store
    from intake.web import auth
    from intake.web.app import BRIDGE, create_app

    entries = many_calls(shared_ami_dir(), calls, gap, speed)
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        store = await open_store(url)
        await auth.create_user(store, name="bench-calltaker", role="calltaker", agency=None, password=password,
                               now=datetime.now(UTC))
        replay = GatedReplay(entries, speed=1.0, secret=SECRET)
        async with replay:
            settings = Settings(database_url=url, ami_port=replay.port, ami_secret=SECRET, log_level="WARNING")
            app = create_app(settings, store=store)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                await asyncio.wait_for(app[BRIDGE].connected.wait(), 20)
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=chromium,
                                                       args=["--headless", "--no-sandbox", "--disable-gpu"])
                    page = await browser.new_page(viewport={"width": 1400, "height": 900})
                    await page.goto(f"http://127.0.0.1:{port}/login?next=/console")
                    await page.fill("#name", "bench-calltaker")
                    await page.fill("#password", password)
                    await page.click("button[type=submit]")
                    await page.wait_for_selector("body[data-ready=true][data-stream=live]", timeout=20_000)
                    await page.evaluate(OBSERVER_JS)
                    log(f"bench console: replaying {calls} calls, one every {gap:.2f} s, each {speed:g}x faster ...")
                    replay.gate.set()
                    await asyncio.wait_for(replay.finished.wait(), 60 + calls * gap)
                    shown: dict[str, float] = {}
                    for _ in range(200):
                        shown = await page.evaluate("window.__popAt")
                        if len(shown) >= len(replay.newchannel_sent):
                            break
                        await asyncio.sleep(0.05)
                    await browser.close()
                stored = await _ringing_stored(store)
            finally:
                await runner.cleanup()
                await store.close()
    sent = replay.newchannel_sent
    missing = sorted(set(sent) - set(shown))
    latencies = [shown[k] - sent[k] * 1000 for k in sent if k in shown]
    if not latencies:
        raise SystemExit("bench console: no card reached the page")
    # Where the time goes: until the screen-pop is stored (server), and from there to the page (push + render).
    server = [stored[k] - sent[k] * 1000 for k in sent if k in stored]
    push = [shown[k] - stored[k] for k in shown if k in stored]
    return {"calls": len(latencies), "missing": missing, **percentiles(latencies),
            "server": percentiles(server) if server else None, "push": percentiles(push) if push else None,
            "gap_s": gap, "speed": speed, "database": "sqlite (synchronous=FULL)"}


async def _ringing_stored(store: Any) -> dict[str, float]:
    """When each call's screen-pop (call.ringing) was stored, in ms since the epoch."""
    out: dict[str, float] = {}
    async with store.read() as repo:
        cursor = 0
        while rows := await repo.outbox_after(cursor, 1000):
            for row in rows:
                if row["kind"] == "call.ringing":
                    out[row["payload"]["call"]["linkedid"]] = row["at"].timestamp() * 1000
            cursor = rows[-1]["id"]
    return out


def main(args: argparse.Namespace) -> int:
    if not Path(args.chromium).exists():
        print(f"bench console: no Chromium at {args.chromium} (apt-get install chromium, or --chromium PATH)",
              file=sys.stderr)
        return 2
    if args.calls < 1 or args.gap <= 0 or args.speed <= 0:
        print("bench console: --calls must be at least 1, --gap and --speed above 0", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = asyncio.run(measure(args.calls, chromium=args.chromium, gap=args.gap, speed=args.speed, log=log))
    if args.json:
        print(json.dumps(result))
        return 0
    print("screen-pop latency: AMI Newchannel (replayed) → the call's card in the page (headless Chromium)")
    print(f"{'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{result['calls']:>6} {result['p50_ms']:>8.1f} {result['p95_ms']:>8.1f} {result['p99_ms']:>8.1f} "
          f"{result['max_ms']:>8.1f}   AMI Newchannel → card in the page")
    parts = (("server", "AMI Newchannel → screen-pop stored"), ("push", "screen-pop stored → card in the page"))
    for part, what in parts:
        if result[part]:
            r = result[part]
            print(f"{'':>6} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}   {what}")
    if result["missing"]:
        print(f"missing cards: {', '.join(result['missing'])}")
    return 0
