"""The aiohttp application: the queue API under /api/v1, the stream, health.

Errors are JSON everywhere: {"error": "<short code>", "detail": "<what was wrong>"}.
Bad input is a 4xx and stores nothing; an unexpected failure is logged with a
request id and answered 500 without internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from intake import locfix
from intake.channels import app as app_door
from intake.channels.chat import ChatDoor
from intake.config import Settings
from intake.core import geo
from intake.core.model import AGENCIES, Category, IncidentStatus
from intake.dispatch.queue import Actor, Conflict, Invalid, Queue
from intake.pipeline import (
    IdempotencyConflict,
    IngestError,
    Intake,
    NotFound,
    incident_payload,
    report_payload,
)
from intake.store import Store, open_store
from intake.types import ChannelError, Forbidden, Inbound, PayloadError, Unauthorized, json_object
from intake.web import auth
from intake.web.openapi import openapi_document

log = logging.getLogger(__name__)

INTAKE: web.AppKey[Intake] = web.AppKey("intake", Intake)
QUEUE: web.AppKey[Queue] = web.AppKey("queue", Queue)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("stopping", asyncio.Event)
BRIDGE: web.AppKey[Any] = web.AppKey("ami_bridge")
AUDIO_ROUTER: web.AppKey[Any] = web.AppKey("call_audio_router")  # CallAudioRouter, when speech is on
CHAT_DOORS: web.AppKey[dict[str, ChatDoor]] = web.AppKey("chat_doors", dict)  # the configured Telegram/Zalo doors

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, error: str, detail: Any = None, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail, **extra}, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ChannelError as exc:
        return error_response(exc.status, exc.code, exc.message, field=exc.field,
                              **({"info": exc.detail} if exc.detail else {}))
    except IdempotencyConflict as exc:
        return error_response(422, "idempotency_key_reused", str(exc))
    except NotFound as exc:
        return error_response(404, "not_found", str(exc))
    except Conflict as exc:
        return error_response(409, "conflict", str(exc), info=exc.detail)
    except Invalid as exc:
        return error_response(400, "invalid", str(exc))
    except IngestError as exc:
        return error_response(400, "invalid", str(exc))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", incident, request.method, request.path)
        return error_response(500, "internal", f"unexpected error, logged as {incident}")


# --- auth --------------------------------------------------------------------------------

async def principal(request: web.Request, *roles: str) -> auth.Principal:
    """An API token (Authorization: Bearer, or ?token= on the stream), else a console session cookie.

    A session is a browser: every state-changing request must carry the session's X-CSRF-Token, and
    its WebSocket must come from our own pages (same Origin).
    """
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("token", "")
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        who = await auth.authenticate(request.app[STORE], token)
        if who is None:
            raise Unauthorized("the API token is unknown or revoked")
    elif cookie:
        session = await auth.session_principal(request.app[STORE], cookie, request.app[INTAKE].clock())
        if session is None:
            raise Unauthorized("the session has ended: log in again")
        who = session
        if request.method not in ("GET", "HEAD", "OPTIONS") and not auth.csrf_matches(
                who.csrf_token, request.headers.get(auth.CSRF_HEADER)):
            raise Forbidden(f"missing or wrong {auth.CSRF_HEADER} header", field=auth.CSRF_HEADER)
        if request.headers.get("Upgrade", "").lower() == "websocket" and not _same_origin(request):
            raise Forbidden("a WebSocket with a session cookie must come from this server's own pages")
    else:
        raise Unauthorized("send an API token: Authorization: Bearer <token>, or log in at /login")
    if roles and not who.can(*roles):
        raise Forbidden(f"role {who.role} may not do this (needs {' or '.join(roles)})")
    return who


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: it could not have sent the cookie on someone else's behalf
    host = request.headers.get("X-Forwarded-Host", request.host)
    return origin in (f"http://{host}", f"https://{host}")


def actor_of(who: auth.Principal) -> Actor:
    return Actor(name=who.name, role=who.role, agency=who.agency)


def _may_dispatch(who: auth.Principal, incident: dict[str, Any], *, notified_may: bool = False) -> None:
    """A dispatcher handles its own agency's incidents; agencies only notified may add notes."""
    if who.role != "dispatcher" or incident["category"] == who.agency:
        return
    if notified_may and who.agency in (incident["also_notify"] or []):
        return
    raise Forbidden(f"dispatcher of {who.agency} may not act on a {incident['category']} incident")


# --- request helpers -----------------------------------------------------------------------

async def read_json(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    return json_object(body) if body else {}


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    try:
        value = int(raw)
    except ValueError as exc:
        raise PayloadError(f"{name} must be an integer, got {raw!r}", field=name) from exc
    if value < 1 or value > 2**62:
        raise PayloadError(f"{name} {value} is out of range", field=name)
    return value


def body_id(body: dict[str, Any], name: str, what: str) -> int:
    """An id given in a JSON body: a positive integer (not a boolean, not a string)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PayloadError(f"{name} must be {what}", field=name)
    return value


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise PayloadError(f"{name} must be an integer", field=name) from exc
    if not lo <= value <= hi:
        raise PayloadError(f"{name} must be between {lo} and {hi}", field=name)
    return value


def query_enum(request: web.Request, name: str, allowed: list[str]) -> list[str] | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise PayloadError(f"{name} must be a comma list of {', '.join(allowed)}", field=name)
    return values


# --- handlers ----------------------------------------------------------------------------------

async def health(request: web.Request) -> web.Response:
    async with request.app[STORE].read() as repo:
        head = await repo.outbox_head()
    return ok({"status": "ok", "database": request.app[STORE].dialect, "outbox_head": head})


async def get_openapi(request: web.Request) -> web.Response:
    return ok(openapi_document())


async def post_report(request: web.Request) -> web.Response:
    who = await principal(request, "app", "calltaker")
    intake = request.app[INTAKE]
    inbound = Inbound(
        body=await request.read(),
        headers=request.headers,
        url=str(request.url),
        received_at=intake.clock(),
        remote=request.remote,
    )
    results = [await intake.ingest(r) for r in app_door.parse(inbound, client=who.client)]
    result = results[0].as_dict()
    status = 200 if result["outcome"] == "duplicate" else 201
    return ok(result, status=status)


async def twilio_voice(request: web.Request) -> web.Response:
    """Twilio's voice webhook for a cloud-hosted number: the call becomes a report, its audio a Media Stream."""
    from intake.core.model import ReportIn
    from intake.telephony.twilio_media import connect_stream_twiml, verify_twilio_signature

    token = request.app[SETTINGS].extra.get("twilio_auth_token")
    if not token:
        raise web.HTTPNotFound(text="the Twilio door is not configured (INTAKE_TWILIO_AUTH_TOKEN)")
    form = {k: str(v) for k, v in (await request.post()).items()}
    url = _public_url(request)
    if not verify_twilio_signature(token, url, form, request.headers.get("X-Twilio-Signature", "")):
        log.warning("Twilio voice webhook with a bad signature from %s", request.remote)
        raise Forbidden("X-Twilio-Signature does not match this request")
    call_sid = form.get("CallSid", "")
    if not call_sid.startswith("CA") or len(call_sid) != 34:
        raise PayloadError("CallSid must be a Twilio call SID (CA + 32 hex digits)", field="CallSid")
    intake = request.app[INTAKE]
    result = await intake.ingest(ReportIn(
        channel="call", channel_ref=f"twilio:{call_sid}", received_at=intake.clock(), phone=form.get("From"),
        dialled_number=form.get("To"), raw={"call_sid": call_sid, "from": form.get("From"), "to": form.get("To")}))
    await locfix.apply_pending(intake, result.report_id)  # an AML fix that came before the call
    # Twilio opens Media Streams over TLS only: the stream is wss:// on the host Twilio called.
    host = request.headers.get("X-Forwarded-Host", request.host)
    twiml = connect_stream_twiml(f"wss://{host}/webhooks/twilio/media",
                                 {"report_id": str(result.report_id), "call_sid": call_sid})
    return web.Response(text=twiml, content_type="text/xml")


async def _open_chat_doors(settings: Settings, intake: Intake, stack: contextlib.AsyncExitStack
                           ) -> dict[str, ChatDoor]:
    """The configured chat doors, each open (its HTTP client for replies) for the app's life."""
    from intake.channels import telegram, zalo

    doors: dict[str, ChatDoor] = {}
    if not telegram.missing(settings):
        doors[telegram.NAME] = await stack.enter_async_context(telegram.TelegramDoor.from_settings(settings, intake))
    if not zalo.missing(settings):
        doors[zalo.NAME] = await stack.enter_async_context(zalo.ZaloDoor.from_settings(settings, intake))
    return doors


async def _chat_webhook(request: web.Request, name: str, missing: Callable[[Settings], list[str]]) -> web.Response:
    """Telegram / Zalo: verify, parse, store, and only then reply in the chat (intake/channels/chat.py)."""
    door = request.app[CHAT_DOORS].get(name)
    if door is None:
        needed = ", ".join(missing(request.app[SETTINGS]))
        raise web.HTTPNotFound(text=f"the {name} door is not configured ({needed})")
    intake = request.app[INTAKE]
    inbound = Inbound(body=await request.read(), headers=request.headers, url=str(request.url),
                      received_at=intake.clock(), query=request.query, remote=request.remote)
    return ok({"ok": True, "handled": await door.handle(inbound)})


async def telegram_webhook(request: web.Request) -> web.Response:
    from intake.channels import telegram

    return await _chat_webhook(request, telegram.NAME, telegram.missing)


async def zalo_webhook(request: web.Request) -> web.Response:
    from intake.channels import zalo

    return await _chat_webhook(request, zalo.NAME, zalo.missing)


async def twilio_media(request: web.Request) -> web.StreamResponse:
    """The Media Stream WebSocket the voice webhook's TwiML points Twilio at."""
    from intake.telephony.twilio_media import verify_twilio_signature
    from intake.telephony.twilio_stream import StreamRefused, serve_stream, ws_messages

    token = request.app[SETTINGS].extra.get("twilio_auth_token")
    if not token:
        raise web.HTTPNotFound(text="the Twilio door is not configured (INTAKE_TWILIO_AUTH_TOKEN)")
    # Twilio signs the WebSocket handshake like a webhook: the wss:// URL of the <Stream>, no form.
    host = request.headers.get("X-Forwarded-Host", request.host)
    if not verify_twilio_signature(token, f"wss://{host}{request.path_qs}", {},
                                   request.headers.get("X-Twilio-Signature", "")):
        log.warning("Twilio media stream with a bad signature from %s", request.remote)
        raise Forbidden("X-Twilio-Signature does not match this stream request")
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    try:
        await serve_stream(ws_messages(ws), request.app[INTAKE], request.app.get(AUDIO_ROUTER))
    except StreamRefused as exc:
        log.warning("Twilio media stream refused: %s", exc)
        await ws.close(code=1008, message=str(exc)[:120].encode())
    return ws


def _public_url(request: web.Request) -> str:
    """The URL Twilio called (behind a proxy: X-Forwarded-Proto / Host), as its signature covers it."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme)
    host = request.headers.get("X-Forwarded-Host", request.host)
    return f"{proto}://{host}{request.path_qs}"


async def _inbound_at_public_url(request: web.Request) -> Inbound:
    """A signed webhook as a door sees it: the URL is the one the sender signed (see _public_url)."""
    return Inbound(body=await request.read(), headers=request.headers, url=_public_url(request),
                   received_at=request.app[INTAKE].clock(), remote=request.remote)


async def twilio_sms(request: web.Request) -> web.Response:
    """Twilio's incoming-message webhook: an SMS becomes a report; an AML SMS locates its call (TwiML back)."""
    from intake.channels import sms

    token = request.app[SETTINGS].extra.get("twilio_auth_token")
    if not token:
        raise web.HTTPNotFound(text="the Twilio SMS door is not configured (INTAKE_TWILIO_AUTH_TOKEN)")
    twiml = await sms.receive(request.app[INTAKE], token, await _inbound_at_public_url(request))
    return web.Response(text=twiml, content_type="text/xml")


async def aml_https(request: web.Request) -> web.Response:
    """Advanced Mobile Location over HTTPS (ELS form post, HMAC-signed): the fix locates its call."""
    key = request.app[SETTINGS].extra.get("aml_hmac_key")
    if not key:
        raise web.HTTPNotFound(text="the AML HTTPS door is not configured (INTAKE_AML_HMAC_KEY)")
    outcome = await locfix.receive_https(request.app[INTAKE], key, await _inbound_at_public_url(request))
    return ok(outcome.as_dict())


async def device_event(request: web.Request) -> web.Response:
    """An IP fire-alarm device's or AI camera's event, authenticated by the device's own secret."""
    from intake.channels import devices
    from intake.channels.devices import http as devices_http

    if not devices.http_enabled(request.app[SETTINGS]):
        raise web.HTTPNotFound(text="the devices HTTP door is not configured (INTAKE_DEVICES_HTTP=on)")
    intake = request.app[INTAKE]
    inbound = Inbound(body=await request.read(), headers=request.headers, url=str(request.url),
                      received_at=intake.clock(), remote=request.remote)
    status, body = await devices_http.receive(intake, inbound, request.match_info["device_id"])
    return ok(body, status=status)


async def list_incidents(request: web.Request) -> web.Response:
    await principal(request, "calltaker", "dispatcher")
    statuses = query_enum(request, "status", [s.value for s in IncidentStatus])
    if statuses is None and "status" not in request.query:
        statuses = ["open", "acknowledged"]
    categories = query_enum(request, "category", [c.value for c in Category])
    limit = query_int(request, "limit", 50, 1, 500)
    after = query_int(request, "cursor", 0, 0, 2**62) or None
    since = None
    if "since" in request.query:
        since = app_door.parse_time(request.query["since"], "since", request.app[INTAKE].clock())
    cells = None
    near = request.query.get("near")
    center: tuple[float, float, float] | None = None
    if near is not None:
        center = _parse_near(near)
        cells = geo.disk_cells(*center)
    async with request.app[STORE].read() as repo:
        rows = await repo.list_incidents(statuses=statuses, categories=categories, since=since, cells=cells,
                                         after_id=after, limit=limit + 1)
    items = [incident_payload(r) for r in rows]
    more = len(items) > limit
    items = items[:limit]
    if center is not None:
        lat, lon, radius = center
        for item in items:
            item["distance_m"] = (
                round(geo.distance_m(lat, lon, item["lat"], item["lon"])) if item["lat"] is not None else None
            )
        items = [i for i in items if i["distance_m"] is not None and i["distance_m"] <= radius]
    next_cursor = rows[limit - 1]["id"] if more else None
    return ok({"items": items, "next_cursor": next_cursor})


def _parse_near(value: str) -> tuple[float, float, float]:
    parts = value.split(",")
    if len(parts) != 3:
        raise PayloadError("near must be lat,lon,radius_m", field="near")
    try:
        lat, lon, radius = (float(p) for p in parts)
    except ValueError as exc:
        raise PayloadError("near must be three numbers: lat,lon,radius_m", field="near") from exc
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise PayloadError("near: coordinates out of range", field="near")
    if not 0 < radius <= 50_000:
        raise PayloadError("near: radius must be between 0 and 50000 metres", field="near")
    return lat, lon, radius


async def get_incident(request: web.Request) -> web.Response:
    await principal(request, "calltaker", "dispatcher")
    incident_id = path_id(request)
    async with request.app[STORE].read() as repo:
        row = await repo.incident(incident_id)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist")
        reports = await repo.reports_of_incident(incident_id)
        events = await repo.events_of_incident(incident_id)
    data = incident_payload(row)
    data["reports"] = [report_payload(r) for r in reports]
    data["events"] = [
        {"id": e["id"], "at": e["at"].isoformat(), "actor": e["actor"], "kind": e["kind"],
         "report_id": e["report_id"], "data": e["data"]}
        for e in events
    ]
    return ok(data)


async def incident_export(request: web.Request) -> web.Response:
    """GET /incidents/{id}/eido | /cap: the incident as a standard document for another dispatch system."""
    from intake.dispatch import exports

    who = await principal(request, "calltaker", "dispatcher")
    incident_id = path_id(request)
    try:
        sender = exports.sender_from_settings(request.app[SETTINGS])
    except ValueError as exc:
        raise web.HTTPServiceUnavailable(text=f"exports are not configured right (INTAKE_AGENCY_ID): {exc}") from exc
    async with request.app[STORE].read() as repo:
        row = await repo.incident(incident_id)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist")
        _may_dispatch(who, row, notified_may=True)  # its own agency's incidents, and those it is notified of
        record = exports.IncidentRecord(row, await repo.reports_of_incident(incident_id),
                                        await repo.events_of_incident(incident_id))
    body, media_type = exports.export(record, sender, request.match_info["format"])
    return web.Response(body=body, content_type=media_type, charset="utf-8")


async def _incident_for_action(request: web.Request, who: auth.Principal, *, notified_may: bool = False) -> int:
    incident_id = path_id(request)
    async with request.app[STORE].read() as repo:
        row = await repo.incident(incident_id)
    if row is None:
        raise NotFound(f"incident {incident_id} does not exist")
    _may_dispatch(who, row, notified_may=notified_may)
    return incident_id


async def claim(request: web.Request) -> web.Response:
    who = await principal(request, "dispatcher", "calltaker")
    incident_id = await _incident_for_action(request, who)
    body = await read_json(request)
    seconds = body.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int) or not 5 <= seconds <= 3600):
        raise PayloadError("seconds must be an integer between 5 and 3600", field="seconds")
    row = await request.app[QUEUE].claim(incident_id, actor_of(who), seconds)
    return ok(incident_payload(row))


async def release(request: web.Request) -> web.Response:
    who = await principal(request, "dispatcher", "calltaker")
    incident_id = await _incident_for_action(request, who)
    return ok(incident_payload(await request.app[QUEUE].release(incident_id, actor_of(who))))


async def ack(request: web.Request) -> web.Response:
    who = await principal(request, "dispatcher")
    incident_id = await _incident_for_action(request, who)
    return ok(incident_payload(await request.app[QUEUE].ack(incident_id, actor_of(who))))


async def close(request: web.Request) -> web.Response:
    who = await principal(request, "dispatcher", "calltaker")
    incident_id = await _incident_for_action(request, who)
    body = await read_json(request)
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 2000:
        raise PayloadError("reason must be a string of at most 2000 characters", field="reason")
    return ok(incident_payload(await request.app[QUEUE].close(incident_id, actor_of(who), reason)))


async def merge(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker")
    incident_id = path_id(request)
    body = await read_json(request)
    into = body_id(body, "into", "the id of the incident to merge into")
    return ok(incident_payload(await request.app[QUEUE].merge(incident_id, into, actor_of(who))))


async def split(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker")
    incident_id = path_id(request)
    body = await read_json(request)
    ids = body.get("report_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise PayloadError("report_ids must be a non-empty list of report ids", field="report_ids")
    row = await request.app[QUEUE].split(incident_id, ids, actor_of(who))
    return ok(incident_payload(row), status=201)


async def notes(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker", "dispatcher")
    incident_id = await _incident_for_action(request, who, notified_may=True)
    body = await read_json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 5000:
        raise PayloadError("text must be a non-empty string of at most 5000 characters", field="text")
    row = await request.app[QUEUE].note(incident_id, actor_of(who), text.strip())
    return ok(incident_payload(row), status=201)


async def stream(request: web.Request) -> web.StreamResponse:
    """WebSocket of incident events, resumable: `?cursor=N` replays everything after N, then live."""
    await principal(request, "calltaker", "dispatcher")
    store = request.app[STORE]
    cursor_raw = request.query.get("cursor") or request.headers.get("Last-Event-ID")
    if cursor_raw is not None:
        try:
            cursor = int(cursor_raw)
        except ValueError as exc:
            raise PayloadError("cursor must be an integer", field="cursor") from exc
        if cursor < 0:
            raise PayloadError("cursor must be >= 0", field="cursor")
    else:
        async with store.read() as repo:
            cursor = await repo.outbox_head()
    categories = query_enum(request, "category", [c.value for c in Category])
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    await ws.send_json({"type": "hello", "cursor": cursor}, dumps=_dumps)
    stopping = request.app[STOPPING]
    async with asyncio.TaskGroup() as tg:
        reader = tg.create_task(_drain_client(ws))
        try:
            while not ws.closed and not stopping.is_set() and not reader.done():
                async with store.read() as repo:
                    rows = await repo.outbox_after(cursor, 500)
                for row in rows:
                    cursor = row["id"]
                    incident = row["payload"].get("incident") or {}
                    if categories and incident.get("category") not in categories:
                        continue
                    await ws.send_json({
                        "type": "event", "cursor": row["id"], "kind": row["kind"], "at": row["at"].isoformat(),
                        "incident_id": row["incident_id"], "report_id": row["report_id"], "data": row["payload"],
                    }, dumps=_dumps)
                if not rows:
                    await store.outbox.wait(2.0)
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            await ws.close()
    return ws


async def _drain_client(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break


# --- application ----------------------------------------------------------------------------

def _twilio_speech(settings: Settings) -> bool:
    """Twilio calls are transcribed when the door is on and INTAKE_ASR_MODEL names the model to use.

    (AudioSocket needs speech and finds the default model; a Twilio-only server opts in, because the
    recognizer processes cost a second to start and about 100 MB each.)"""
    return bool(settings.extra.get("twilio_auth_token") and settings.asr_model)


def create_app(settings: Settings, *, store: Store | None = None, clock: Callable[[], datetime] | None = None
               ) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[errors_middleware])
    app[SETTINGS] = settings
    app[STOPPING] = asyncio.Event()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = store is None
        async with contextlib.AsyncExitStack() as stack:
            pool = None
            if settings.audiosocket_port or _twilio_speech(settings):
                # Recognizer processes are forked before the store opens its threads.
                from intake.telephony.asr import ModelRegistry, RecognizerPool, read_wav

                model = settings.asr_model or ModelRegistry().model_dir()
                warmup = read_wav(settings.asr_warmup) if settings.asr_warmup else None
                # Audio recorded while every recognizer is busy lives here until transcribed, across a restart.
                record_dir = Path(settings.extra.get("media_dir") or "var/media") / "call-audio"
                record_dir.mkdir(parents=True, exist_ok=True)
                pool = await stack.enter_async_context(
                    RecognizerPool(model, workers=settings.asr_workers or None, warmup=warmup,
                                   record_dir=str(record_dir)))
            from intake.core.prepare import warm_up

            await asyncio.to_thread(warm_up)  # the first report's one-off loading, before any call rings
            s = store or await open_store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
            app[STORE] = s
            intake = Intake(s, settings) if clock is None else Intake(s, settings, clock=clock)
            app[INTAKE] = intake
            app[QUEUE] = Queue(intake)
            app[CHAT_DOORS] = await _open_chat_doors(settings, intake, stack)
            stop_listen = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(s.listen(stop_listen))
                from intake.channels import voice

                voice_notes = voice.attach(settings, intake, app[CHAT_DOORS])  # Telegram/Zalo voice → Vosk
                if voice_notes is not None:
                    tg.create_task(voice_notes.run(stop_listen))
                bridge = None
                if settings.ami_secret:
                    from intake.telephony.ami import AmiBridge

                    bridge = AmiBridge(intake, host=settings.ami_host, port=settings.ami_port,
                                       username=settings.ami_username, secret=settings.ami_secret,
                                       callback_ring_s=settings.callback_ring_s)
                    app[BRIDGE] = bridge
                    tg.create_task(bridge.run(stop_listen))
                if pool is not None:
                    from intake.telephony.calls import CallAudioRouter

                    app[AUDIO_ROUTER] = router = CallAudioRouter(intake, bridge, pool)
                    tg.create_task(router.pick_up())  # words a previous run heard but had no time to write
                audio = None
                if pool is not None and settings.audiosocket_port:
                    from intake.telephony.audiosocket import AudioSocketServer

                    audio = await stack.enter_async_context(
                        AudioSocketServer(router.on_call, settings.audiosocket_host, settings.audiosocket_port))
                    log.info("AudioSocket listening on %s:%s", settings.audiosocket_host, audio.port)
                from intake.channels import sip_listener

                sip = sip_listener.from_settings(settings, intake.ingest, intake.clock)  # INTAKE_SIP_MESSAGE_PORT
                if sip is not None:
                    await stack.enter_async_context(sip)
                from intake.channels import devices

                devices.start(tg, intake, settings, stop_listen)  # SIA DC-09, MQTT, supervision: when configured
                try:
                    yield
                finally:
                    app[STOPPING].set()
                    if pool is not None:
                        await pool.shelve()  # recordings not yet transcribed are kept for the next start
                    if audio is not None:
                        await audio.close()  # live calls flush what was heard while the store is still open
                    stop_listen.set()
                    if sip is not None:
                        await sip.close()  # texts being stored get their 200 before the store closes
            if own:
                await s.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(_on_shutdown)

    app.router.add_get("/health", health)
    api = "/api/v1"
    app.router.add_get(f"{api}/openapi.json", get_openapi)
    app.router.add_post(f"{api}/reports", post_report)
    app.router.add_get(f"{api}/incidents", list_incidents)
    app.router.add_get(f"{api}/incidents/{{id}}", get_incident)
    app.router.add_get(f"{api}/incidents/{{id}}/{{format:eido|cap}}", incident_export)  # EIDO JSON, CAP 1.2 XML
    app.router.add_post(f"{api}/incidents/{{id}}/claim", claim)
    app.router.add_post(f"{api}/incidents/{{id}}/release", release)
    app.router.add_post(f"{api}/incidents/{{id}}/ack", ack)
    app.router.add_post(f"{api}/incidents/{{id}}/close", close)
    app.router.add_post(f"{api}/incidents/{{id}}/merge", merge)
    app.router.add_post(f"{api}/incidents/{{id}}/split", split)
    app.router.add_post(f"{api}/incidents/{{id}}/notes", notes)
    app.router.add_get(f"{api}/stream", stream)
    app.router.add_post("/webhooks/twilio/voice", twilio_voice)
    app.router.add_get("/webhooks/twilio/media", twilio_media)
    app.router.add_post("/webhooks/telegram", telegram_webhook)
    app.router.add_post("/webhooks/zalo", zalo_webhook)
    app.router.add_post("/webhooks/twilio/sms", twilio_sms)
    app.router.add_post("/webhooks/aml", aml_https)
    app.router.add_post(f"{api}/devices/{{device_id}}/events", device_event)
    from intake.web import console

    console.add_routes(app)  # /login, /console, /board, /static, and the console's report and call actions
    from intake.web import media

    media.add_routes(app)  # report photos fetched through the server and kept
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING].set()


def run(settings: Settings, host: str, port: int) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(create_app(settings), host=host, port=port, print=lambda m: log.info("%s", m))


__all__ = ["AGENCIES", "create_app", "run"]
