"""Chat voice notes (Telegram voice, Zalo audio) turned into the report's words, after the report is stored.

A chat door stores the report and answers the reporter first (a webhook must be answered promptly, and a
report is acknowledged only once stored); then it hands the report's voice notes to `VoiceTranscriber`, a
worker the app runs in its lifecycle TaskGroup. For each note, one at a time:

1. fetch: the door says where the audio is (`ChatDoor.file_url`: Telegram's getFile, Zalo's CDN URL), and
   it is downloaded with a size limit (Telegram's bot download limit, 20 MB) and a timeout;
2. decode: the bundled static ffmpeg (imageio-ffmpeg) turns OGG/Opus, AAC/M4A or AMR into mono s16le WAV
   at the model's rate, in a subprocess with a timeout, at most `MAX_AUDIO_S` of it;
3. transcribe: `asr.transcribe_file` with the configured model (INTAKE_ASR_MODEL, else the registry's
   default language), in a thread;
4. store: `Intake.update_report` with the transcript added to the report's text, so the report is
   classified, located and matched again; the outcome goes to the report's raw["voice"][<note ref>]
   ({transcribed, transcript, duration_s, model, at} or {transcribed: false, reason, retry}); the
   attachment itself is left as parsed (update_report appends attachments, it does not edit them);
5. tell the reporter what was understood (a short follow-up in the chat), so they can correct it.

Nothing here can lose or fail a report: every failure is logged and recorded with its reason. A failure
that may pass (the network, the Bot API, no model installed) is marked `retry`; at start the worker picks
up the last hour's notes that have no outcome yet or a `retry` one, so a restart loses nothing.

Several nodes on one PostgreSQL each transcribe the notes their own webhooks took; two nodes starting at
once may both pick up the same pending note (its transcript is then added twice).
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from intake.channels.chat import TEXTS, ChatDoor, ChatEvent, Reply, Taken, is_pending_voice, reply_language
from intake.config import Settings
from intake.pipeline import IngestResult, Intake

log = logging.getLogger(__name__)

#: Telegram bots may download files up to 20 MB; a minute of Opus voice is about 100 kB.
MAX_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 60.0
DECODE_TIMEOUT_S = 120.0
#: Audio past this is not transcribed (a few minutes of speech is a report; more is a pocket recording).
MAX_AUDIO_S = 300
#: Vosk models are trained on 16 kHz audio unless their conf/mfcc.conf says otherwise.
DEFAULT_RATE = 16000
#: At start, notes of reports updated this recently that have no outcome yet are picked up.
RESCAN = timedelta(hours=1)
RESCAN_LIMIT = 500
#: Notes waiting; past this a note is left for the next start's pick-up (logged).
QUEUE_SIZE = 1000
#: Transcript characters quoted back to the reporter.
FOLLOWUP_CHARS = 300
RAW_KEY = "voice"
ACTOR = "voice"


class AudioUnavailable(Exception):
    """A voice note that cannot be transcribed now; `retry`: it may work later (at the next start)."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True, slots=True)
class VoiceJob:
    report_id: int
    ref: str  # the note's key in raw["voice"] (see `voice_ref`)


def voice_ref(attachment: Mapping[str, Any]) -> str | None:
    """A stable key for a voice note: Telegram's file_unique_id, or the file's URL (Zalo)."""
    for key in ("file_unique_id", "telegram_file_id", "url"):
        value = attachment.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _outcomes(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("raw")
    found = raw.get(RAW_KEY) if isinstance(raw, dict) else None
    return dict(found) if isinstance(found, dict) else {}


def pending_notes(row: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(ref, attachment) of a report's voice notes that have no outcome yet, or one worth retrying."""
    done = _outcomes(row)
    out = []
    for a in row.get("attachments") or []:
        ref = voice_ref(a) if isinstance(a, dict) and is_pending_voice(a) else None
        if ref is None:
            continue
        outcome = done.get(ref)
        if outcome is None or (isinstance(outcome, dict) and outcome.get("retry") is True):
            out.append((ref, a))
    return out


# --- fetch, decode ---------------------------------------------------------------------------------

def _describe(exc: BaseException) -> str:
    """An error without its URL (a Telegram file URL holds the bot token)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


async def download(session: aiohttp.ClientSession, url: str, *, limit: int = MAX_BYTES) -> bytes:
    """The body at `url`, at most `limit` bytes; AudioUnavailable otherwise (the URL is never logged)."""
    buf = bytearray()
    try:
        async with session.get(url, allow_redirects=True) as resp:
            if resp.status != 200:
                raise AudioUnavailable(f"the audio download answered HTTP {resp.status}",
                                       retry=resp.status >= 500 or resp.status == 429)
            if resp.content_length is not None and resp.content_length > limit:
                raise AudioUnavailable(f"the audio is {resp.content_length} bytes, over the {limit}-byte limit",
                                       retry=False)
            async for chunk in resp.content.iter_chunked(64 * 1024):
                buf += chunk
                if len(buf) > limit:
                    raise AudioUnavailable(f"the audio is over the {limit}-byte limit", retry=False)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AudioUnavailable(f"the audio download failed: {_describe(exc)}", retry=True) from exc
    if not buf:
        raise AudioUnavailable("the audio download was empty", retry=False)
    return bytes(buf)


def model_rate(model_dir: str) -> int:
    """The sample rate a Vosk model was trained at (conf/mfcc.conf --sample-frequency), else 16 kHz."""
    try:
        conf = (Path(model_dir) / "conf" / "mfcc.conf").read_text()
    except OSError:
        return DEFAULT_RATE
    found = re.search(r"^--sample-frequency=(\d+)", conf, re.MULTILINE)
    return int(found.group(1)) if found else DEFAULT_RATE


def ffmpeg_exe() -> str:
    """The static ffmpeg that the imageio-ffmpeg wheel ships (RuntimeError when it has none)."""
    import imageio_ffmpeg  # type: ignore[import-untyped]

    return str(imageio_ffmpeg.get_ffmpeg_exe())


async def decode(ffmpeg: str, src: Path, dest: Path, *, rate: int = DEFAULT_RATE, max_audio_s: int = MAX_AUDIO_S,
                 timeout_s: float = DECODE_TIMEOUT_S) -> None:
    """Any audio ffmpeg reads (OGG/Opus, AAC, M4A, AMR, ...) → mono s16le WAV at `rate`, in a subprocess."""
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vn",
           "-t", str(max_audio_s), "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le", "-f", "wav", str(dest)]
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise AudioUnavailable(f"ffmpeg could not be started: {_describe(exc)}", retry=True) from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError as exc:
        raise AudioUnavailable(f"ffmpeg did not finish within {timeout_s:g} s", retry=False) from exc
    finally:
        if proc.returncode is None:  # timed out or cancelled: no ffmpeg is left behind
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        lines = [ln for ln in err.decode(errors="replace").replace(str(src), "audio").splitlines() if ln.strip()]
        detail = lines[-1][:200] if lines else f"ffmpeg exit status {proc.returncode}"
        raise AudioUnavailable(f"the audio could not be decoded: {detail}", retry=False)
    if not dest.is_file() or dest.stat().st_size <= 44:  # a WAV header and no samples
        raise AudioUnavailable("the audio holds no sound", retry=False)


# --- the worker ------------------------------------------------------------------------------------

def _model_name(model_dir: str) -> str:
    path = Path(model_dir)
    return path.parent.name if path.name == "model" else path.name  # a wheel's vosk_model_xx/model


class VoiceTranscriber:
    """Transcribes the chat doors' voice notes, one at a time, in `run` (owned by the app's TaskGroup)."""

    def __init__(self, intake: Intake, doors: Mapping[str, ChatDoor], *, model_dir: str | None,
                 ffmpeg: str | None, unavailable: str | None = None, max_bytes: int = MAX_BYTES,
                 fetch_timeout_s: float = FETCH_TIMEOUT_S, decode_timeout_s: float = DECODE_TIMEOUT_S,
                 rescan: timedelta = RESCAN) -> None:
        self.intake = intake
        self.doors = dict(doors)
        self.model_dir = model_dir
        self.ffmpeg = ffmpeg
        self.unavailable = unavailable if unavailable else (
            None if model_dir and ffmpeg else "no speech model or ffmpeg is configured")
        self.max_bytes = max_bytes
        self.fetch_timeout_s = fetch_timeout_s
        self.decode_timeout_s = decode_timeout_s
        self.rescan = rescan
        self.rate = model_rate(model_dir) if model_dir else DEFAULT_RATE
        self._queue: asyncio.Queue[VoiceJob] = asyncio.Queue(QUEUE_SIZE)
        self._queued: set[VoiceJob] = set()
        self._started = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings, intake: Intake, doors: Mapping[str, ChatDoor]) -> VoiceTranscriber:
        """INTAKE_ASR_MODEL, else the registry's default model; without one, notes are kept with the reason."""
        from intake.telephony.asr import ModelNotFound, ModelRegistry

        model_dir = ffmpeg = None
        reasons = []
        try:
            model_dir = (ModelRegistry({"configured": settings.asr_model}).model_dir("configured")
                         if settings.asr_model else ModelRegistry().model_dir())
        except ModelNotFound as exc:
            reasons.append(f"no speech model: {exc}")
        try:
            ffmpeg = ffmpeg_exe()
        except (ImportError, RuntimeError) as exc:
            reasons.append(f"no ffmpeg to decode voice notes: {exc}")
        if reasons:
            log.warning("chat voice notes will be kept but not transcribed: %s", "; ".join(reasons))
        return cls(intake, doors, model_dir=model_dir, ffmpeg=ffmpeg, unavailable="; ".join(reasons) or None)

    @property
    def available(self) -> bool:
        return self.unavailable is None

    # --- the doors' side ---

    def submit(self, event: ChatEvent, taken: Taken) -> None:
        """The door stored (and answered) this message: queue its voice notes."""
        if taken.report_id is None:
            return
        for a in event.report.attachments:
            ref = voice_ref(a) if is_pending_voice(a) else None
            if ref is not None:
                self.enqueue(VoiceJob(taken.report_id, ref))

    def enqueue(self, job: VoiceJob) -> bool:
        if job in self._queued:
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            log.warning("voice notes: queue full, note of report %s left for the next start", job.report_id)
            return False
        self._queued.add(job)
        return True

    async def drained(self) -> None:
        """Wait until the start-up pick-up and every note queued so far are done."""
        await self._started.wait()
        await self._queue.join()

    # --- the worker ---

    async def run(self, stop: asyncio.Event) -> None:
        """Pick up what a previous run left, then transcribe queued notes until `stop` is set."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.fetch_timeout_s)) as session:
            try:
                if self.available:  # without a model, notes stay pending for a start that has one
                    await self._pick_up()
            except Exception:  # the store is down at start: new notes are still taken
                log.exception("voice notes: the start-up pick-up failed")
            finally:
                self._started.set()
            while not stop.is_set():
                job = await self._next(stop)
                if job is None:
                    break
                try:
                    await self._process(job, session)
                except Exception:  # one note's failure must not stop the others
                    log.exception("voice note %s of report %s: transcription failed", job.ref, job.report_id)
                finally:
                    self._queued.discard(job)
                    self._queue.task_done()

    async def _next(self, stop: asyncio.Event) -> VoiceJob | None:
        getter = asyncio.ensure_future(self._queue.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (getter, stopper):
                t.cancel()
            await asyncio.gather(getter, stopper, return_exceptions=True)
        if getter.done() and not getter.cancelled() and getter.exception() is None:
            return getter.result()
        return None

    async def _pick_up(self) -> int:
        since = self.intake.clock() - self.rescan
        async with self.intake.store.read() as repo:
            rows = await repo.recent_reports(list(self.doors), since, RESCAN_LIMIT)
        count = 0
        for row in reversed(rows):  # oldest first
            for ref, _ in pending_notes(row):
                count += self.enqueue(VoiceJob(row["id"], ref))
        if count:
            log.info("voice notes: %d left by the previous run picked up", count)
        return count

    async def _report(self, report_id: int) -> dict[str, Any] | None:
        async with self.intake.store.read() as repo:
            return await repo.report(report_id)

    async def _process(self, job: VoiceJob, session: aiohttp.ClientSession) -> None:
        row = await self._report(job.report_id)
        attachment = dict(next((a for ref, a in pending_notes(row) if ref == job.ref), {})) if row else {}
        if row is None or not attachment:
            return  # done already: a retried delivery, or another node
        door = self.doors.get(row["channel"])
        try:
            if self.unavailable is not None:
                raise AudioUnavailable(self.unavailable, retry=True)
            if door is None:
                raise AudioUnavailable(f"the {row['channel']} door is not configured", retry=True)
            transcript, duration_s = await self._transcribe(door, attachment, session)
        except AudioUnavailable as exc:
            log.warning("voice note %s of report %s not transcribed: %s", job.ref, job.report_id, exc.reason)
            await self._record(job, {"transcribed": False, "reason": exc.reason, "retry": exc.retry})
            return
        outcome: dict[str, Any] = {"transcribed": bool(transcript), "duration_s": round(duration_s, 2),
                                   "model": _model_name(self.model_dir or "")}
        if not transcript:
            log.info("voice note %s of report %s: no words recognised", job.ref, job.report_id)
            await self._record(job, {**outcome, "reason": "no words were recognised", "retry": False})
            return
        result = await self._record(job, {**outcome, "transcript": transcript}, add_text=transcript)
        if result is not None and door is not None and row["reporter_id"]:
            await door.notify(row["reporter_id"], self._followup(row, result, transcript))

    async def _transcribe(self, door: ChatDoor, attachment: Mapping[str, Any], session: aiohttp.ClientSession
                          ) -> tuple[str, float]:
        from intake.telephony.asr import ModelNotFound, transcribe_file

        assert self.model_dir is not None and self.ffmpeg is not None
        data = await download(session, await door.file_url(attachment), limit=self.max_bytes)
        with tempfile.TemporaryDirectory(prefix="intake-voice-") as tmp:
            src, wav = Path(tmp) / "note", Path(tmp) / "note.wav"
            await asyncio.to_thread(src.write_bytes, data)
            await decode(self.ffmpeg, src, wav, rate=self.rate, timeout_s=self.decode_timeout_s)
            try:
                done = await asyncio.to_thread(transcribe_file, str(wav), self.model_dir)
            except ModelNotFound as exc:
                raise AudioUnavailable(f"no speech model: {exc}", retry=True) from exc
        return done.transcript.strip(), done.duration_s

    async def _record(self, job: VoiceJob, outcome: dict[str, Any], *, add_text: str | None = None
                      ) -> IngestResult | None:
        """The outcome into raw["voice"], and the transcript into the text: the report walks the road again.

        The outcome is written first, with the report's row locked: of two nodes that both transcribed the
        note (both picked it up at start), only the first records it and adds the words; the other stops.
        """
        now = self.intake.clock()
        async with self.intake.store.transaction() as repo:
            row = await repo.report(job.report_id, for_update=True)
            if row is None:
                return None
            outcomes = _outcomes(row)
            earlier = outcomes.get(job.ref)
            if isinstance(earlier, dict) and earlier.get("retry") is not True:
                log.info("voice note %s of report %s was already recorded; not twice", job.ref, job.report_id)
                return None
            outcomes[job.ref] = {**outcome, "at": now.isoformat()}
            await repo.update_report(job.report_id, {"raw": {**(row["raw"] or {}), RAW_KEY: outcomes},
                                                     "updated_at": now})
        if add_text is None:
            return None
        row = await self._report(job.report_id)  # read again: the report may have grown meanwhile
        if row is None:
            return None
        current = (row["text"] or "").rstrip()
        text = f"{current}\n{add_text}" if current else add_text
        return await self.intake.update_report(job.report_id, text=text, actor=ACTOR)

    @staticmethod
    def _followup(row: Mapping[str, Any], result: IngestResult, transcript: str) -> Reply:
        lang = reply_language(row["language"])
        quoted = transcript if len(transcript) <= FOLLOWUP_CHARS else transcript[: FOLLOWUP_CHARS - 1] + "…"
        number = result.incident_id if result.incident_id is not None else result.report_id
        return Reply(TEXTS[lang]["voice_transcribed"].format(incident=number, text=quoted), lang)


def attach(settings: Settings, intake: Intake, doors: dict[str, ChatDoor]) -> VoiceTranscriber | None:
    """The transcriber for the configured chat doors (None without any), handed to each door."""
    if not doors:
        return None
    transcriber = VoiceTranscriber.from_settings(settings, intake, doors)
    for door in doors.values():
        door.voice = transcriber
    return transcriber


__all__ = ["AudioUnavailable", "VoiceJob", "VoiceTranscriber", "attach", "decode", "download", "voice_ref"]
