"""Report photos, fetched through the server and kept: `GET /api/v1/reports/{id}/attachments/{index}`.

A Telegram photo is only a file_id until someone asks: the server resolves it through the Bot API's
getFile (the token never reaches the browser). A Zalo, Twilio MMS or camera snapshot URL is fetched by
the server too, so a console on the centre's closed network still shows it, and the copy kept under
INTAKE_MEDIA_DIR (default var/media) outlives the sender's link. Only images are served (recognised by
their first bytes, with nosniff), so a link cannot smuggle a page onto our origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from intake.channels.voice import MAX_BYTES, AudioUnavailable, download
from intake.pipeline import NotFound
from intake.types import ChannelError, PayloadError
from intake.web.app import CHAT_DOORS, SETTINGS, STORE, path_id, principal

log = logging.getLogger(__name__)

#: Leading bytes → content type of the images we serve.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
IMAGE_TYPES = ("photo", "image")


class MediaUnavailable(ChannelError):
    status = 502
    code = "media_unavailable"


class MediaDoorOff(ChannelError):
    status = 503
    code = "door_not_configured"


class NotAnImage(ChannelError):
    status = 415
    code = "not_an_image"


def sniff(data: bytes) -> str | None:
    """The image type of `data` by its first bytes, or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_image(attachment: dict[str, Any]) -> bool:
    kind = str(attachment.get("type") or attachment.get("mime_type") or "").lower()
    return kind in IMAGE_TYPES or kind.startswith("image/")


def _source(attachment: dict[str, Any]) -> str:
    """What identifies the picture wherever it lives: the cache key."""
    return str(attachment.get("file_unique_id") or attachment.get("telegram_file_id") or attachment.get("url")
               or attachment.get("snapshot_url") or "")


async def _fetch(request: web.Request, attachment: dict[str, Any]) -> bytes:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        try:
            if attachment.get("telegram_file_id"):
                door = request.app[CHAT_DOORS].get("telegram")
                if door is None:
                    raise MediaDoorOff("the Telegram door is not configured, so its photos cannot be fetched")
                url = await door.file_url(attachment)
            else:
                url = str(attachment.get("url") or attachment.get("snapshot_url") or "")
                if not url.startswith(("https://", "http://")):
                    raise MediaUnavailable("the attachment has no http(s) URL to fetch it from")
            return await download(session, url, limit=MAX_BYTES)
        except AudioUnavailable as exc:
            raise MediaUnavailable(f"the photo could not be fetched: {exc.reason}") from exc


async def attachment(request: web.Request) -> web.StreamResponse:
    await principal(request, "calltaker", "dispatcher")
    report_id = path_id(request)
    raw_index = request.match_info["index"]
    if not raw_index.isdigit() or len(raw_index) > 6:
        raise PayloadError(f"index must be an attachment's position (0, 1, ...), got {raw_index!r}", field="index")
    index = int(raw_index)
    async with request.app[STORE].read() as repo:
        row = await repo.report(report_id)
    if row is None:
        raise NotFound(f"report {report_id} does not exist")
    items = list(row["attachments"] or [])
    if index >= len(items) or not isinstance(items[index], dict):
        raise NotFound(f"report {report_id} has no attachment {index}")
    item: dict[str, Any] = items[index]
    if not is_image(item):
        raise NotAnImage(f"attachment {index} is a {item.get('type') or 'file'}, not a photo")
    media = Path(request.app[SETTINGS].extra.get("media_dir") or "var/media")
    key = hashlib.sha256(f"{report_id}:{_source(item)}".encode()).hexdigest()
    kept = await asyncio.to_thread(_kept_copy, media, key)
    data = await asyncio.to_thread(kept.read_bytes) if kept is not None else await _fetch(request, item)
    kind = sniff(data)
    if kind is None:
        raise NotAnImage(f"what attachment {index} points to is not a JPEG, PNG, GIF or WebP image")
    if kept is None:
        await asyncio.to_thread(_keep, media / f"{key}.{_EXT[kind]}", data)
    return web.Response(body=data, content_type=kind, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400",
        "Content-Security-Policy": "default-src 'none'"})


def _kept_copy(media: Path, key: str) -> Path | None:
    """The finished copy of a photo (never a `.part` file a crash left half-written)."""
    return next((p for ext in _EXT.values() if (p := media / f"{key}.{ext}").is_file()), None)


def _keep(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a file


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports/{id}/attachments/{index}", attachment)
