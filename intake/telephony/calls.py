"""Call audio → speech → the call's report.

Each AudioSocket connection names its call by the UUID the dialplan set
(INTAKE_UUID, seen by the AMI bridge as VarSet). Its audio is fed to a
recognizer stream; partial text is pushed on the stream as `call.transcript`
(at most every `partial_every` seconds), and every final sentence grows the
call's report through `Intake.update_report`, which re-classifies, re-locates
(an address the caller spoke) and re-matches it. Audio whose call the bridge
does not know within `wait_for_call` seconds still becomes a report of its
own: nothing heard is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable
from typing import Any

from intake.core.model import ReportIn
from intake.pipeline import Intake
from intake.telephony.ami import AmiBridge
from intake.telephony.asr import RecognizerPool, RecognizerStream, Transcript
from intake.telephony.audiosocket import AudioChunk, CallAudio, CallEvent, DtmfDigit

log = logging.getLogger(__name__)


class CallAudioRouter:
    def __init__(self, intake: Intake, bridge: AmiBridge | None, pool: RecognizerPool, *,
                 wait_for_call: float = 3.0, partial_every: float = 0.5) -> None:
        self.intake = intake
        self.bridge = bridge
        self.pool = pool
        self.wait_for_call = wait_for_call
        self.partial_every = partial_every
        if bridge is not None:
            bridge.expects_audio = True

    async def _report_for(self, audio_uuid: str) -> tuple[int, str]:
        """(report id, call key) of the call this audio belongs to."""
        deadline = time.monotonic() + self.wait_for_call
        while self.bridge is not None:
            call = self.bridge.audio_started(audio_uuid)
            if call is not None and call.report_id is not None:
                return call.report_id, call.linkedid
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        log.warning("audio %s belongs to no known call; keeping it as a report of its own", audio_uuid)
        result = await self.intake.ingest(ReportIn(
            channel="call", channel_ref=f"audiosocket:{audio_uuid}", received_at=self.intake.clock(),
            raw={"audio_uuid": audio_uuid}))
        return result.report_id, f"audiosocket:{audio_uuid}"

    async def on_call(self, audio: CallAudio) -> None:
        report_id, key = await self._report_for(str(audio.uuid))
        await self.transcribe(report_id, key, audio)

    async def transcribe(self, report_id: int, key: str, audio: AsyncIterable[CallEvent]) -> None:
        """Feed one call's audio (AudioSocket or a Twilio Media Stream) to a recognizer until it ends."""
        finals: list[str] = []
        dtmf = ""
        stream: RecognizerStream | None = None
        async with asyncio.TaskGroup() as tg:
            async for event in audio:
                if isinstance(event, AudioChunk):
                    if stream is None:
                        stream = await self.pool.open(key, event.sample_rate)
                        tg.create_task(self._consume(stream, report_id, key, finals))
                    await stream.feed(event.pcm)
                elif isinstance(event, DtmfDigit):
                    dtmf += event.digit
            if stream is not None:
                await stream.close()
        if dtmf:
            await self.intake.update_report(report_id, raw_patch={"dtmf": dtmf}, actor="audio")

    async def _consume(self, stream: RecognizerStream, report_id: int, key: str, finals: list[str]) -> None:
        last_partial = 0.0
        async for r in stream.results():
            if r.final:
                if r.text.strip():
                    finals.append(r.text.strip())
                    await self.intake.update_report(report_id, text=" ".join(finals), actor="asr")
                    await self._push(report_id, key, r, " ".join(finals))
            elif r.text and time.monotonic() - last_partial >= self.partial_every:
                last_partial = time.monotonic()
                await self._push(report_id, key, r, " ".join([*finals, r.text]))

    async def _push(self, report_id: int, key: str, r: Transcript, text: str) -> None:
        payload: dict[str, Any] = {
            "call": key, "report_id": report_id, "final": r.final, "text": text, "segment": r.text,
            "audio_end_s": r.audio_end_s,
            "words": [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in r.words],
        }
        async with self.intake.store.transaction() as repo:
            await repo.write_outbox([{"at": self.intake.clock(), "topic": "call", "kind": "call.transcript",
                                      "incident_id": None, "report_id": report_id, "payload": payload}])
