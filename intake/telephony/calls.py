"""Call audio → speech → the call's report, while the caller is still talking.

Each AudioSocket connection names its call by the UUID the dialplan set (INTAKE_UUID, seen by the AMI bridge
as VarSet). Pairing does not depend on timing: audio that arrives before the bridge knows its call (a burst
of calls puts the bridge behind) waits for it as long as the connection is open, and a little after
(`AmiBridge.call_for_audio`); only audio that no call of ours claims becomes a report of its own, so
nothing heard is lost.

The audio is fed to a recognizer stream. Partial text goes on the stream as `call.transcript` (at most every
`partial_every` seconds). The growing transcript (the finals so far and the current partial) is classified,
located and matched during the call, at most every `classify_every` seconds and whenever a final arrives,
through `Intake.update_report`: the call-taker sees the suggested category and the spoken address while the
caller talks, not after the hang-up. A second connection for the same call (the audio forked again after a
restart of intake) adds to the words already on the report.

When the recognizers are all busy, a call's audio is recorded and transcribed when one frees. If the server
stops first, the recording is kept and named on the report (raw["pending_audio"]); the next start transcribes
it (`pick_up`), so a stop loses no words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from intake.core.model import ReportIn
from intake.pipeline import IngestResult, Intake
from intake.telephony.ami import PAIR_GRACE_S, AmiBridge
from intake.telephony.asr import RecognizerPool, RecognizerStream, ShelvedAudio, Transcript
from intake.telephony.audiosocket import AudioChunk, CallAudio, CallEvent, DtmfDigit

log = logging.getLogger(__name__)

#: raw key of a call report's audio kept untranscribed at a stop (picked up at the next start).
PENDING_KEY = "pending_audio"
PICK_UP_WINDOW = timedelta(hours=6)


class _Words:
    """One connection's words: what the report had before it, the finals so far, the current partial."""

    def __init__(self, before: str) -> None:
        self.before = before.strip()
        self.finals: list[str] = []
        self.partial = ""
        self.classified = before.strip()  # the text the report was last classified on

    def text(self) -> str:
        return " ".join(p for p in (self.before, *self.finals, self.partial) if p)


class CallAudioRouter:
    def __init__(self, intake: Intake, bridge: AmiBridge | None, pool: RecognizerPool, *,
                 pair_grace_s: float = PAIR_GRACE_S, partial_every: float = 0.5, classify_every: float = 2.0
                 ) -> None:
        self.intake = intake
        self.bridge = bridge
        self.pool = pool
        self.pair_grace_s = pair_grace_s
        self.partial_every = partial_every
        self.classify_every = classify_every
        if bridge is not None:
            bridge.expects_audio = True

    async def _report_for(self, audio: CallAudio) -> tuple[int, str]:
        """(report id, call key) of the call this audio belongs to."""
        audio_uuid = str(audio.uuid)
        if self.bridge is not None:
            call = await self.bridge.call_for_audio(audio_uuid, audio.wait_closed, self.pair_grace_s)
            if call is not None and call.report_id is not None:
                return call.report_id, call.linkedid
        log.warning("audio %s belongs to no known call; keeping it as a report of its own", audio_uuid)
        result = await self.intake.ingest(ReportIn(
            channel="call", channel_ref=f"audiosocket:{audio_uuid}", received_at=self.intake.clock(),
            raw={"audio_uuid": audio_uuid}))
        return result.report_id, f"audiosocket:{audio_uuid}"

    async def on_call(self, audio: CallAudio) -> None:
        try:
            report_id, key = await self._report_for(audio)
            await self.transcribe(report_id, key, audio)
        finally:
            if self.bridge is not None:
                self.bridge.audio_ended(str(audio.uuid))

    async def transcribe(self, report_id: int, key: str, audio: AsyncIterable[CallEvent]) -> None:
        """Feed one call's audio (AudioSocket or a Twilio Media Stream) to a recognizer until it ends."""
        async with self.intake.store.read() as repo:
            row = await repo.report(report_id)
        words = _Words((row or {}).get("text") or "")
        dtmf = ""
        stream: RecognizerStream | None = None
        async with asyncio.TaskGroup() as tg:
            async for event in audio:
                if isinstance(event, AudioChunk):
                    if stream is None:
                        stream = await self.pool.open(key, event.sample_rate)
                        tg.create_task(self._consume(stream, report_id, key, words))
                    await stream.feed(event.pcm)
                elif isinstance(event, DtmfDigit):
                    dtmf += event.digit
            if stream is not None:
                await stream.close()
        if dtmf:
            await self.intake.patch_report_raw(report_id, {"dtmf": dtmf})
        if stream is not None and stream.shelved is not None:
            await self._keep_pending(report_id, stream.shelved)

    # --- audio heard but not transcribed when the server stopped -------------------------------------

    async def _keep_pending(self, report_id: int, shelved: ShelvedAudio) -> None:
        """The pool stopped before this call's recording was transcribed: say on the report where it is."""
        entry = {"key": shelved.call_id, **shelved.as_dict()}

        def put(raw: dict[str, Any]) -> dict[str, Any]:
            left = [p for p in raw.get(PENDING_KEY, []) if isinstance(p, dict) and p.get("path") != shelved.path]
            return {**raw, PENDING_KEY: [*left, entry]}
        await self.intake.patch_report_raw(report_id, put)
        log.info("call report %s: %.1f s of audio kept for the next start (%s)", report_id,
                 shelved.start_s, shelved.path)

    async def pick_up(self) -> int:
        """At start: transcribe the audio an earlier run kept untranscribed (its words join the reports)."""
        since = self.intake.clock() - PICK_UP_WINDOW
        async with self.intake.store.read() as repo:
            rows = await repo.recent_reports(["call"], since)
        jobs = [(row["id"], p) for row in reversed(rows) for p in (row["raw"] or {}).get(PENDING_KEY, [])
                if isinstance(p, dict)]
        if jobs:
            log.info("call audio: %d recording(s) left untranscribed by the previous run picked up", len(jobs))
        async with asyncio.TaskGroup() as tg:
            for report_id, pending in jobs:
                tg.create_task(self._transcribe_pending(report_id, pending))
        return len(jobs)

    async def _transcribe_pending(self, report_id: int, pending: dict[str, Any]) -> None:
        path = str(pending.get("path", ""))
        if Path(path).is_file():
            shelved = ShelvedAudio(str(pending.get("key", report_id)), path, int(pending.get("sample_rate", 8000)),
                                   float(pending.get("start_s", 0.0)))
            async with self.intake.store.read() as repo:
                row = await repo.report(report_id)
            stream = self.pool.transcribe_later(shelved)
            await self._consume(stream, report_id, shelved.call_id, _Words((row or {}).get("text") or ""))
            if stream.shelved is not None:  # stopped again before it was done: kept for the next start
                await self._keep_pending(report_id, stream.shelved)
                return
        else:
            log.warning("call report %s: its kept audio %s is gone; nothing to transcribe", report_id, path)

        def drop(raw: dict[str, Any]) -> dict[str, Any]:
            return {**raw, PENDING_KEY: [p for p in raw.get(PENDING_KEY, []) if p.get("path") != path]}
        await self.intake.patch_report_raw(report_id, drop)
        if Path(path).is_file():
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _consume(self, stream: RecognizerStream, report_id: int, key: str, words: _Words) -> None:
        last_partial = last_classified = 0.0
        result: IngestResult | None = None
        async for r in stream.results():
            now = time.monotonic()
            if r.final:
                words.partial = ""
                if r.text.strip():
                    words.finals.append(r.text.strip())
                    result = await self._classify(report_id, words) or result
                    last_classified = now
                    await self._push(report_id, key, r, words.text(), result)
                continue
            words.partial = r.text.strip()
            if r.text and now - last_classified >= self.classify_every:
                result = await self._classify(report_id, words) or result
                last_classified = now
            if r.text and now - last_partial >= self.partial_every:
                last_partial = now
                await self._push(report_id, key, r, words.text(), result)
        if words.partial:  # the stream ended on a partial that never became final: keep its words
            words.finals.append(words.partial)
            words.partial = ""
            await self._classify(report_id, words)

    async def _classify(self, report_id: int, words: _Words) -> IngestResult | None:
        """The growing transcript walks the road again (category, spoken address, incident), once per change."""
        text = words.text()
        if text == words.classified:
            return None
        words.classified = text
        return await self.intake.update_report(report_id, text=text, actor="asr")

    async def _push(self, report_id: int, key: str, r: Transcript, text: str, result: IngestResult | None) -> None:
        payload: dict[str, Any] = {
            "call": key, "report_id": report_id, "final": r.final, "text": text, "segment": r.text,
            "audio_end_s": r.audio_end_s,
            "words": [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in r.words],
        }
        if result is not None:  # what the words so far say: the call-taker's suggestion, during the call
            payload["category"] = result.category.value
            payload["confidence"] = result.confidence
            payload["incident_id"] = result.incident_id
            payload["location"] = result.location
        await self.intake.publish([{"topic": "call", "kind": "call.transcript", "report_id": report_id,
                                    "payload": payload}])
