"""What `intake transcribe` and `intake bench-asr` run: file transcription and a live-calls benchmark.

`bench_asr_main` plays N calls from one WAV in real time (20 ms chunks) through a `RecognizerPool`, then
through a naive baseline (one recognizer per call fed on the event loop), and reports how many calls keep
real time, the lag of their transcripts, and CPU and memory per call (from /proc).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from intake.core.classify import classify
from intake.telephony.asr import (
    ModelNotFound,
    ModelRegistry,
    RecognizerPool,
    Transcript,
    load_model,
    read_wav,
    transcribe_file,
)

__all__ = ["BENCH_FIXTURE", "REALTIME_END_LAG_S", "REALTIME_MAX_LAG_S", "bench_asr_main", "transcribe_main"]

#: Speech (espeak-ng, Korean voice, 16 kHz) shipped for benchmarks on machines without espeak-ng.
BENCH_FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "audio" / "ko_speech_16k.wav"
#: A call keeps real time when its recognizer has caught up at hang-up (the final result comes within
#: REALTIME_END_LAG_S of the end of the audio; VOSK_BENCHMARK.md's "end lag", plus FinalResult's own cost) and no
#: transcript of it lagged the audio by more than REALTIME_MAX_LAG_S (bounded spikes, not a growing backlog).
REALTIME_END_LAG_S = 1.0
REALTIME_MAX_LAG_S = 3.0
CHUNK_S = 0.02
BENCH_SENTENCES = [
    "불이 났어요. 빨리 도와주세요. 우리 집에 불이 났어요.",
    "안녕하세요. 경찰서에 전화했습니다. 교통사고가 났어요.",
    "하나, 둘, 셋, 넷, 다섯. 경찰. 소방서. 병원.",
]


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------------------ transcribe


def transcribe_main(path: str, lang: str | None, as_json: bool) -> int:
    """Transcribe a WAV file (progress bar on stderr), then classify the transcript."""
    from tqdm import tqdm

    if not os.path.isfile(path):
        return _err(f"no such file: {path}")
    registry = ModelRegistry()
    try:
        lang = lang or registry.default_language
        model_dir = registry.model_dir(lang)
    except ModelNotFound as exc:
        return _err(str(exc))
    with wave.open(path, "rb") as r:
        total = r.getnframes() / r.getframerate()
    with tqdm(total=round(total, 2), unit="s", desc="transcribing", file=sys.stderr, leave=False,
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]") as bar:

        def progress(done: float, _total: float) -> None:
            bar.update(round(done, 2) - bar.n)

        try:
            result = transcribe_file(path, model_dir, on_progress=progress)
        except (ValueError, wave.Error) as exc:
            return _err(str(exc))
    c = classify(result.transcript)
    evidence = [
        {"term": e.term, "category": str(e.category), "weight": e.weight, "source": e.source, "negated": e.negated,
         "kind": e.kind}
        for e in c.evidence
    ]
    if as_json:
        print(json.dumps({
            "transcript": result.transcript,
            "category": str(c.category),
            "confidence": round(c.confidence, 3),
            "needs_review": c.needs_review,
            "evidence": evidence,
            "duration_s": round(result.duration_s, 3),
            "language": lang,
            "model": model_dir,
            "words": [asdict(w) for w in result.words],
        }, ensure_ascii=False))
        return 0
    print(result.transcript or "(no speech recognised)")
    review = " — needs review" if c.needs_review else ""
    print(f"category: {c.category} (confidence {c.confidence:.2f}{review})")
    for e in c.evidence:
        neg = " (negated)" if e.negated else ""
        print(f"  evidence: {e.term!r} → {e.category} weight {e.weight:g} [{e.source}]{neg}")
    if not c.evidence:
        print("  evidence: none")
    print(f"duration: {result.duration_s:.2f} s", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- /proc


def _proc_mem_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) summed over pids, in MB."""
    rss = pss = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return rss, pss


def _proc_cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


# --------------------------------------------------------------------------------------------- bench


def _make_bench_audio(out_dir: str) -> str:
    """About 14 s of Korean speech from espeak-ng, 16 kHz mono s16 (sox)."""
    parts = []
    for i, sentence in enumerate(BENCH_SENTENCES):
        raw = os.path.join(out_dir, f"s{i}.wav")
        subprocess.run(["espeak-ng", "-v", "ko", "-w", raw, sentence], check=True, capture_output=True)
        parts.append(raw)
    out = os.path.join(out_dir, "bench_ko_16k.wav")
    subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", "-b", "16", out, "pad", "0", "0.5"], check=True)
    return out


def _pcts(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)], s[-1]


async def _paced_calls(
    calls: int,
    pcm: bytes,
    rate: int,
    run_call: Callable[[int, float, Callable[[Transcript], None]], Awaitable[float]],
) -> dict[str, Any]:
    """Start `calls` calls 0.25 s apart; each is fed in real time by `run_call(i, t0, on_result)`."""
    lags: list[list[float]] = [[] for _ in range(calls)]
    partial_lags: list[float] = []
    final_lags: list[float] = []
    close_lags = [0.0] * calls
    stagger = 0.25

    async def one(i: int) -> None:
        await asyncio.sleep(i * stagger)
        t0 = time.time()

        def on_result(r: Transcript) -> None:
            lag = max(0.0, r.emitted_at - (t0 + r.audio_end_s))
            lags[i].append(lag)
            (final_lags if r.final else partial_lags).append(lag)

        close_lags[i] = await run_call(i, t0, on_result)

    async with asyncio.TaskGroup() as tg:
        for i in range(calls):
            tg.create_task(one(i))
    all_lags = [x for per in lags for x in per]
    p95, mx = _pcts(all_lags)
    keeps = sum(1 for i in range(calls) if max(lags[i], default=0.0) <= REALTIME_MAX_LAG_S
                and close_lags[i] <= REALTIME_END_LAG_S)
    p95_partial, max_partial = _pcts(partial_lags)
    p95_final, max_final = _pcts(final_lags)
    return {"live": keeps, "p95": round(p95, 3), "max": round(mx, 3),
            "p95_partial": round(p95_partial, 3), "max_partial": round(max_partial, 3),
            "p95_final": round(p95_final, 3), "max_final": round(max_final, 3),
            "max_close_lag": round(max(close_lags, default=0.0), 3), "results": len(all_lags)}


async def _feed_paced(t0: float, pcm: bytes, rate: int, feed: Callable[[bytes], Awaitable[None]]) -> None:
    step = int(rate * CHUNK_S) * 2
    for k, i in enumerate(range(0, len(pcm), step)):
        delay = t0 + (k + 1) * CHUNK_S - time.time()  # chunk k exists once its 20 ms have been spoken
        if delay > 0:
            await asyncio.sleep(delay)
        await feed(pcm[i : i + step])


async def _bench_pool(model_dir: str, pcm: bytes, rate: int, calls: int, workers: int, rounds: int = 2,
                      warmup: tuple[bytes, int] | None = None) -> dict[str, Any]:
    """`rounds` rounds of `calls` paced calls through one pool: the first meets fresh recognizers (a server
    just started), the later ones reuse them (a server that has taken calls; see asr._Warm)."""
    dur = len(pcm) / 2 / rate
    per_worker = max(1, math.ceil(calls / workers))
    async with RecognizerPool(model_dir, workers=workers, streams_per_worker=per_worker, warmup=warmup,
                              warmup_rates=(rate,)) as pool:
        await pool.ready()  # the warm-up (if any) is part of the start, not of the first calls
        pids = [os.getpid(), *pool.worker_pids]
        rss0, pss0 = _proc_mem_mb(pids)
        peak = [rss0, pss0]
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                rss, pss = await asyncio.to_thread(_proc_mem_mb, pids)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                await asyncio.sleep(0.5)

        async def run_call(i: int, t0: float, on_result: Callable[[Transcript], None]) -> float:
            stream = await pool.open(f"bench-{i}", rate)
            if stream.deferred:
                raise RuntimeError("bench call was deferred: capacity too small")

            async def consume() -> None:
                async for r in stream.results():
                    on_result(r)

            async with asyncio.TaskGroup() as tg:
                tg.create_task(consume())
                await _feed_paced(t0, pcm, rate, stream.feed)
                await stream.close()
            return time.time() - (t0 + dur)

        results: list[dict[str, Any]] = []
        async with asyncio.TaskGroup() as tg:
            sampler = tg.create_task(sample())
            for _ in range(rounds):
                cpu0 = _proc_cpu_s(pids)
                out = await _paced_calls(calls, pcm, rate, run_call)
                out["cpu_s_per_audio_s_per_call"] = round((_proc_cpu_s(pids) - cpu0) / (dur * calls), 3)
                results.append(out)
            done.set()
            await sampler
        skipped = 1 - pool.fed_s / pool.received_s if pool.received_s else 0.0
    warm = dict(results[-1])
    warm.update(cold=results[0], rss_per_call_mb=round((peak[0] - rss0) / calls, 1),
                pss_per_call_mb=round((peak[1] - pss0) / calls, 1), silence_skipped=round(skipped, 3),
                workers=workers, base_pss_mb=round(pss0, 1))
    return warm


async def _bench_baseline(model_dir: str, pcm: bytes, rate: int, calls: int) -> dict[str, Any]:
    """The naive design: one recognizer per call, AcceptWaveform called on the event loop."""
    import vosk

    model = load_model(model_dir)
    dur = len(pcm) / 2 / rate
    pid = [os.getpid()]
    rss0, pss0 = _proc_mem_mb(pid)
    cpu0 = time.process_time()

    async def run_call(i: int, t0: float, on_result: Callable[[Transcript], None]) -> float:
        rec = vosk.KaldiRecognizer(model, rate)
        rec.SetWords(True)
        fed_s = 0.0
        last_partial = ""

        async def feed(chunk: bytes) -> None:
            nonlocal fed_s, last_partial
            fed_s += len(chunk) / 2 / rate
            end = fed_s
            if rec.AcceptWaveform(chunk):  # blocks the loop: that is the point of the baseline
                text = json.loads(rec.Result()).get("text", "")
                if text:
                    on_result(Transcript(f"base-{i}", text, True, [], end, time.time()))
            else:
                partial = json.loads(rec.PartialResult()).get("partial", "")
                if partial != last_partial:
                    last_partial = partial
                    on_result(Transcript(f"base-{i}", partial, False, [], end, time.time()))
            await asyncio.sleep(0)

        await _feed_paced(t0, pcm, rate, feed)
        rec.FinalResult()
        return time.time() - (t0 + dur)

    out = await _paced_calls(calls, pcm, rate, run_call)
    rss1, pss1 = _proc_mem_mb(pid)
    out.update(rss_per_call_mb=round((rss1 - rss0) / calls, 1), pss_per_call_mb=round((pss1 - pss0) / calls, 1),
               cpu_s_per_audio_s_per_call=round((time.process_time() - cpu0) / (dur * calls), 3))
    return out


def bench_asr_main(calls: int = 4, audio: str | None = None, as_json: bool = False, warmup: str | None = None
                   ) -> int:
    """N concurrent real-time calls through the pool, then through the naive baseline."""
    if calls < 1:
        return _err("--calls must be at least 1")
    registry = ModelRegistry()
    try:
        lang = registry.default_language
        model_dir = registry.model_dir(lang)
    except ModelNotFound as exc:
        return _err(str(exc))
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        if audio is None:
            if shutil.which("espeak-ng") and shutil.which("sox"):
                audio = _make_bench_audio(tmp)
                source = "espeak-ng (ko) via sox, generated"
            elif BENCH_FIXTURE.is_file():
                audio = str(BENCH_FIXTURE)
                source = "bundled espeak-ng Korean speech"
            else:
                return _err("espeak-ng and sox are not installed: pass --audio FILE.wav (mono s16), e.g. a file "
                            "from tests/fixtures/audio/")
        else:
            source = "given"
        try:
            pcm, rate = read_wav(audio)
        except (OSError, ValueError, wave.Error) as exc:
            return _err(str(exc))
        dur = len(pcm) / 2 / rate
        workers = os.cpu_count() or 1
        print(f"bench-asr: {calls} calls × {dur:.1f} s of {os.path.basename(audio)} at {rate} Hz, "
              f"{workers} workers; model {os.path.basename(os.path.dirname(model_dir))} ({lang})", file=sys.stderr)
        t = time.perf_counter()
        load_model(model_dir)
        load_s = time.perf_counter() - t
        try:
            warm = read_wav(warmup) if warmup else None
        except (OSError, ValueError, wave.Error) as exc:
            return _err(f"--warmup: {exc}")
        pool = asyncio.run(_bench_pool(model_dir, pcm, rate, calls, workers, warmup=warm))
        cold = pool["cold"]
        print(f"  pool, first calls (fresh recognizers): {cold['live']}/{calls} live, p95 lag {cold['p95']} s, "
              f"max {cold['max']} s", file=sys.stderr)
        print(f"  pool, later calls (reused recognizers): {pool['live']}/{calls} live, p95 lag {pool['p95']} s, "
              f"max {pool['max']} s", file=sys.stderr)
        base = asyncio.run(_bench_baseline(model_dir, pcm, rate, calls))
        print(f"  baseline: {base['live']}/{calls} live, p95 lag {base['p95']} s, max {base['max']} s",
              file=sys.stderr)
    report = {
        "calls": calls,
        "live_calls": pool["live"],
        "baseline_live_calls": base["live"],
        "p95_lag_s": pool["p95"],
        "max_lag_s": pool["max"],
        "p95_partial_lag_s": pool["p95_partial"],
        "p95_final_lag_s": pool["p95_final"],
        "max_close_lag_s": pool["max_close_lag"],
        # The same calls on a pool that has just started: every recognizer still builds its graph cache.
        "cold_live_calls": cold["live"],
        "cold_p95_lag_s": cold["p95"],
        "cold_max_lag_s": cold["max"],
        "cold_cpu_s_per_audio_s_per_call": cold["cpu_s_per_audio_s_per_call"],
        "warmup": warmup,  # the WAV the recognizers were warmed on before the first calls (None: not warmed)
        "rss_per_call_mb": pool["rss_per_call_mb"],
        "pss_per_call_mb": pool["pss_per_call_mb"],
        "cpu_s_per_audio_s_per_call": pool["cpu_s_per_audio_s_per_call"],
        "silence_skipped": pool["silence_skipped"],
        "workers": workers,
        "baseline_p95_lag_s": base["p95"],
        "baseline_max_lag_s": base["max"],
        "baseline_max_close_lag_s": base["max_close_lag"],
        "baseline_rss_per_call_mb": base["rss_per_call_mb"],
        "baseline_cpu_s_per_audio_s_per_call": base["cpu_s_per_audio_s_per_call"],
        "realtime_max_lag_s": REALTIME_MAX_LAG_S,
        "realtime_end_lag_s": REALTIME_END_LAG_S,
        "audio": {"path": audio if source != "espeak-ng (ko) via sox, generated" else None, "source": source,
                  "duration_s": round(dur, 2), "sample_rate": rate},
        "model": {"language": lang, "dir": model_dir, "load_s": round(load_s, 2)},
    }
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"live calls kept in real time: {pool['live']}/{calls} "
              f"(first calls after start: {cold['live']}/{calls}; baseline on the event loop: {base['live']}/{calls})")
        print(f"transcript lag: p95 {pool['p95']} s (partials {pool['p95_partial']} s), max {pool['max']} s "
              f"(first calls p95 {cold['p95']} s; baseline p95 {base['p95']} s, max {base['max']} s)")
        print(f"per call: CPU {pool['cpu_s_per_audio_s_per_call']} s per audio-second, "
              f"RSS +{pool['rss_per_call_mb']} MB, "
              f"PSS +{pool['pss_per_call_mb']} MB (baseline RSS +{base['rss_per_call_mb']} MB)")
        print(f"model: {model_dir} (load {load_s:.2f} s); audio: {source}, {dur:.1f} s")
    return 0
