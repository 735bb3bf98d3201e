"""Calls through a real Asterisk 22 running `dialplans/`, placed and answered by SIP phones (sipp).

Each test reads the call's report as a call-taker's console and a dispatch system would: its state, who
answered and when, the flags, the transcript, the category, the keys pressed, the recording, and the events
on the stream. None asserts how fast anything was (`intake bench calls` measures that).
"""

from __future__ import annotations

import wave
from datetime import datetime
from typing import Any

from intake.testbed.bed import Bed

CALLER = "0912345678"


def _at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def _wav_seconds(path: str) -> float:
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


async def test_a_call_taker_answers_and_the_call_is_timed_from_that_pick_up(bed: Bed) -> None:
    """The dialplan answers at once (for the audio fork); the call counts as answered when the call-taker
    picks up, three seconds later, and the words are classified while the caller is still talking."""
    await bed.seat(answer_after_s=3)
    caller = await bed.call(CALLER, talk_s=14, speech=bed.speech(0, 12))
    report = await bed.ended_call(CALLER)
    assert await caller.wait(10) == 0
    call = report["raw"]["call"]
    assert call["answered_by"] == "lan" and call["needs_callback"] is False and call["callback_reason"] is None
    assert call["queue"] == "calltakers" and report["dialled_number"] == "112"
    # Answered by a person three seconds after the dialplan's Answer(), not at it.
    assert _at(call["answered_at"]) > _at(call["channel_answered_at"])
    assert (_at(call["answered_at"]) - _at(call["channel_answered_at"])).total_seconds() >= 2.5
    assert call["wait_seconds"] >= 2.5 and call["talk_seconds"] < call["duration_seconds"]
    assert call["audio_connected"] is True and report["text"], "no transcript on the call's report"
    # The recording covers the whole call, from its first moment.
    assert call["recording"] and _wav_seconds(call["recording"]) >= call["duration_seconds"] - 1.5
    events = await bed.events(report["id"])
    kinds = [e["kind"] for e in events]
    assert kinds[0] in ("incident.opened", "call.ringing") and "call.ringing" in kinds
    assert any(e["kind"] == "call.offered" and e["payload"]["answered"] and e["payload"]["member"] == "lan"
               for e in events)
    # Classified during the call: a transcript event carrying the category comes before the hang-up.
    hungup = next(e["id"] for e in events if e["kind"] == "call.updated"
                  and e["payload"]["call"]["state"] == "hungup")
    classified = [e for e in events if e["kind"] == "call.transcript" and "category" in e["payload"]]
    assert classified and classified[0]["id"] < hungup, "the words were classified only after the hang-up"
    updated = [e for e in events if e["kind"] == "incident.updated" and e["id"] < hungup]
    assert updated, "the incident did not follow the words while the caller was talking"


async def test_a_caller_who_gives_up_in_the_queue_is_flagged_for_call_back(bed: Bed) -> None:
    await bed.seat(answer_after_s=None)  # the call-taker's phone rings, nobody picks up
    await bed.call(CALLER, talk_s=7, speech=bed.speech(0, 5))
    report = await bed.ended_call(CALLER)
    call = report["raw"]["call"]
    assert call["needs_callback"] is True
    assert call["callback_reason"].startswith("caller abandoned in queue calltakers after")
    assert call["hangup_cause_text"] == "caller abandoned in queue" and call["ended_by"] == "caller"
    assert call["answered_at"] is None and call["answered_by"] is None and "talk_seconds" not in call
    assert call["channel_answered_at"] is not None and call["abandoned"] is True
    # The recording holds the queue wait (MixMonitor without `b`), not an empty file.
    assert call["recording"] and _wav_seconds(call["recording"]) >= 5


async def test_keys_the_caller_presses_are_kept_and_never_transfer_the_call(bed: Bed) -> None:
    """RFC 4733 digits reach AMI as DTMFEnd (manager.conf reads `dtmf`); `#` is no transfer key for a caller."""
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=12, speech=bed.speech(0, 3, dtmf="#1001#112"))
    report = await bed.ended_call(CALLER)
    call = report["raw"]["call"]
    assert call["dtmf"] == "#1001#112"
    assert call["answered_by"] == "lan" and call["transferred_to"] is None and call["ended_by"] == "caller"
    log = bed.asterisk.messages().lower()
    assert "blind transfer" not in log and "attended transfer" not in log and "xfer" not in log


async def test_a_call_taker_transfers_a_live_call_to_each_agency(bed: Bed) -> None:
    from intake.web.auth import create_token

    token = await create_token(await bed.store(), role="calltaker", name="lan", agency=None,
                               now=datetime.now().astimezone())
    await bed.seat(answer_after_s=1)
    await bed.call(CALLER, talk_s=40, speech=bed.speech(0, 4))

    async def answered_by_lan_in(queue: str) -> dict[str, Any] | None:
        row = await bed.call_report(CALLER)
        call = (row or {}).get("raw", {}).get("call") or {}
        return row if call.get("queue") == queue and call.get("with_calltaker") == "lan" else None

    import aiohttp

    report = await bed.until(lambda: answered_by_lan_in("calltakers"), 30, "the call-taker answering")
    linkedid = report["channel_ref"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for agency in ("fire", "police", "medical"):
            async with http.post(f"{bed.intake.url}/api/v1/calls/{linkedid}/transfer",
                                 json={"agency": agency}) as resp:
                assert resp.status == 200, await resp.text()
            report = await bed.until(lambda a=agency: answered_by_lan_in(a), 30, f"the {agency} queue answering")
            assert report["raw"]["call"]["transferred_to"] == agency
        async with http.post(f"{bed.intake.url}/api/v1/calls/{linkedid}/hangup", json={}) as resp:
            assert resp.status == 200, await resp.text()
    report = await bed.ended_call(CALLER)
    call = report["raw"]["call"]
    assert call["ended_by"] == "calltaker" and call["needs_callback"] is False
    queues = [e["payload"]["queue"] for e in await bed.events(report["id"]) if e["kind"] == "call.offered"
              and e["payload"]["answered"]]
    assert queues == ["calltakers", "fire", "police", "medical"]


async def test_ten_calls_in_one_second_each_keep_their_own_words(bed: Bed) -> None:
    """A burst: every call's audio is paired with its own call, however far behind the bridge falls."""
    await bed.seat(answer_after_s=1)
    callers = [f"09123456{i:02d}" for i in range(10)]
    await bed.calls_at_rate(callers, 10, talk_s=9, speech=[bed.speech(i * 1.0, 6) for i in range(10)])
    reports = [await bed.ended_call(number, within_s=120) for number in callers]
    for report in reports:
        call = report["raw"]["call"]
        assert call["audio_connected"] is True, f"{report['phone_raw']}: its audio was never paired"
        assert "audio never reached" not in (call["callback_reason"] or "")
    # Words that belong to no call would have become reports of their own ('audiosocket:<uuid>').
    assert [r for r in await bed.call_reports() if r["channel_ref"].startswith("audiosocket:")] == []

    async def all_transcribed() -> list[dict[str, Any]] | None:
        rows = [await bed.call_report(n) for n in callers]
        return rows if all(r and r["text"] for r in rows) else None  # type: ignore[return-value]

    rows = await bed.until(all_transcribed, 120, "every call's transcript")
    assert len({r["text"] for r in rows}) == 10, "two calls got the same words"

