"""The rest of the real Asterisk 22 captures through the bridge: DTMF, server hang-up, refused audio,
the AudioSocket channel driver, an operator's Redirect / Getvar / Setvar / Hangup, and Originate.

Where the capture shows the client sending actions, the test sends the same actions through the
bridge's own methods, in the same order; the replay answers each with Asterisk's recorded response.
"""

from __future__ import annotations

import asyncio

import pytest

from intake.pipeline import Intake
from intake.telephony.ami import AmiActionError, AmiBridge
from intake.telephony.ami_replay import AmiReplayServer
from intake.telephony.asr import RecognizerPool, default_model_dirs
from intake.telephony.audiosocket import AudioSocketServer, stream_bin
from intake.telephony.calls import CallAudioRouter
from tests.conftest import SHARED
from tests.integration.test_ami import AMI, Recorder, bridge_on, call_reports

CAPTURES = SHARED / "fixtures" / "asterisk" / "audiosocket"
SPEED = 20.0


async def test_digits_the_caller_presses_are_kept_on_the_call(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "dtmf_call.txt", speed=SPEED) as server, bridge_on(server, intake, rec):
        await rec.wait_for("hungup")
    (report,) = await call_reports(intake)
    assert report["raw"]["call"]["dtmf"] == "112#"  # RFC 4733 digits, DTMFEnd Direction: Received


async def test_a_call_the_server_hangs_up_is_normal_clearing_and_needs_no_call_back(intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "server_hangup.txt", speed=SPEED) as server, bridge_on(server, intake, rec):
        await rec.wait_for("hungup")
    (report,) = await call_reports(intake)
    call = report["raw"]["call"]
    assert call["hangup_cause"] == 16 and call["hangup_cause_text"] == "Normal Clearing"  # Asterisk's Cause-txt
    # The capture's dialplan hangs up once the server ends the AudioSocket: the media was up, but no call-taker
    # ever spoke to the caller, so the caller is called back.
    assert call["channel_answered_at"] is not None and call["answered_at"] is None
    assert call["needs_callback"] is True and call["callback_reason"] == "ended before a call-taker answered"


async def test_a_call_whose_audio_never_arrived_is_flagged_for_call_back(intake: Intake) -> None:
    """audiosocket_refused: AUDIOSOCKET_SERVER pointed at a closed port; Asterisk drops the caller at once."""
    rec = Recorder()
    async with AmiReplayServer(AMI / "audiosocket_refused.txt", speed=SPEED) as server, \
            bridge_on(server, intake, rec) as bridge:
        bridge.expects_audio = True  # as when CallAudioRouter serves this bridge's audio
        await asyncio.wait_for(bridge.connected.wait(), 10)
        # The operator's global Setvar/Getvar, as captured (Channel: none in the VarSet event).
        await bridge.action("Setvar", Variable="AUDIOSOCKET_SERVER", Value="127.0.0.1:9093")
        assert (await bridge.action("Getvar", Variable="AUDIOSOCKET_SERVER"))["Value"] == "127.0.0.1:9093"
        await rec.wait_for("hungup")
        await bridge.action("Setvar", Variable="AUDIOSOCKET_SERVER", Value="127.0.0.1:9092")
    (report,) = await call_reports(intake)
    call = report["raw"]["call"]
    assert report["dialled_number"] == "114"
    assert call["channel_answered_at"] is not None and call["hangup_cause"] == 0
    assert call["audio_connected"] is False
    assert call["needs_callback"] is True and "audio never reached" in call["callback_reason"]


async def test_without_an_audio_door_a_call_no_one_answered_is_flagged_without_blaming_the_audio(
        intake: Intake) -> None:
    rec = Recorder()
    async with AmiReplayServer(AMI / "audiosocket_refused.txt", speed=SPEED, action_timeout=0.2) as server, \
            bridge_on(server, intake, rec):
        await rec.wait_for("hungup")
    (report,) = await call_reports(intake)
    call = report["raw"]["call"]
    assert call["needs_callback"] is True and call["callback_reason"] == "ended before a call-taker answered"


async def test_the_audiosocket_channel_driver_call_is_one_report_with_16k_audio(intake: Intake) -> None:
    rec = Recorder()
    model = default_model_dirs()["ko"]
    async with RecognizerPool(model, workers=1) as pool, \
            AmiReplayServer(AMI / "chan_audiosocket_dial.txt", speed=10) as ami, bridge_on(ami, intake, rec) as bridge:
        router = CallAudioRouter(intake, bridge, pool)
        async with AudioSocketServer(router.on_call, "127.0.0.1", 0) as audio:
            await rec.wait_for("audio")
            result = await stream_bin(CAPTURES / "chan_audiosocket_dial.bin", "127.0.0.1", audio.port, speed=4)
            for _ in range(200):
                (report,) = await call_reports(intake)
                if report["text"]:
                    break
                await asyncio.sleep(0.05)
        await rec.wait_for("hungup")
    # What went back to keep the call up is silence in the call's own format (16 kHz, 640-byte frames).
    assert result.received and {(f.kind, len(f.payload)) for f in result.received} == {(0x12, 640)}
    assert not any(any(f.payload) for f in result.received)
    (report,) = await call_reports(intake)  # the Dial()ed AudioSocket/ channel shares the Linkedid: one call
    assert report["dialled_number"] == "116"
    assert report["text"], "the 16 kHz frames reached no transcript"
    # Bridged with the AudioSocket channel, a machine: no call-taker spoke to the caller.
    assert report["raw"]["call"]["audio_connected"] is True and report["raw"]["call"]["needs_callback"] is True


async def test_an_operator_inspects_sets_redirects_and_hangs_up_a_live_call(intake: Intake) -> None:
    """ami_redirect_hangup: the captured client's actions, sent through the bridge in the same order."""
    rec = Recorder()
    async with AmiReplayServer(AMI / "ami_redirect_hangup.txt", speed=SPEED) as server, \
            bridge_on(server, intake, rec) as bridge:
        await rec.wait_for("ringing")
        for _ in range(4):  # the captured client polled CoreShowChannels while the call rang
            await bridge.action("CoreShowChannels")
        await rec.wait_for("audio")
        (linkedid,) = bridge.calls
        status = await bridge.action("Status", Channel=bridge.calls[linkedid].channel)
        assert any(m.get("Event") == "Status" for m in status)
        assert await bridge.get_var(linkedid, "INTAKE_UUID") == "f8779c49-4a1a-473a-9d07-f1b07f2fc117"
        assert await bridge.get_var(linkedid, "CALLERID(num)") == "15551230009"
        assert await bridge.get_var(linkedid, "NO_SUCH_VAR") is None
        await bridge.set_var(linkedid, "INTAKE_PRIORITY", "high")
        assert await bridge.get_var(linkedid, "INTAKE_PRIORITY") == "high"
        with pytest.raises(AmiActionError, match="No such channel"):
            await bridge.action("Getvar", Channel="PJSIP/nosuch-00000000", Variable="X")
        await bridge.transfer(linkedid, "fire")
        assert await bridge.get_var(linkedid, "INTAKE_UUID") == "f8779c49-4a1a-473a-9d07-f1b07f2fc117"
        await bridge.action("CoreShowChannels")
        await bridge.hangup(linkedid)
        await rec.wait_for("hungup")
        with pytest.raises(AmiActionError, match="No such channel"):  # the second Hangup, as captured
            await bridge.action("Hangup", Channel="PJSIP/sipp-00000009")
    (report,) = await call_reports(intake)
    call = report["raw"]["call"]
    assert call["transferred_to"] == "fire" and call["hangup_cause"] == 16
    assert [w for w, _, _ in rec.events].count("transferred") == 1


async def test_call_back_originates_and_is_kept_on_the_abandoned_calls_report(intake: Intake) -> None:
    from intake.core.model import ReportIn

    abandoned = await intake.ingest(ReportIn(channel="call", channel_ref="1795318930.1", received_at=intake.clock(),
                                             phone="15551230002", dialled_number="112", raw={"linkedid": "x"}))
    rec = Recorder()
    async with AmiReplayServer(AMI / "ami_originate.txt", speed=SPEED) as server, \
            bridge_on(server, intake, rec) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        channel_id = await bridge.call_back("15551230002", report_id=abandoned.report_id)
        for _ in range(3):
            await bridge.action("CoreShowChannels")
        assert (await bridge.action("Getvar", Channel="PJSIP/sipp-0000000a", Variable="ORIGINATED_BY")
                )["Value"] == "intake-test"
        await bridge.action("Hangup", Channel="PJSIP/sipp-0000000a")
        queued = await bridge.action("Originate", Channel="Local/300@intake", Application="Wait", Data="2")
        assert any(m.get("Event") == "OriginateResponse" for m in _as_list(queued))
        assert server.received_actions[-1]["async"] == "true"  # always Async, or panoramisk drops the link
    async with intake.store.read() as repo:
        row = await repo.report(abandoned.report_id)
    assert row is not None
    (attempt,) = row["raw"]["callbacks"]
    assert attempt["channel_id"] == channel_id and attempt["outcome"].startswith("answered")
    # The call-back leg lands in Exten s, then 114: it is our own call, never a new emergency report.
    assert [r["channel_ref"] for r in await call_reports(intake)] == ["1795318930.1"]
    assert "ringing" not in [w for w, _, _ in rec.events]


def _as_list(result: object) -> list[dict[str, str]]:
    return list(result) if isinstance(result, list) else [result]  # type: ignore[list-item]


async def test_an_action_while_disconnected_is_a_clear_error(intake: Intake) -> None:
    from intake.telephony.ami import AmiNotConnected

    bridge = AmiBridge(intake, port=1, secret="x")
    with pytest.raises(AmiNotConnected):
        await bridge.action("Ping")


async def test_a_core_restart_shutdown_event_is_followed_by_a_new_login(intake: Intake) -> None:
    """reconnect: `core restart now` sends Shutdown and closes; the bridge logs in again when Asterisk is back."""
    rec = Recorder()
    async with AmiReplayServer(AMI / "reconnect.txt", speed=4) as server, \
            bridge_on(server, intake, rec) as bridge:
        await asyncio.wait_for(bridge.connected.wait(), 10)
        await asyncio.wait_for(server.finished.wait(), 20)
        await asyncio.wait_for(_until_connections(bridge, 2), 20)
    assert server.logins >= 2
    assert await call_reports(intake) == []


async def _until_connections(bridge: AmiBridge, n: int) -> None:
    while not (bridge.connections >= n and bridge.connected.is_set()):  # noqa: ASYNC110 - observing the bridge
        await asyncio.sleep(0.02)


async def test_overlapping_calls_each_get_their_own_audio_and_transcript(intake: Intake) -> None:
    rec = Recorder()
    model = default_model_dirs()["ko"]
    async with RecognizerPool(model, workers=2) as pool, \
            AmiReplayServer(AMI / "overlapping_calls.txt", speed=4) as ami, bridge_on(ami, intake, rec) as bridge:
        router = CallAudioRouter(intake, bridge, pool)
        async with AudioSocketServer(router.on_call, "127.0.0.1", 0) as audio:
            await rec.wait_for("audio", "1795318937.2")
            await rec.wait_for("audio", "1795318939.3")
            await asyncio.gather(*(stream_bin(CAPTURES / f"overlapping_calls.call{n}.bin", "127.0.0.1", audio.port,
                                              speed=4) for n in (1, 2)))
            for _ in range(200):
                reports = await call_reports(intake)
                if len(reports) == 2 and all(r["text"] for r in reports):
                    break
                await asyncio.sleep(0.05)
        await rec.wait_for("hungup", "1795318937.2")
        await rec.wait_for("hungup", "1795318939.3")
    reports = await call_reports(intake)
    assert len(reports) == 2
    assert all(r["text"] for r in reports), [r["text"] for r in reports]
    assert all(r["raw"]["call"]["audio_connected"] for r in reports)
    assert len({r["raw"]["call"]["audio_uuid"] for r in reports}) == 2


@pytest.mark.parametrize(("calltaker_answered", "flagged"), [(True, False), (False, True)])
async def test_with_the_dialplans_audio_fork_a_call_a_person_answered_is_not_cut_off(
        intake: Intake, calltaker_answered: bool, flagged: bool) -> None:
    """[intake] forks the audio beside the queue: a failed fork loses the transcript, not the caller."""
    bridge = AmiBridge(intake, port=1, secret="x")
    bridge.expects_audio = True
    call = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "1795400000.1", "Linkedid": "1795400000.1",
            "Context": "intake", "Exten": "112", "CallerIDNum": "0912345678"}
    events = [
        {**call, "Event": "Newchannel", "ChannelState": "4"},
        {**call, "Event": "VarSet", "Variable": "INTAKE_UUID", "Value": "0b6c1f1e-5d55-4b6a-9d1e-3c1d2f0a9b8c"},
        {**call, "Event": "Newstate", "ChannelState": "6"},
        *([{**call, "Event": "AgentConnect", "MemberName": "ct-01", "Interface": "PJSIP/1001"}]
          if calltaker_answered else []),
        {**call, "Event": "Hangup", "Cause": "16", "Cause-txt": "Normal Clearing"},
    ]
    for event in events:
        await bridge.handle_event(event)
    (report,) = await call_reports(intake)
    assert report["raw"]["call"]["audio_connected"] is False
    assert report["raw"]["call"]["needs_callback"] is flagged


async def test_the_stream_says_whose_phone_rings_for_a_queued_call(intake: Intake) -> None:
    """app_queue's events (Asterisk 12+ field names): QueueCallerJoin, AgentCalled, AgentRingNoAnswer,
    AgentConnect; MemberName is the console user's name (queues.conf: member => PJSIP/1001,0,lan)."""
    bridge = AmiBridge(intake, port=1, secret="x")
    call = {"Channel": "PJSIP/trunk-00000002", "Uniqueid": "1795400100.4", "Linkedid": "1795400100.4",
            "Context": "intake", "Exten": "112", "CallerIDNum": "0912345678"}
    agent = {"Queue": "calltakers"}
    for event in [
        {**call, "Event": "Newchannel", "ChannelState": "4"},
        {**call, "Event": "Newstate", "ChannelState": "6"},
        {**call, **agent, "Event": "QueueCallerJoin", "Position": "1", "Count": "1"},
        {**call, **agent, "Event": "AgentCalled", "MemberName": "lan", "Interface": "PJSIP/1001",
         "DestChannel": "PJSIP/1001-00000003", "DestUniqueid": "1795400101.5", "DestLinkedid": "1795400100.4"},
        {**call, **agent, "Event": "AgentRingNoAnswer", "MemberName": "lan", "Interface": "PJSIP/1001",
         "RingTime": "20"},
        {**call, **agent, "Event": "AgentCalled", "MemberName": "hoa", "Interface": "PJSIP/1002"},
        {**call, **agent, "Event": "AgentConnect", "MemberName": "hoa", "Interface": "PJSIP/1002",
         "RingTime": "3", "HoldTime": "24"},
        {**call, "Event": "Hangup", "Cause": "16", "Cause-txt": "Normal Clearing"},
    ]:
        await bridge.handle_event(event)
    async with intake.store.read() as repo:
        offers = [o["payload"] for o in await repo.outbox_after(0) if o["kind"] == "call.offered"]
    assert [(o["member"], o["ringing"], o["answered"]) for o in offers] == [
        ("lan", True, False), ("lan", False, False), ("hoa", True, False), ("hoa", False, True)]
    assert {o["linkedid"] for o in offers} == {"1795400100.4"} and offers[0]["queue"] == "calltakers"
    (report,) = await call_reports(intake)
    assert all(o["report_id"] == report["id"] for o in offers)
    assert report["raw"]["call"]["queue"] == "calltakers" and report["raw"]["call"]["answered_by"] == "hoa"


async def test_audio_that_arrives_long_before_the_bridge_knows_its_call_still_pairs(intake: Intake) -> None:
    """A burst puts the bridge seconds behind Asterisk: the call's AudioSocket connection (its UUID first)
    arrives before the bridge has handled the call's VarSet INTAKE_UUID. The audio waits for its call,
    however long, instead of becoming a report of its own after a fixed 3 s."""
    bridge = AmiBridge(intake, port=1, secret="x")
    model = default_model_dirs()["ko"]
    call = {"Channel": "PJSIP/trunk-00000007", "Uniqueid": "1795400200.7", "Linkedid": "1795400200.7",
            "Context": "intake", "Exten": "112", "CallerIDNum": "0912345678"}
    async with RecognizerPool(model, workers=1) as pool:
        router = CallAudioRouter(intake, bridge, pool)
        async with AudioSocketServer(router.on_call, "127.0.0.1", 0) as audio:
            replay = asyncio.ensure_future(stream_bin(CAPTURES / "normal_call.bin", "127.0.0.1", audio.port,
                                                      speed=2))
            await asyncio.sleep(4)  # the bridge is this far behind
            for event in [{**call, "Event": "Newchannel", "ChannelState": "4"},
                          {**call, "Event": "VarSet", "Variable": "INTAKE_UUID",
                           "Value": "6ba6f33f-0e04-420c-a041-935e3b8eb398"}]:
                await bridge.handle_event(event)
            await replay
            for _ in range(200):
                report = (await call_reports(intake))[0]
                if report["text"]:
                    break
                await asyncio.sleep(0.05)
    reports = await call_reports(intake)
    assert [r["channel_ref"] for r in reports] == ["1795400200.7"], "the audio became a report of its own"
    assert reports[0]["text"] and bridge.calls["1795400200.7"].audio_connected
