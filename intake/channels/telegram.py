"""Telegram bot door: Bot API webhook updates in (POST /webhooks/telegram), replies out through sendMessage.

Configured by INTAKE_TELEGRAM_BOT_TOKEN and INTAKE_TELEGRAM_WEBHOOK_SECRET (the `secret_token` given to
setWebhook, which Telegram sends back in X-Telegram-Bot-Api-Secret-Token); INTAKE_TELEGRAM_API_URL points
at another Bot API server (a local one, or a test's fake). Updates are parsed with python-telegram-bot's
`Update.de_json`; its objects do not check types, so every field we use is checked here.

channel_ref is "<chat_id>:<message_id>": Telegram re-sends an update whose webhook call failed, and a
live location's new positions come as `edited_message` updates carrying the same message id.

Voice notes (OGG/Opus) are kept as attachments by file_id and transcribed after the reply by
intake/channels/voice.py, which fetches them through getFile (`file_url`); photos are kept by file_id
too: the console gets them through the server (intake/web/media.py), which uses getFile.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from telegram import (
    Bot,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import MessageEntityType
from telegram.error import BadRequest, TelegramError
from telegram.request import HTTPXRequest

from intake.channels.chat import (
    DEFAULT_ACCURACY_M,
    TEXTS,
    ChatEvent,
    Conversation,
    Kind,
    Reply,
    VoiceSink,
    compose,
    missing_settings,
)
from intake.channels.voice import MAX_BYTES, AudioUnavailable
from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized, json_object

log = logging.getLogger(__name__)

NAME = "telegram"
DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SETTINGS = ("telegram_bot_token", "telegram_webhook_secret")
#: A reply must not hold the webhook answer long: Telegram waits, but queues the chat's next updates.
REPLY_TIMEOUT_S = 5.0

#: Update kinds that carry no report (member changes, button presses, polls, ...): 200, nothing stored.
IGNORED_UPDATES = frozenset(str(t) for t in Update.ALL_TYPES) - {"message", "edited_message"}

#: Files kept by reference: message attribute → attachment type. Voice is listed apart (transcription note).
_FILES = ("video", "video_note", "audio", "document")
#: A voice note's `transcribed` stays as parsed: the outcome of transcription goes to the report's raw["voice"].
VOICE_NOTE = "OGG/Opus voice note: transcribed after the reply; the outcome is in the report's raw.voice"


def missing(settings: Settings) -> list[str]:
    return missing_settings(settings, SETTINGS)


def verify(inbound: Inbound, secret: str) -> None:
    given = inbound.headers.get(SECRET_HEADER)
    if not given:
        raise Unauthorized(f"{SECRET_HEADER} is missing: set the webhook with secret_token", field=SECRET_HEADER)
    if not hmac.compare_digest(given.encode(), secret.encode()):
        log.warning("Telegram webhook with a wrong secret token")
        raise Forbidden(f"{SECRET_HEADER} does not match the configured webhook secret", field=SECRET_HEADER)


def _body(body: bytes) -> dict[str, Any]:
    return json_object(body, "a Telegram update")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{name} must be an integer", field=name)
    return int(value)


def _coordinate(value: Any, name: str, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"{name} must be a number", field=name)
    if not -limit <= value <= limit:
        raise PayloadError(f"{name} {value} is outside -{limit:g}..{limit:g}", field=name)
    return float(value)


def _location(message: Message, where: str) -> Location | None:
    venue = message.venue
    loc = venue.location if venue is not None else message.location
    if loc is None:
        return None
    lat = _coordinate(loc.latitude, f"{where}.location.latitude", 90)
    lon = _coordinate(loc.longitude, f"{where}.location.longitude", 180)
    accuracy = DEFAULT_ACCURACY_M
    if loc.horizontal_accuracy is not None:
        # Telegram gives 0..1500 m; a 0 means "not measured", not "exact".
        given = _coordinate(loc.horizontal_accuracy, f"{where}.location.horizontal_accuracy", 1500)
        accuracy = given if given > 0 else DEFAULT_ACCURACY_M
    label = None
    if venue is not None:
        label = ", ".join(p for p in (venue.title, venue.address) if isinstance(p, str) and p) or None
    observed = message.edit_date or message.date
    return Location(lat, lon, accuracy, LocationSource.GPS, observed_at=observed, label=label)


def _attachments(message: Message, raw_message: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    if message.photo:
        best = message.photo[-1]  # Telegram lists the sizes smallest first
        out.append({"type": "photo", "telegram_file_id": best.file_id, "file_unique_id": best.file_unique_id,
                    "width": best.width, "height": best.height, "file_size": best.file_size})
    if message.voice is not None:
        v = message.voice
        # The duration is read from the wire: PTB 22 warns on `Voice.duration` (it becomes a timedelta).
        duration = (raw_message.get("voice") or {}).get("duration")
        out.append({"type": "voice", "telegram_file_id": v.file_id, "file_unique_id": v.file_unique_id,
                    "duration_s": duration if isinstance(duration, int) else None,
                    "mime_type": v.mime_type or "audio/ogg", "file_size": v.file_size,
                    "transcribed": False, "note": VOICE_NOTE})
    for kind in _FILES:
        f = getattr(message, kind)
        if f is not None:
            out.append({"type": kind, "telegram_file_id": f.file_id, "file_unique_id": f.file_unique_id,
                        "mime_type": getattr(f, "mime_type", None), "file_size": f.file_size})
    for a in out:
        if not isinstance(a["telegram_file_id"], str) or not a["telegram_file_id"]:
            raise PayloadError(f"{a['type']}.file_id must be a string", field=f"message.{a['type']}.file_id")
    return tuple(out)


def _is_command(message: Message) -> bool:
    return bool(message.text and message.text.startswith("/") and any(
        e.type == MessageEntityType.BOT_COMMAND and e.offset == 0 for e in message.entities))


def _events(message: Message, raw: dict[str, Any], inbound: Inbound, *, edited: bool) -> list[ChatEvent]:
    where = "edited_message" if edited else "message"
    message_id = _int(message.message_id, f"{where}.message_id")
    chat = message.chat  # de_json leaves a missing chat as None, whatever the type says
    chat_id = _int(chat.id if chat is not None else None, f"{where}.chat.id")
    user = message.from_user
    text = next((t for t in (message.text, message.caption) if isinstance(t, str)), "")
    report = ReportIn(
        channel=NAME,
        channel_ref=f"{chat_id}:{message_id}",
        received_at=inbound.received_at,
        reporter_id=str(chat_id),
        reporter_name=user.full_name if user is not None and isinstance(user.first_name, str) else None,
        language=user.language_code if user is not None and isinstance(user.language_code, str) else None,
        raw=raw,
    )
    location = _location(message, where)
    if edited:
        if location is None:
            log.info("Telegram: edited message %s ignored (only live location edits are taken)", report.channel_ref)
            return []
        return [ChatEvent(Kind.MOVE, replace(report, location=location))]
    if _is_command(message):
        return [ChatEvent(Kind.HELP, report)]
    attachments = _attachments(message, raw.get(where) or {})
    if not text.strip() and location is None and not attachments:
        log.info("Telegram: message %s carries nothing to report (sticker, contact, ...)", report.channel_ref)
        return []
    return [ChatEvent(Kind.MESSAGE, replace(report, text=text, location=location, attachments=attachments))]


def parse(inbound: Inbound, bot: Bot | None = None) -> list[ChatEvent]:
    """One update → at most one event; [] for updates that carry no report."""
    data = _body(inbound.body)
    _int(data.get("update_id"), "update_id")
    try:
        update = Update.de_json(data, bot)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise PayloadError(f"not a Telegram update: {exc!r}") from exc
    if update.message is not None:
        return _events(update.message, data, inbound, edited=False)
    if update.edited_message is not None:
        return _events(update.edited_message, data, inbound, edited=True)
    kinds = sorted(set(data) - {"update_id"})
    if not set(kinds) <= IGNORED_UPDATES:
        log.warning("Telegram: update %s of an unknown kind %s ignored", data["update_id"], kinds)
    return []


def _markup(reply: Reply) -> ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    if reply.ask_location:
        button = KeyboardButton(TEXTS[reply.language]["location_button"], request_location=True)
        return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    if reply.location_taken:
        return ReplyKeyboardRemove()
    return None


class TelegramDoor:
    """The configured door: verify, parse, take each message into the conversation, reply."""

    name = NAME

    def __init__(self, intake: Intake, *, token: str, secret: str, api_url: str = DEFAULT_API_URL) -> None:
        self.secret = secret
        self.conversation = Conversation(intake)
        self.voice: VoiceSink | None = None  # set by voice.attach when transcription runs
        api = api_url.rstrip("/")
        self._requests = (
            HTTPXRequest(connection_pool_size=8, connect_timeout=REPLY_TIMEOUT_S, read_timeout=REPLY_TIMEOUT_S,
                         write_timeout=REPLY_TIMEOUT_S, pool_timeout=REPLY_TIMEOUT_S),
            HTTPXRequest(connection_pool_size=1),  # getUpdates: unused in webhook mode, but Bot owns one
        )
        self.bot = Bot(token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot",
                       request=self._requests[0], get_updates_request=self._requests[1])

    @classmethod
    def from_settings(cls, settings: Settings, intake: Intake) -> TelegramDoor:
        extra = settings.extra
        return cls(intake, token=extra["telegram_bot_token"], secret=extra["telegram_webhook_secret"],
                   api_url=extra.get("telegram_api_url") or DEFAULT_API_URL)

    async def __aenter__(self) -> TelegramDoor:
        # Not bot.initialize(): it calls getMe, and the door must start even while Telegram is unreachable.
        for r in self._requests:
            await r.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for r in self._requests:
            await r.shutdown()

    async def handle(self, inbound: Inbound) -> list[dict[str, Any]]:
        verify(inbound, self.secret)
        done = []
        for event in parse(inbound, self.bot):
            taken = await self.conversation.take(event)  # stored before anything is said to the reporter
            done.append(taken.as_dict())
            voice = self.voice
            reply = compose(event, taken, transcribing=voice is not None and voice.available)
            if reply is not None and event.report.reporter_id is not None:
                await self.send(int(event.report.reporter_id), reply)
            if voice is not None:
                voice.submit(event, taken)  # stored and answered: now its voice notes may be transcribed
        return done

    async def file_url(self, attachment: Mapping[str, Any]) -> str:
        """Where a file the reporter sent (voice note, photo) can be downloaded: getFile gives
        {api}/file/bot<token>/<file_path>."""
        file_id = attachment.get("telegram_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise AudioUnavailable("the attachment has no telegram_file_id", retry=False)
        try:
            file = await self.bot.get_file(file_id)
        except BadRequest as exc:  # a wrong file_id, a file over 20 MB: asking again will not help
            raise AudioUnavailable(f"Telegram getFile refused the file: {exc.message}", retry=False) from exc
        except TelegramError as exc:
            raise AudioUnavailable(f"Telegram getFile failed: {exc.message}", retry=True) from exc
        if file.file_size is not None and file.file_size > MAX_BYTES:
            raise AudioUnavailable(f"the file is {file.file_size} bytes, over the {MAX_BYTES}-byte limit",
                                   retry=False)
        if not file.file_path or not file.file_path.startswith(("http://", "https://")):
            raise AudioUnavailable("Telegram getFile gave no downloadable file_path", retry=True)
        return file.file_path

    async def notify(self, reporter_id: str, reply: Reply) -> bool:
        return await self.send(int(reporter_id), reply)

    async def send(self, chat_id: int, reply: Reply) -> bool:
        """Send a reply; a failure is logged, never raised: the report is stored whatever Telegram says."""
        try:
            await self.bot.send_message(chat_id=chat_id, text=reply.text, reply_markup=_markup(reply))
        except TelegramError as exc:
            log.warning("Telegram: reply to chat %s failed (the report is stored): %s", chat_id, exc)
            return False
        return True
