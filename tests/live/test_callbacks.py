"""Calling an abandoned caller back through a real Asterisk: the API answers at once (202, ringing), and the
outcome Asterisk reports (answered, busy, no answer, with its reason and cause) lands on the abandoned call's
report and on the stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest

from intake.testbed.bed import Bed

CALLER = "0987654321"


async def _abandoned_call(bed: Bed) -> dict[str, Any]:
    seat = await bed.seat(answer_after_s=None)
    await bed.call(CALLER, talk_s=3, speech=bed.speech(0, 2))
    report = await bed.ended_call(CALLER)
    assert report["raw"]["call"]["needs_callback"] is True
    await seat.stop()
    return report


async def _call_back(bed: Bed, report: dict[str, Any]) -> dict[str, Any]:
    from intake.web.auth import create_token

    token = await create_token(await bed.store(), role="calltaker", name="lan", agency=None,
                               now=datetime.now().astimezone())
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, http.post(
            f"{bed.intake.url}/api/v1/calls/{report['channel_ref']}/callback", json={}) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 202, body
    assert body["outcome"] == "ringing" and body["number"] == CALLER
    return body


async def _outcome(bed: Bed, report_id: int, channel_id: str, within_s: float) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        row = await bed.report(report_id)
        attempt = next((a for a in (row or {}).get("raw", {}).get("callbacks", [])
                        if a["channel_id"] == channel_id), None)
        return attempt if attempt is not None and attempt["done"] else None
    return await bed.until(done, within_s, "the call-back's outcome")


async def test_a_call_back_that_rings_fifteen_seconds_is_answered_and_put_through(bed: Bed) -> None:
    report = await _abandoned_call(bed)
    await bed.seat(answer_after_s=1)
    await bed.sip.callback_phone(bed.asterisk.ports.trunk, answer_after_s=15, hold_s=4)
    body = await _call_back(bed, report)
    attempt = await _outcome(bed, report["id"], body["channel_id"], 60)
    assert attempt["outcome"] == "answered" and attempt["reason"] == 4
    assert attempt["connected_to"] == "lan"
    assert attempt["answered_at"] is not None and attempt["ended_at"] is not None
    kinds = [e["payload"]["outcome"] for e in await bed.events(report["id"]) if e["kind"] == "call.callback"]
    assert kinds[0] == "ringing" and "answered" in kinds
    # The call-back leg is our own call, never a new emergency report.
    assert [r["phone_raw"] for r in await bed.call_reports()] == [CALLER]


@pytest.mark.parametrize(("busy", "outcome", "cause"), [(True, "busy", 17), (False, "no answer", None)])
async def test_a_call_back_to_a_busy_or_silent_phone_says_so(bed: Bed, busy: bool, outcome: str,
                                                            cause: int | None) -> None:
    """Busy: Asterisk's OriginateResponse says only Reason 0, the leg's hang-up says 17 (user busy). A phone
    that rings until the Originate times out: Reason 3 (it was ringing)."""
    report = await _abandoned_call(bed)
    await bed.sip.callback_phone(bed.asterisk.ports.trunk, answer_after_s=None, busy=busy)
    body = await _call_back(bed, report)
    attempt = await _outcome(bed, report["id"], body["channel_id"], 60)
    assert attempt["outcome"] == outcome and attempt["connected_to"] is None and attempt["answered_at"] is None
    if busy:
        assert attempt["cause"] == cause and attempt["cause_text"] == "User busy"
    else:
        assert attempt["reason"] == 3
