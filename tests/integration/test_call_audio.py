"""A replayed call, end to end: AMI events make the report, AudioSocket audio grows it through Vosk."""

from __future__ import annotations

import asyncio

from intake.pipeline import Intake
from intake.telephony.ami_replay import AmiReplayServer
from intake.telephony.asr import RecognizerPool, default_model_dirs
from intake.telephony.audiosocket import AudioSocketServer, stream_bin
from intake.telephony.calls import CallAudioRouter
from tests.conftest import SHARED
from tests.integration.test_ami import AMI, Recorder, bridge_on, call_reports

CAPTURES = SHARED / "fixtures" / "asterisk" / "audiosocket"


async def test_normal_call_audio_becomes_the_call_reports_transcript(intake: Intake) -> None:
    rec = Recorder()
    model = default_model_dirs()["ko"]
    async with RecognizerPool(model, workers=1) as pool, \
            AmiReplayServer(AMI / "normal_call.txt", speed=10) as ami, bridge_on(ami, intake, rec) as bridge:
        router = CallAudioRouter(intake, bridge, pool)
        async with AudioSocketServer(router.on_call, "127.0.0.1", 0) as audio:
            await rec.wait_for("audio")
            await stream_bin(CAPTURES / "normal_call.bin", "127.0.0.1", audio.port, speed=4)
            for _ in range(200):  # the final result lands just after the connection closes
                (report,) = await call_reports(intake)
                if report["text"]:
                    break
                await asyncio.sleep(0.05)
        await rec.wait_for("hungup")
    (report,) = await call_reports(intake)
    assert report["channel_ref"] == "1795318919.0"
    assert report["text"], "no transcript reached the call's report"
    assert report["raw"]["call"]["hangup_cause"] == 0  # AMI updates and transcript updates both landed
    async with intake.store.read() as repo:
        kinds = [o["kind"] for o in await repo.outbox_after(0)]
    assert "call.ringing" in kinds and "call.transcript" in kinds


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_intake_serve_runs_the_bridge_and_the_audio_door_from_settings(store: object) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from intake.config import Settings
    from intake.web.app import INTAKE, create_app

    audio_port = _free_port()
    async with AmiReplayServer(AMI / "normal_call.txt", speed=10) as ami:
        settings = Settings(ami_port=ami.port, ami_secret="intake-secret", audiosocket_port=audio_port,
                            asr_workers=1)
        app = create_app(settings, store=store)  # type: ignore[arg-type]
        async with TestClient(TestServer(app)):
            intake = app[INTAKE]
            for _ in range(200):
                if await call_reports(intake):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the VarSet with the call's audio UUID
            await stream_bin(CAPTURES / "normal_call.bin", "127.0.0.1", audio_port, speed=4)
            for _ in range(200):
                (report,) = await call_reports(intake)
                if report["text"]:
                    break
                await asyncio.sleep(0.05)
    assert report["channel_ref"] == "1795318919.0" and report["text"]
