"""The AMI bridge against a local AMI server replaying real Asterisk 22 transcripts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from intake.pipeline import Intake
from intake.telephony.ami import AmiActionError, AmiBridge, CallState
from intake.telephony.ami_replay import AmiReplayServer
from tests.conftest import SHARED

AMI = SHARED / "fixtures" / "asterisk" / "ami"
SPEED = 20.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, what: str, call: CallState, data: dict[str, Any]) -> None:
        self.events.append((what, call.linkedid, data))
        self.changed.set()

    async def wait_for(self, what: str, linkedid: str | None = None, seconds: float = 20) -> None:
        async def check() -> None:
            while not any(w == what and (linkedid is None or lid == linkedid) for w, lid, _ in self.events):
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(check(), seconds)


@asynccontextmanager
async def bridge_on(server: AmiReplayServer, intake: Intake, rec: Recorder, **kw: Any) -> AsyncIterator[AmiBridge]:
    bridge = AmiBridge(intake, port=server.port, secret="intake-secret", on_call_event=rec, backoff_initial=0.05,
                       backoff_max=0.2, **kw)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(bridge.run(stop))
        try:
            yield bridge
        finally:
            stop.set()


async def call_reports(intake: Intake) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from intake.store.tables import reports

    async with intake.store.read() as repo:
        rows = (await repo.conn.execute(select(reports).where(reports.c.channel == "call"))).mappings().all()
    return [dict(r) for r in rows]


async def test_normal_call_pops_then_grows_a_call_report(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=SPEED) as server, bridge_on(server, intake, rec):
        await rec.wait_for("hungup")
    assert rec.events[0][0] == "ringing"  # the screen-pop comes first, at Newchannel
    # The dialplan's Answer() brings the media up; no call-taker ever picked this call up (the capture's
    # dialplan sends it to AudioSocket in line, and the caller hangs up there).
    assert [w for w, _, _ in rec.events] == ["ringing", "audio", "channel_up", "hungup"]
    (report,) = await call_reports(intake)
    assert report["channel_ref"] == "1795318919.0"  # Linkedid, as an opaque string
    assert report["dialled_number"] == "112"
    assert report["phone_raw"] == "15551230001"
    call = report["raw"]["call"]
    assert call["channel_answered_at"] is not None and call["hangup_cause"] == 0
    assert call["answered_at"] is None and call["answered_by"] is None and "talk_seconds" not in call
    assert call["audio_uuid"] == "6ba6f33f-0e04-420c-a041-935e3b8eb398"
    assert call["needs_callback"] is True and call["callback_reason"] == "ended before a call-taker answered"
    assert report["incident_id"] is not None


async def test_a_caller_who_hangs_up_before_answer_is_flagged_for_call_back(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "caller_hangup_before_answer.txt", speed=SPEED) as server, \
            bridge_on(server, intake, rec):
        await rec.wait_for("hungup")
    (report,) = await call_reports(intake)
    call = report["raw"]["call"]
    assert call["hangup_cause"] == 127 and call["answered_at"] is None and call["needs_callback"] is True


async def test_overlapping_calls_are_two_reports(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "overlapping_calls.txt", speed=SPEED) as server, bridge_on(server, intake, rec):
        await rec.wait_for("hungup", "1795318937.2")
        await rec.wait_for("hungup", "1795318939.3")
    reports = await call_reports(intake)
    assert sorted(r["channel_ref"] for r in reports) == ["1795318937.2", "1795318939.3"]
    assert sorted(r["dialled_number"] for r in reports) == ["112", "113"]
    assert len({r["raw"]["call"]["audio_uuid"] for r in reports}) == 2


async def test_asterisk_killed_mid_call_reconnects_rebuilds_and_duplicates_nothing(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=5.0) as server, \
            bridge_on(server, intake, rec) as bridge:
        await rec.wait_for("channel_up")
        await server.kill()
        await asyncio.sleep(0.3)
        assert not bridge.connected.is_set()
        await server.restart()
        await asyncio.wait_for(bridge.connected.wait(), 10)
        await rec.wait_for("hungup")
    assert bridge.connections == 2
    assert any(a.get("action", "").lower() == "coreshowchannels" for a in server.received_actions)
    reports = await call_reports(intake)
    assert len(reports) == 1 and reports[0]["raw"]["call"]["hangup_cause"] == 0
    assert [w for w, _, _ in rec.events].count("ringing") == 1


async def test_a_call_that_ended_during_the_outage_is_closed_on_reconnect(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=5.0) as server, \
            bridge_on(server, intake, rec) as bridge:
        await rec.wait_for("channel_up")
        await server.kill()
        server.live.clear()  # Asterisk came back without the call
        await server.restart()
        await rec.wait_for("hungup")
        assert bridge.calls == {}
    (report,) = await call_reports(intake)
    assert report["raw"]["call"]["hangup_cause"] is None
    assert "connection was down" in report["raw"]["call"]["hangup_cause_text"]


async def test_a_half_open_connection_is_noticed_by_ping_and_replaced(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=1.0) as server, \
            bridge_on(server, intake, rec, ping_interval=0.2, ping_timeout=0.3) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        answer = server._answer
        server._answer = lambda client, action: None  # type: ignore[method-assign]  # Asterisk stops answering
        await asyncio.wait_for(_until(lambda: not bridge.connected.is_set()), 5)
        server._answer = answer  # type: ignore[method-assign]
        await asyncio.wait_for(_until(lambda: bridge.connections >= 2 and bridge.connected.is_set()), 10)


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - polling the bridge's state from outside is the point here
        await asyncio.sleep(0.02)


async def test_an_error_response_raises_a_clear_error(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=SPEED) as server, \
            bridge_on(server, intake, rec) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        with pytest.raises(AmiActionError, match="Invalid/unknown command"):
            await bridge.action("Redirect", Channel="PJSIP/nobody", Context="x", Exten="1", Priority="1")
        await rec.wait_for("hungup")


async def test_the_screen_pop_carries_the_callers_history_and_nearby_incidents(intake: Intake) -> None:
    from intake.core.model import Location, LocationSource, ReportIn

    earlier = await intake.ingest(ReportIn(
        channel="app", channel_ref="earlier", received_at=intake.clock(), text="cháy nhà", phone="15551230001",
        location=Location(21.034, 105.852, 15, LocationSource.GPS), raw={"x": 1}))
    neighbour = await intake.ingest(ReportIn(
        channel="app", channel_ref="neighbour", received_at=intake.clock(), text="có cướp",
        location=Location(21.036, 105.852, 15, LocationSource.GPS), raw={"x": 2}))
    rec = Recorder()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=SPEED) as server, bridge_on(server, intake, rec):
        await rec.wait_for("ringing")
        async with intake.store.read() as repo:
            pops = [o for o in await repo.outbox_after(0) if o["kind"] == "call.ringing"]
        await rec.wait_for("hungup")
    (pop,) = pops
    data = pop["payload"]
    assert data["caller"]["raw"] == "15551230001" and data["line"] == "112"
    assert [r["id"] for r in data["earlier_reports"]] == [earlier.report_id]
    assert data["last_location"]["lat"] == 21.034
    assert {i["id"] for i in data["nearby_incidents"]} == {earlier.incident_id, neighbour.incident_id}
    assert data["report_id"] == pop["report_id"] and data["report_id"] != earlier.report_id
