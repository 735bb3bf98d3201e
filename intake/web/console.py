"""The call-taker console (/console), the dispatch board (/board), logins, and the API they use.

The two pages are static files (intake/web/static/: plain ES modules, Leaflet vendored, no CDN) fed
by the queue API and the /api/v1/stream WebSocket. This module adds what a person at a console
needs beyond the queue API that dispatch systems use:

- login / logout with a session cookie and a CSRF token (intake/web/auth.py);
- the reports: the queue of recent ones, one with its call, highlights and suggested incidents;
- a call-taker's decisions on a report: its category, its location (clicked on the map), the
  incident it belongs to (attach, or a new one);
- the call itself through the AMI bridge: transfer to an agency, call back, hang up;
- the offline base map: ward points from the gazetteer as GeoJSON.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from intake.config import Settings
from intake.core import geo
from intake.core.gazetteer import load as load_gazetteer
from intake.core.highlight import highlights
from intake.core.model import AGENCIES, Category, Location, LocationSource
from intake.dispatch.reports import ReportActions
from intake.pipeline import NotFound, incident_payload, report_payload
from intake.store.repo import Repo, row_location
from intake.store.tables import reports as reports_table
from intake.types import ChannelError, Forbidden, PayloadError, Unauthorized
from intake.web import auth
from intake.web.app import (
    BRIDGE,
    INTAKE,
    QUEUE,
    SETTINGS,
    STORE,
    actor_of,
    body_id,
    ok,
    path_id,
    principal,
    query_int,
    read_json,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
THROTTLE: web.AppKey[auth.LoginThrottle] = web.AppKey("login_throttle", auth.LoginThrottle)
NEARBY_M = 1000.0  # incidents this close to a report are offered as "the same?"
MAX_SUGGESTIONS = 10
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class CallsUnavailable(ChannelError):
    status = 503
    code = "ami_unavailable"


class CallNotLive(ChannelError):
    status = 409
    code = "call_not_live"


class AmiRefused(ChannelError):
    status = 502
    code = "ami_error"


# --- settings -----------------------------------------------------------------------------------

def session_ttl(settings: Settings) -> timedelta:
    try:
        hours = float(settings.extra.get("session_hours", "12"))
    except ValueError:
        hours = 12.0
    return timedelta(hours=min(max(hours, 0.1), 24 * 7))


def cookie_secure(request: web.Request) -> bool:
    """INTAKE_COOKIE_SECURE: on, off, or auto (the default): Secure unless the page is served on loopback."""
    mode = request.app[SETTINGS].extra.get("cookie_secure", "auto").strip().lower()
    if mode in ("1", "true", "on", "yes"):
        return True
    if mode in ("0", "false", "off", "no"):
        return False
    return (request.url.host or "") not in LOOPBACK


@functools.cache
def _province_center(name: str) -> tuple[float, float, str | None]:
    gz = load_gazetteer()
    found = gz.find_provinces(name) if name else []
    if found:
        return found[0].lat, found[0].lon, found[0].code
    return 21.0285, 105.8542, None


def map_config(settings: Settings) -> dict[str, Any]:
    lat, lon, code = _province_center(settings.default_province)
    center = settings.extra.get("map_center")
    if center:
        try:
            lat, lon = (float(x) for x in center.split(","))
        except ValueError:
            log.warning("INTAKE_MAP_CENTER %r is not lat,lon; using the default province", center)
    return {
        "tile_url": settings.extra.get("map_tile_url") or None,
        "tile_attribution": settings.extra.get("map_tile_attribution") or "",
        "center": [lat, lon],
        "zoom": int(settings.extra.get("map_zoom", "13") or 13),
        "province": code,
    }


# --- pages and login ----------------------------------------------------------------------------

def _headers(request: web.Request) -> dict[str, str]:
    # Reporters' photos may live on a chat service's server, hence http(s) images; everything else is ours.
    host = request.host
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https: http:; "
            f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'; object-src 'none'"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _page(request: web.Request, name: str, replace: dict[str, str] | None = None) -> web.Response:
    html = (STATIC / name).read_text(encoding="utf-8")
    for key, value in (replace or {}).items():
        html = html.replace("{{" + key + "}}", value)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=_headers(request))


async def _session_user(request: web.Request) -> auth.Principal | None:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if not token:
        return None
    return await auth.session_principal(request.app[STORE], token, request.app[INTAKE].clock())


def _login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"/login?next={request.path}")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console")


async def console_page(request: web.Request) -> web.StreamResponse:
    who = await _session_user(request)
    if who is None:
        raise _login_redirect(request)
    if not who.can("calltaker"):
        raise web.HTTPFound("/board")
    return _page(request, "console.html")


async def board_page(request: web.Request) -> web.StreamResponse:
    who = await _session_user(request)
    if who is None:
        raise _login_redirect(request)
    return _page(request, "board.html")


async def login_page(request: web.Request) -> web.StreamResponse:
    token = secrets.token_urlsafe(24)
    resp = _page(request, "login.html", {"login_csrf": token})
    resp.set_cookie(auth.LOGIN_CSRF_COOKIE, token, path="/auth", httponly=True, samesite="Strict",
                    secure=cookie_secure(request), max_age=3600)
    return resp


def _next_page(raw: Any, who: auth.Principal) -> str:
    default = "/console" if who.can("calltaker") else "/board"
    if not isinstance(raw, str) or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return default
    if raw.startswith("/console") and not who.can("calltaker"):
        return default
    return raw if raw.split("?")[0] in ("/console", "/board") else default


def _over_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def login(request: web.Request) -> web.Response:
    if cookie_secure(request) and not _over_https(request):
        # A browser drops a Secure cookie set over plain HTTP: say so rather than "log in" to nothing.
        raise PayloadError("this server gives sessions over HTTPS only: serve it behind TLS (X-Forwarded-Proto), "
                           "or set INTAKE_COOKIE_SECURE=off on a closed network")
    # Login CSRF: the form's token must match the cookie the login page set (double submit).
    if not auth.csrf_matches(request.cookies.get(auth.LOGIN_CSRF_COOKIE), request.headers.get(auth.CSRF_HEADER)):
        raise Forbidden("the login form has expired or came from elsewhere: reload the login page",
                        field=auth.CSRF_HEADER)
    body = await read_json(request)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise PayloadError("name is required", field="name")
    if not isinstance(password, str) or not password or len(password) > 1024:
        raise PayloadError("password is required", field="password")
    throttle = request.app[THROTTLE]
    throttle.check(name, request.remote)
    new = await auth.login(request.app[STORE], name, password, now=request.app[INTAKE].clock(),
                           ttl=session_ttl(request.app[SETTINGS]), remote=request.remote)
    if new is None:
        throttle.failed(name, request.remote)
        log.warning("failed console login for %r from %s", name[:40], request.remote)
        raise Unauthorized("wrong name or password, or the user is disabled")
    throttle.succeeded(name)
    who = new.principal
    resp = ok({"name": who.name, "role": who.role, "agency": who.agency, "csrf_token": who.csrf_token,
               "next": _next_page(body.get("next"), who)})
    resp.set_cookie(auth.SESSION_COOKIE, new.token, path="/", httponly=True, samesite="Strict",
                    secure=cookie_secure(request), max_age=int(session_ttl(request.app[SETTINGS]).total_seconds()))
    resp.del_cookie(auth.LOGIN_CSRF_COOKIE, path="/auth")
    return resp


async def logout(request: web.Request) -> web.Response:
    who = await principal(request)
    if who.session_id is None:
        raise PayloadError("logout ends a browser session; API tokens are revoked by an admin")
    await auth.logout(request.app[STORE], who.session_id, request.app[INTAKE].clock())
    resp = ok({"ok": True})
    resp.del_cookie(auth.SESSION_COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker", "dispatcher")
    settings = request.app[SETTINGS]
    return ok({"name": who.name, "role": who.role, "agency": who.agency, "csrf_token": who.csrf_token,
               "agencies": [a.value for a in AGENCIES], "map": map_config(settings),
               "calls": request.app.get(BRIDGE) is not None})


# --- the offline base map ---------------------------------------------------------------------------

@functools.cache
def _wards_geojson(province: str | None) -> dict[str, Any]:
    gz = load_gazetteer()
    features = [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [w.lon, w.lat]},
        "properties": {"code": w.code, "name": w.name, "short": w.short, "radius_m": w.radius_m},
    } for w in gz.wards(province)]
    return {"type": "FeatureCollection", "features": features}


async def map_wards(request: web.Request) -> web.Response:
    await principal(request, "calltaker", "dispatcher")
    province = request.query.get("province") or map_config(request.app[SETTINGS])["province"]
    if province == "all":
        province = None
    elif province is not None and load_gazetteer().province(province) is None:
        raise PayloadError(f"no province with code {province!r}", field="province")
    return ok(_wards_geojson(province))


# --- reports ---------------------------------------------------------------------------------------

def report_view(row: dict[str, Any]) -> dict[str, Any]:
    """A report as the console shows it: the public shape, its call, and what to highlight in its text."""
    data = report_payload(row)
    raw = row["raw"] or {}
    data["call"] = raw.get("call")
    data["linkedid"] = raw.get("linkedid") or (raw.get("call") or {}).get("linkedid")
    data["callbacks"] = raw.get("callbacks", [])
    data["aml"] = raw.get("aml")
    data["highlights"] = [s.as_dict() for s in highlights(row["text"] or "",
                                                          (row["classification"] or {}).get("evidence", []))]
    return data


async def _suggestions(repo: Repo, row: dict[str, Any], incident: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Incidents this report may belong to: possible duplicates first, then the nearest active ones."""
    own = row["incident_id"]
    found: dict[int, dict[str, Any]] = {}
    duplicates: list[int] = [r["incident_id"] for r in (row["match"] or {}).get("reasons", [])
                             if r.get("code") == "review" and isinstance(r.get("incident_id"), int)]
    if incident is not None and incident["review_of"]:
        duplicates.append(incident["review_of"])
    loc = row_location(row)
    if loc is not None:
        for inc in await repo.list_incidents(statuses=["open", "acknowledged"],
                                             cells=geo.disk_cells(loc.lat, loc.lon, NEARBY_M), limit=200):
            if inc["id"] != own and inc["lat"] is not None:
                d = geo.distance_m(loc.lat, loc.lon, inc["lat"], inc["lon"])
                if d <= NEARBY_M:
                    found[inc["id"]] = {**incident_payload(inc), "distance_m": round(d), "why": "nearby"}
    for inc_id in dict.fromkeys(duplicates):
        if inc_id == own:
            continue
        if inc_id not in found:
            dup = await repo.incident(inc_id)
            if dup is None or dup["status"] not in ("open", "acknowledged"):
                continue
            far = (round(geo.distance_m(loc.lat, loc.lon, dup["lat"], dup["lon"]))
                   if loc is not None and dup["lat"] is not None else None)
            found[inc_id] = {**incident_payload(dup), "distance_m": far}
        found[inc_id]["why"] = "possible_duplicate"
    ordered = sorted(found.values(), key=lambda i: (i["why"] != "possible_duplicate",
                                                     i["distance_m"] if i["distance_m"] is not None else math.inf))
    return ordered[:MAX_SUGGESTIONS]


async def _report_detail(request: web.Request, report_id: int) -> dict[str, Any]:
    async with request.app[STORE].read() as repo:
        row = await repo.report(report_id)
        if row is None:
            raise NotFound(f"report {report_id} does not exist")
        incident = await repo.incident(row["incident_id"]) if row["incident_id"] else None
        data = report_view(row)
        data["incident"] = incident_payload(incident) if incident else None
        data["suggestions"] = await _suggestions(repo, row, incident)
    return data


async def list_reports(request: web.Request) -> web.Response:
    """The newest reports of every door, for the console's queue (newest first, paged by id)."""
    await principal(request, "calltaker", "dispatcher")
    limit = query_int(request, "limit", 50, 1, 200)
    before = query_int(request, "cursor", 0, 0, 2**62)
    stmt = select(reports_table).order_by(reports_table.c.id.desc()).limit(limit + 1)
    if before:
        stmt = stmt.where(reports_table.c.id < before)
    async with request.app[STORE].read() as repo:
        rows = await repo._all(stmt)
    items = [report_view(r) for r in rows[:limit]]
    return ok({"items": items, "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None})


async def get_report(request: web.Request) -> web.Response:
    await principal(request, "calltaker", "dispatcher")
    return ok(await _report_detail(request, path_id(request)))


def _category(body: dict[str, Any]) -> Category:
    value = body.get("category")
    allowed = [a.value for a in AGENCIES]
    if value not in allowed:
        raise PayloadError(f"category must be one of {', '.join(allowed)}", field="category")
    return Category(value)


async def set_category(request: web.Request) -> web.Response:
    """Confirm or change the report's category: a person's decision replaces the classifier's."""
    who = await principal(request, "calltaker")
    report_id = path_id(request)
    category = _category(await read_json(request))
    await request.app[INTAKE].update_report(report_id, category=category, actor=who.name)
    return ok(await _report_detail(request, report_id))


def _number(body: dict[str, Any], name: str, lo: float, hi: float, default: float | None = None) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise PayloadError(f"{name} must be a number between {lo:g} and {hi:g}", field=name)
    return float(value)


async def set_location(request: web.Request) -> web.Response:
    """The place the call-taker clicked: kept as confirmed, never replaced by a later automatic fix."""
    who = await principal(request, "calltaker")
    report_id = path_id(request)
    body = await read_json(request)
    lat, lon = _number(body, "lat", -90, 90), _number(body, "lon", -180, 180)
    accuracy = _number(body, "accuracy_m", 1, 5000, 25.0)
    intake = request.app[INTAKE]
    ward = load_gazetteer().nearest_ward(lat, lon, max_distance_m=20_000)
    label = f"{ward.name}, {ward.province}" if ward else None
    location = Location(lat, lon, accuracy, LocationSource.CALLTAKER, observed_at=intake.clock(), label=label,
                        ward_code=ward.code if ward else None)
    await intake.update_report(report_id, location=location, actor=who.name)
    return ok(await _report_detail(request, report_id))


async def attach_report(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker")
    report_id = path_id(request)
    body = await read_json(request)
    target = body_id(body, "incident_id", "the id of the incident to attach the report to")
    await ReportActions(request.app[QUEUE]).attach(report_id, target, actor_of(who))
    return ok(await _report_detail(request, report_id))


async def new_incident(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker")
    report_id = path_id(request)
    await ReportActions(request.app[QUEUE]).new_incident(report_id, actor_of(who))
    return ok(await _report_detail(request, report_id), status=201)


# --- the call itself (AMI) -------------------------------------------------------------------------

def _bridge(request: web.Request) -> Any:
    bridge = request.app.get(BRIDGE)
    if bridge is None:
        raise CallsUnavailable("calls are not configured on this server (INTAKE_AMI_SECRET)")
    if not bridge.connected.is_set():
        raise CallsUnavailable("not connected to Asterisk (AMI) at the moment; try again in a few seconds")
    return bridge


def _linkedid(request: web.Request) -> str:
    linkedid = request.match_info["linkedid"]
    if not linkedid or len(linkedid) > 128:
        raise PayloadError("linkedid must be the call's Linkedid", field="linkedid")
    return linkedid


async def _ami(action: Any) -> Any:
    """Run a bridge action; Asterisk's refusals and a lost link become clear JSON errors."""
    from intake.telephony.ami import AmiActionError, AmiError, AmiNotConnected

    try:
        return await action
    except AmiNotConnected as exc:
        raise CallsUnavailable(f"not connected to Asterisk (AMI): {exc}") from exc
    except AmiActionError as exc:
        raise AmiRefused(f"Asterisk refused {exc.action}: {exc.message}") from exc
    except AmiError as exc:
        raise CallNotLive(str(exc)) from exc
    except TimeoutError as exc:
        raise CallsUnavailable("Asterisk did not answer in time") from exc


def _live_call(bridge: Any, linkedid: str) -> Any:
    call = bridge.calls.get(linkedid)
    if call is None:
        raise CallNotLive(f"call {linkedid} is not live (it ended, or it never reached this server)")
    return call


async def transfer_call(request: web.Request) -> web.Response:
    """Send the caller to an agency's queue (AMI Redirect into intake-transfer)."""
    who = await principal(request, "calltaker")
    linkedid = _linkedid(request)
    agency = (await read_json(request)).get("agency")
    allowed = [a.value for a in AGENCIES]
    if agency not in allowed:
        raise PayloadError(f"agency must be one of {', '.join(allowed)}", field="agency")
    bridge = _bridge(request)
    _live_call(bridge, linkedid)
    await _ami(bridge.transfer(linkedid, agency))
    log.info("%s transferred call %s to %s", who.name, linkedid, agency)
    return ok({"linkedid": linkedid, "transferred_to": agency})


async def hangup_call(request: web.Request) -> web.Response:
    who = await principal(request, "calltaker")
    linkedid = _linkedid(request)
    bridge = _bridge(request)
    _live_call(bridge, linkedid)
    await _ami(bridge.hangup(linkedid))
    log.info("%s hung up call %s", who.name, linkedid)
    return ok({"linkedid": linkedid, "hangup": True})


async def call_back(request: web.Request) -> web.Response:
    """Ring back the caller of an ended call (AMI Originate); the attempt and its outcome are kept on the call's
    report."""
    who = await principal(request, "calltaker")
    linkedid = _linkedid(request)
    body = await read_json(request)
    bridge = _bridge(request)
    if linkedid in bridge.calls:
        raise CallNotLive(f"call {linkedid} is still live: the caller is on the line")
    async with request.app[STORE].read() as repo:
        report = await repo.report_by_ref("call", linkedid)
    if report is None:
        raise NotFound(f"no call {linkedid}")
    number = body.get("number", report["phone_raw"])
    if not isinstance(number, str) or not number.strip() or len(number) > 32 \
            or not all(c.isdigit() or c in "+*#" for c in number.strip()):
        raise PayloadError("the call has no number to ring back; send number", field="number")
    channel_id = await _ami(bridge.call_back(number.strip(), report_id=report["id"]))
    log.info("%s called back %s for call %s (%s)", who.name, number, linkedid, channel_id)
    # Accepted: the phone rings now (for up to the bridge's callback_ring_s). Its outcome (answered, busy,
    # no answer, failed) is kept on the report's callbacks and sent on the stream as `call.callback`.
    return ok({"linkedid": linkedid, "number": number.strip(), "channel_id": channel_id, "report_id": report["id"],
               "outcome": "ringing"}, status=202)


# --- routes -------------------------------------------------------------------------------------------

def add_routes(app: web.Application) -> None:
    app[THROTTLE] = auth.LoginThrottle()
    api = "/api/v1"
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/auth/login", login)
    app.router.add_post("/auth/logout", logout)
    app.router.add_get("/console", console_page)
    app.router.add_get("/board", board_page)
    app.router.add_static("/static", STATIC, follow_symlinks=False)
    app.router.add_get(f"{api}/me", me)
    app.router.add_get(f"{api}/map/wards", map_wards)
    app.router.add_get(f"{api}/reports", list_reports)
    app.router.add_get(f"{api}/reports/{{id}}", get_report)
    app.router.add_post(f"{api}/reports/{{id}}/category", set_category)
    app.router.add_post(f"{api}/reports/{{id}}/location", set_location)
    app.router.add_post(f"{api}/reports/{{id}}/attach", attach_report)
    app.router.add_post(f"{api}/reports/{{id}}/new-incident", new_incident)
    app.router.add_post(f"{api}/calls/{{linkedid}}/transfer", transfer_call)
    app.router.add_post(f"{api}/calls/{{linkedid}}/hangup", hangup_call)
    app.router.add_post(f"{api}/calls/{{linkedid}}/callback", call_back)
