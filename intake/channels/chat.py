"""The short conversation a chat door (Telegram, Zalo) keeps with a reporter.

People in a chat say things in pieces: "cháy ở 12 Hàng Bạc", then a shared location,
then a photo. Each piece arriving on its own would open its own report, and the
first one would stay without a position. So a piece with no words of its own (a
location, a photo, a voice note) joins the chat's most recent report of the last
few minutes — a location only joins a report that has no position from the
reporter's device yet — through `Intake.update_report`, which walks the road
again (classify, locate, match). Anything with words is a report of its own.

Telegram's live location sends new positions of a message already shared: those
MOVE the report that holds that message, and never create one.

A retried delivery changes nothing: a message that is its own report is found by
`(channel, channel_ref)`, one that joined another report by the ref kept in that
report's `raw.followups`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from intake.config import Settings
from intake.core.model import LocationSource, Outcome, ReportIn
from intake.pipeline import IngestResult, Intake
from intake.types import Inbound

log = logging.getLogger(__name__)

#: How long a chat's report stays open to pieces sent after it.
CHAT_WINDOW = timedelta(minutes=10)
#: Radius given to a shared position when the app sends none: a phone's GNSS fix outdoors.
DEFAULT_ACCURACY_M = 50.0
#: Recent reports of a chat looked at when placing a piece (a chat rarely has more within the window).
RECENT_REPORTS = 20

#: Positions that came from the reporter's device or a person: nothing to ask for once one is there.
#: A position read from the text (ADDRESS) is only as good as the gazetteer: still ask for the device's.
_FIX_SOURCES = frozenset({
    LocationSource.GPS, LocationSource.CALLTAKER, LocationSource.AML, LocationSource.PIDF_LO,
    LocationSource.FACILITY,
})


def has_fix(location_source: str | None) -> bool:
    return location_source is not None and location_source in _FIX_SOURCES


class Kind(enum.StrEnum):
    MESSAGE = "message"  # something the reporter sent: a report, or a piece of the chat's open report
    MOVE = "move"  # a new position of a location already shared (Telegram live location)
    HELP = "help"  # /start, /help: no report, a reply explaining how to report


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """What a chat door parsed from one delivery. `report.reporter_id` is where replies go."""

    kind: Kind
    report: ReportIn


class Action(enum.StrEnum):
    CREATED = "created"  # a new report
    JOINED = "joined"  # the piece grew the chat's open report
    MOVED = "moved"  # a live location moved the report holding it
    RETRIED = "retried"  # this delivery was taken before: nothing changed
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Taken:
    action: Action
    report_id: int | None = None
    incident_id: int | None = None
    location_source: str | None = None  # of the report, after this message

    @property
    def has_fix(self) -> bool:
        return has_fix(self.location_source)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "report_id": self.report_id, "incident_id": self.incident_id}


def _taken(action: Action, result: IngestResult) -> Taken:
    source = result.location["source"] if result.location else None
    return Taken(action, result.report_id, result.incident_id, source)


def _followups(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = row.get("raw") or {}
    items = raw.get("followups") if isinstance(raw, dict) else None
    return list(items) if isinstance(items, list) else []


class Conversation:
    """Places each chat message: a new report, a piece of the chat's open report, or a move."""

    def __init__(self, intake: Intake, window: timedelta = CHAT_WINDOW) -> None:
        self.intake = intake
        self.window = window
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def _chat_lock(self, key: str) -> AsyncIterator[None]:
        """One message of a chat at a time in this process, so a location cannot overtake its text."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    async def take(self, event: ChatEvent) -> Taken:
        if event.kind is Kind.HELP:
            return Taken(Action.HELP)
        report = event.report
        # The reporter key `prepare` gives a chat report (no phone number): channel + chat id.
        key = f"{report.channel}:{report.reporter_id}"
        async with self._chat_lock(key):
            async with self.intake.store.read() as repo:
                own = await repo.report_by_ref(report.channel, report.channel_ref)
                recent = await repo.reports_of_reporter(key, RECENT_REPORTS)
            holder = own or next(
                (r for r in recent if any(f.get("ref") == report.channel_ref for f in _followups(r))), None)
            if event.kind is Kind.MOVE and holder is not None and report.location is not None:
                result = await self.intake.update_report(holder["id"], location=report.location,
                                                         location_supersedes=True)
                return _taken(Action.MOVED, result)
            if own is None and holder is not None:
                return Taken(Action.RETRIED, holder["id"], holder["incident_id"], holder["location_source"])
            if own is None and not report.text.strip():
                target = self._open_report(recent, wants_fix=report.location is not None)
                if target is not None:
                    followups = [*_followups(target), {"ref": report.channel_ref, "raw": report.raw}]
                    result = await self.intake.update_report(
                        target["id"], location=report.location, attachments=report.attachments,
                        raw_patch={"followups": followups})
                    return _taken(Action.JOINED, result)
            # A report of its own (a retry of one comes back from ingest as a duplicate).
            result = await self.intake.ingest(report)
            return _taken(Action.RETRIED if result.outcome is Outcome.DUPLICATE else Action.CREATED, result)

    def _open_report(self, recent: Sequence[dict[str, Any]], *, wants_fix: bool) -> dict[str, Any] | None:
        since = self.intake.clock() - self.window
        for row in recent:  # newest first
            if row["received_at"] < since:
                return None
            if not wants_fix or not has_fix(row["location_source"]):
                return row
        return None


# --- replies ---------------------------------------------------------------------------------

#: What the reporter reads, per language; `{incident}` is the incident number the hotline uses.
TEXTS: dict[str, dict[str, str]] = {
    "vi": {
        "received": "Đã nhận tin báo của bạn. Mã sự cố: #{incident}.",
        "joined": "Đã bổ sung vào tin báo của bạn (mã sự cố #{incident}).",
        "location_joined": "Đã nhận vị trí của bạn cho sự cố #{incident}. Cảm ơn bạn.",
        "ask_location": "Vui lòng gửi vị trí hiện tại của bạn để lực lượng cứu hộ đến nhanh nhất.",
        "voice_kept": "Tin nhắn thoại đã được lưu nhưng chưa thể tự động chuyển thành chữ; "
                      "nếu có thể, hãy nhắn thêm bằng chữ.",
        "voice_transcribing": "Tin nhắn thoại của bạn đang được chuyển thành chữ.",
        "voice_transcribed": "Đã chuyển lời nhắn thoại thành chữ (sự cố #{incident}): “{text}”",
        "help": "Đây là kênh báo tin khẩn cấp. Hãy nhắn ngắn gọn sự việc (cháy, tai nạn, cần cấp cứu, ...) "
                "và gửi vị trí của bạn. Nguy hiểm đến tính mạng: gọi ngay 114 (cứu hỏa), 113 (công an), "
                "115 (cấp cứu).",
        "location_button": "📍 Gửi vị trí của tôi",
    },
    "en": {
        "received": "Your report was received. Incident number: #{incident}.",
        "joined": "Added to your report (incident #{incident}).",
        "location_joined": "Your location was received for incident #{incident}. Thank you.",
        "ask_location": "Please send your current location so that responders can reach you quickly.",
        "voice_kept": "Your voice message was kept but could not be transcribed automatically; "
                      "if you can, please also write what is happening.",
        "voice_transcribing": "Your voice message is being transcribed.",
        "voice_transcribed": "Your voice message was transcribed (incident #{incident}): “{text}”",
        "help": "This is an emergency reporting channel. Briefly write what is happening (fire, accident, "
                "someone needs an ambulance, ...) and send your location. If a life is in danger call 114 (fire), "
                "113 (police) or 115 (ambulance) now.",
        "location_button": "📍 Send my location",
    },
}


def reply_language(language: str | None) -> str:
    """English for reporters whose app speaks English, Vietnamese for everyone else."""
    return "en" if language and language.lower().split("-")[0] == "en" else "vi"


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    language: str
    ask_location: bool = False  # offer a "send my location" button where the chat can
    location_taken: bool = False  # the location arrived: the button can go


def compose(event: ChatEvent, taken: Taken, *, transcribing: bool = False) -> Reply | None:
    """The answer to one message, or None (a live location's every move is not answered).

    `transcribing`: voice notes are transcribed after this reply (intake/channels/voice.py)."""
    if taken.action is Action.MOVED:
        return None
    lang = reply_language(event.report.language)
    t = TEXTS[lang]
    if taken.action is Action.HELP:
        return Reply(t["help"], lang)
    number = taken.incident_id if taken.incident_id is not None else taken.report_id
    came_with_location = event.report.location is not None
    if taken.action is Action.JOINED or (taken.action is Action.RETRIED and not event.report.text.strip()):
        parts = [t["location_joined" if came_with_location else "joined"].format(incident=number)]
    else:
        parts = [t["received"].format(incident=number)]
    if any(is_pending_voice(a) for a in event.report.attachments):
        parts.append(t["voice_transcribing" if transcribing else "voice_kept"])
    ask = not taken.has_fix
    if ask:
        parts.append(t["ask_location"])
    return Reply(" ".join(parts), lang, ask_location=ask, location_taken=came_with_location and taken.has_fix)


def is_pending_voice(attachment: Mapping[str, Any]) -> bool:
    """A voice note the door kept for transcription (Telegram voice, Zalo audio)."""
    return attachment.get("transcribed") is False


class VoiceSink(Protocol):
    """Where a door hands its stored voice notes for transcription (voice.VoiceTranscriber)."""

    @property
    def available(self) -> bool: ...

    def submit(self, event: ChatEvent, taken: Taken) -> None: ...


class ChatDoor(Protocol):
    """A chat door as the web layer sees it: verify, parse, take and reply, in `handle`.

    `file_url` and `notify` serve the voice transcriber: where a voice note's audio is downloaded
    from, and a later message to the reporter (the transcript)."""

    name: str
    voice: VoiceSink | None

    async def handle(self, inbound: Inbound) -> list[dict[str, Any]]: ...

    async def file_url(self, attachment: Mapping[str, Any]) -> str: ...

    async def notify(self, reporter_id: str, reply: Reply) -> bool: ...


def missing_settings(settings: Settings, names: Sequence[str]) -> list[str]:
    """The environment names of the settings a door still needs (INTAKE_FOO for extra["foo"])."""
    return [f"INTAKE_{n.upper()}" for n in names if not settings.extra.get(n)]
