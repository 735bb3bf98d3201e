"""Zalo Official Account door: OA webhook events in (POST /webhooks/zalo), replies out through the OA API.

Configured by INTAKE_ZALO_APP_ID, INTAKE_ZALO_OA_SECRET (the OA secret key of the app-OA link, not the
app secret) and INTAKE_ZALO_ACCESS_TOKEN (an OA access token for the consultation-message API; Zalo's
tokens expire, and refreshing them is left to the operator: an expired one is logged as a failed reply);
INTAKE_ZALO_API_URL points at another API host (a test's fake).

Zalo signs each event: X-ZEvent-Signature is "mac=" + hex SHA-256 (plain, not HMAC) of
app_id + the raw body + the payload's "timestamp" + the OA secret key.

channel_ref is message.msg_id. Zalo re-sends an event it got no 200 for (up to about an hour later).

Voice messages (AAC, AMR) are kept by their URL and transcribed after the reply by
intake/channels/voice.py, which downloads them from that URL (`file_url`: https only, or plain http
to this machine, for a local proxy or a test).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from intake.channels.chat import (
    DEFAULT_ACCURACY_M,
    ChatEvent,
    Conversation,
    Kind,
    Reply,
    VoiceSink,
    compose,
    missing_settings,
)
from intake.channels.voice import AudioUnavailable
from intake.config import Settings
from intake.core.model import Location, LocationSource, ReportIn
from intake.pipeline import Intake
from intake.types import Forbidden, Inbound, PayloadError, Unauthorized, json_object

log = logging.getLogger(__name__)

NAME = "zalo"
DEFAULT_API_URL = "https://openapi.zalo.me"
SIGNATURE_HEADER = "X-ZEvent-Signature"
SETTINGS = ("zalo_app_id", "zalo_oa_secret", "zalo_access_token")
SEND_PATH = "/v3.0/oa/message/cs"  # a consultation message: free within 48 h of the user's last message
#: Zalo wants the webhook answered within 2 s, and the reply is sent before answering.
REPLY_TIMEOUT_S = 1.5

#: A user's message with something to report. Attachment type → what we keep of it.
MESSAGE_EVENTS = frozenset({"user_send_text", "user_send_location", "user_send_image", "user_send_audio",
                            "user_send_video", "user_send_file"})
#: Events Zalo sends that carry no report: 200, nothing stored.
IGNORED_EVENTS = frozenset({
    "follow", "unfollow", "user_seen_message", "user_received_message", "user_send_sticker", "user_send_gif",
    "user_send_link", "user_send_business_card", "user_submit_info", "user_click_chatnow", "user_reacted_message",
    "user_click_button", "user_click_link", "oa_send_text", "oa_send_image", "oa_send_gif", "oa_send_list",
    "oa_send_file", "oa_send_sticker", "oa_reacted_message", "oa_send_template", "add_user_to_tag",
    "change_oa_daily_quota", "change_oa_template_tags", "change_template_quality", "change_template_quota",
    "change_template_status", "update_user_info", "user_received_zns_message", "shop_has_order",
    "anonymous_send_text", "anonymous_send_image", "anonymous_send_file", "anonymous_send_sticker",
    "oa_call_user", "user_call_oa", "widget_interaction_accepted", "widget_failed_to_sync_user_external_id",
    "permission_revoked", "extension_purchased", "user_feedback",
})
#: Audio Zalo records is AAC/AMR: kept by URL, transcribed after the reply (`transcribed` stays as parsed;
#: the outcome is kept in the report's raw["voice"]).
_VOICE_NOTE = "Zalo voice message: transcribed after the reply; the outcome is in the report's raw.voice"


def missing(settings: Settings) -> list[str]:
    return missing_settings(settings, SETTINGS)


def signature(app_id: str, body: bytes, timestamp: str, oa_secret: str) -> str:
    digest = hashlib.sha256(app_id.encode() + body + timestamp.encode() + oa_secret.encode()).hexdigest()
    return f"mac={digest}"


def _body(body: bytes) -> dict[str, Any]:
    return json_object(body, "a Zalo event")


def _timestamp(data: dict[str, Any]) -> str:
    value = data.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).isdigit():
        raise PayloadError("timestamp (milliseconds, part of the signature) is missing or not a number",
                           field="timestamp")
    return str(value)


def verify(inbound: Inbound, app_id: str, oa_secret: str) -> None:
    given = inbound.headers.get(SIGNATURE_HEADER)
    if not given:
        raise Unauthorized(f"{SIGNATURE_HEADER} is missing", field=SIGNATURE_HEADER)
    expected = signature(app_id, inbound.body, _timestamp(_body(inbound.body)), oa_secret)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        log.warning("Zalo webhook with a wrong signature from %s", inbound.remote)
        raise Forbidden(f"{SIGNATURE_HEADER} does not match this event", field=SIGNATURE_HEADER)


def _string(obj: Any, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{path} is missing", field=path)
    return value


def _coordinate(value: Any, name: str, limit: float) -> float:
    # Zalo sends coordinates as strings ("21.0285"); accept numbers too.
    try:
        number = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise PayloadError(f"{name} must be a number within -{limit:g}..{limit:g}, got {value!r}", field=name)
    return number


def _location(attachment: dict[str, Any], when: datetime) -> Location:
    coords = (attachment.get("payload") or {}).get("coordinates")
    if not isinstance(coords, dict):
        raise PayloadError("a location needs payload.coordinates", field="message.attachments")
    lat = _coordinate(coords.get("latitude"), "message.attachments.payload.coordinates.latitude", 90)
    lon = _coordinate(coords.get("longitude"), "message.attachments.payload.coordinates.longitude", 180)
    return Location(lat, lon, DEFAULT_ACCURACY_M, LocationSource.GPS, observed_at=when)


def _media(attachment: dict[str, Any]) -> dict[str, Any]:
    kind = attachment.get("type")
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    url = payload.get("url")
    if not isinstance(kind, str) or not isinstance(url, str) or not url:
        raise PayloadError("an attachment needs a type and payload.url", field="message.attachments")
    out: dict[str, Any] = {"type": kind, "url": url}
    for key in ("thumbnail", "name", "size", "checksum", "description"):
        value = payload.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            out[key] = value
    if kind in ("audio", "voice"):
        out.update(transcribed=False, note=_VOICE_NOTE)
    return out


def parse(inbound: Inbound) -> list[ChatEvent]:
    data = _body(inbound.body)
    event = data.get("event_name")
    if not isinstance(event, str) or not event:
        raise PayloadError("event_name is missing", field="event_name")
    if event not in MESSAGE_EVENTS:
        if event not in IGNORED_EVENTS:
            log.warning("Zalo: unknown event %r ignored", event)
        return []
    user_id = _string(data, "sender.id")
    msg_id = _string(data, "message.msg_id")
    message = data["message"]
    attachments = message.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise PayloadError("message.attachments must be a list of objects", field="message.attachments")
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    when = datetime.fromtimestamp(int(_timestamp(data)) / 1000, UTC)
    location = None
    media: list[dict[str, Any]] = []
    if event == "user_send_location":
        if not attachments:
            raise PayloadError("user_send_location without an attachment", field="message.attachments")
        location = _location(attachments[0], when)
        text = ""  # Zalo may fill it with the place's name: not the reporter's words
    elif event != "user_send_text":
        if not attachments:
            raise PayloadError(f"{event} without an attachment", field="message.attachments")
        media = [_media(a) for a in attachments]
    if event == "user_send_text" and not text.strip():
        raise PayloadError("user_send_text without text", field="message.text")
    report = ReportIn(
        channel=NAME, channel_ref=msg_id, received_at=inbound.received_at, text=text, reporter_id=user_id,
        location=location, attachments=tuple(media), raw=data)
    return [ChatEvent(Kind.MESSAGE, report)]


class ZaloDoor:
    name = NAME

    def __init__(self, intake: Intake, *, app_id: str, oa_secret: str, access_token: str,
                 api_url: str = DEFAULT_API_URL) -> None:
        self.app_id = app_id
        self.oa_secret = oa_secret
        self.access_token = access_token
        self.send_url = api_url.rstrip("/") + SEND_PATH
        self.conversation = Conversation(intake)
        self.voice: VoiceSink | None = None  # set by voice.attach when transcription runs
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, intake: Intake) -> ZaloDoor:
        extra = settings.extra
        return cls(intake, app_id=extra["zalo_app_id"], oa_secret=extra["zalo_oa_secret"],
                   access_token=extra["zalo_access_token"], api_url=extra.get("zalo_api_url") or DEFAULT_API_URL)

    async def __aenter__(self) -> ZaloDoor:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, inbound: Inbound) -> list[dict[str, Any]]:
        verify(inbound, self.app_id, self.oa_secret)
        done = []
        for event in parse(inbound):
            taken = await self.conversation.take(event)  # stored before anything is said to the reporter
            done.append(taken.as_dict())
            voice = self.voice
            reply = compose(event, taken, transcribing=voice is not None and voice.available)
            if reply is not None and event.report.reporter_id is not None:
                await self.send(event.report.reporter_id, reply)
            if voice is not None:
                voice.submit(event, taken)  # stored and answered: now its voice message may be transcribed
        return done

    async def file_url(self, attachment: Mapping[str, Any]) -> str:
        """The attachment's own URL (Zalo's CDN), over https; plain http only to this machine."""
        url = attachment.get("url")
        if not isinstance(url, str) or not url:
            raise AudioUnavailable("the attachment has no url", retry=False)
        parsed = urlsplit(url)
        if parsed.scheme == "https" or (parsed.scheme == "http" and _loopback(parsed.hostname)):
            return url
        raise AudioUnavailable(f"refusing to download audio over {parsed.scheme or 'no scheme'}: https only",
                               retry=False)

    async def notify(self, reporter_id: str, reply: Reply) -> bool:
        return await self.send(reporter_id, reply)

    async def send(self, user_id: str, reply: Reply) -> bool:
        """A consultation text message; failures are logged, never raised (the report is already stored)."""
        if self._session is None:
            raise RuntimeError("ZaloDoor is used outside `async with`")
        body = {"recipient": {"user_id": user_id}, "message": {"text": reply.text}}
        try:
            async with self._session.post(self.send_url, json=body, headers={"access_token": self.access_token}) as r:
                answer = await r.json(content_type=None) if r.status == 200 else None
                # Zalo answers errors with HTTP 200 and a negative "error" (-216: the access token is invalid).
                if not isinstance(answer, dict) or answer.get("error") != 0:
                    log.warning("Zalo: reply to user %s failed (the report is stored): HTTP %s %s",
                                user_id, r.status, answer)
                    return False
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("Zalo: reply to user %s failed (the report is stored): %r", user_id, exc)
            return False
        return True


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
