"""What a restart, a crash or a stop does to calls in progress, on a real Asterisk."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from intake.testbed.bed import Bed

CALLER = "0911222333"


async def _live(bed: Bed, caller: str, state: str, within_s: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        row = await bed.call_report(caller)
        return row if row and (row["raw"].get("call") or {}).get("state") == state else None
    return await bed.until(probe, within_s, f"the call from {caller} being {state}")


async def test_a_restart_of_intake_mid_call_keeps_the_call_and_its_words(bed: Bed) -> None:
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=20, speech=bed.speech(0, 16))
    before = await _live(bed, CALLER, "up")
    await asyncio.sleep(3)
    assert await bed.intake.stop() == 0
    heard = (await bed.call_report(CALLER) or {}).get("text") or ""
    await bed.intake.start()
    report = await bed.ended_call(CALLER, within_s=60)
    report = await bed.until(lambda: _grown(bed, heard), 60, "words heard after the restart on the report")
    call = report["raw"]["call"]
    assert report["id"] == before["id"] and len(await bed.call_reports()) == 1
    assert report["text"].startswith(heard.strip())  # what the first process heard is kept, the rest added
    assert call["answered_by"] == "lan" and call["needs_callback"] is False and call["rebuilt"] is True
    assert call["answered_at"] == before["raw"]["call"]["answered_at"]  # from the earlier process's record
    assert call["audio_forks"] == 1, "the call's audio was not forked again after the restart"
    assert call["hangup_cause"] is not None and call["ended_by"] == "caller"


async def _grown(bed: Bed, heard: str) -> dict[str, Any] | None:
    row = await bed.call_report(CALLER)
    return row if row and len(row["text"] or "") > len(heard.strip()) else None


async def test_a_call_placed_while_intake_is_down_is_picked_up_when_it_starts(bed: Bed) -> None:
    await bed.intake.stop()
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=16, speech=bed.speech(0, 14))
    await asyncio.sleep(4)
    await bed.intake.start()
    report = await bed.ended_call(CALLER, within_s=60)
    call = report["raw"]["call"]
    assert call["rebuilt"] is True and call["answered_by"] == "lan" and call["needs_callback"] is False
    assert report["dialled_number"] == "112" and report["phone_raw"] == CALLER
    assert call["audio_forks"] == 1 and report["text"], "the rest of the call was not transcribed"
    kinds = [e["kind"] for e in await bed.events(report["id"])]
    assert "call.ringing" in kinds  # the screen-pop, late, but it comes


async def test_asterisk_killed_mid_call_flags_the_call_for_call_back(bed: Bed) -> None:
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=30, speech=bed.speech(0, 10))
    await _live(bed, CALLER, "up")
    await bed.asterisk.kill()
    await bed.asterisk.start()
    report = await bed.ended_call(CALLER, within_s=60)
    call = report["raw"]["call"]
    assert call["needs_callback"] is True and call["callback_reason"] == "cut off: Asterisk restarted during the call"
    assert call["ended_by"] == "asterisk" and call["answered_by"] == "lan"
    # The next call after the restart is a call like any other.
    await bed.call("0911222444", talk_s=3, speech=bed.speech(0, 2))
    nxt = await bed.ended_call("0911222444", within_s=60)
    assert nxt["raw"]["call"]["rebuilt"] is False and len(await bed.call_reports()) == 2


async def test_asterisk_that_stays_down_flags_its_calls_for_call_back(bed: Bed) -> None:
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=30, speech=bed.speech(0, 10))
    await _live(bed, CALLER, "up")
    await bed.asterisk.kill()
    report = await bed.ended_call(CALLER, within_s=60)
    call = report["raw"]["call"]
    assert call["needs_callback"] is True and call["callback_reason"].startswith("cut off: Asterisk could not be")


async def test_a_stop_mid_call_writes_what_was_heard_and_exits_cleanly(bed: Bed) -> None:
    """Six calls on two recognizer processes: four are transcribed live, two recorded for later. A SIGTERM
    writes the live calls' words at once and keeps the two recordings for the next start, which transcribes
    them: no word is lost, nothing is logged as an error."""
    await bed.seat(answer_after_s=1)
    callers = [f"09112223{i:02d}" for i in range(6)]
    for i, number in enumerate(callers):
        await bed.call(number, talk_s=30, speech=bed.speech(i, 14))
    for number in callers:
        await _live(bed, number, "up")
    await asyncio.sleep(8)
    assert await bed.intake.stop(signal.SIGTERM) == 0
    log = bed.intake.log()
    assert "Traceback" not in log and " ERROR " not in log, bed.intake.log_tail(40)
    rows = [await bed.call_report(n) for n in callers]
    live = [r for r in rows if r and r["text"]]
    kept = [r for r in rows if r and r["raw"].get("pending_audio")]
    assert len(live) == 4 and len(kept) == 2, [(r["text"], r["raw"].get("pending_audio")) for r in rows if r]
    await bed.intake.start()

    async def all_words() -> list[dict[str, Any]] | None:
        now = [await bed.call_report(n) for n in callers]
        return now if all(r and r["text"] and not r["raw"].get("pending_audio") for r in now) else None  # type: ignore[return-value]
    await bed.until(all_words, 90, "the kept recordings transcribed after the restart")
