"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from intake import __version__
from intake.channels.app import FIELDS

ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input", 401: "no or unknown token", 403: "role not allowed", 404: "no such incident",
            409: "conflicts with the incident's state (claimed by someone else, closed)",
            413: "body too large", 422: "Idempotency-Key reused for a different report"}
    return {str(c): _resp(text[c], ERROR) for c in codes}


def _action(summary: str, body: dict[str, Any] | None = None, codes: tuple[int, ...] = (400, 401, 403, 404, 409)
            ) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/IncidentId"}],
        "responses": {"200": _resp("the incident after the action", {"$ref": "#/components/schemas/Incident"}),
                      **_errors(*codes)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _export(summary: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An incident exported in a standard format: read access as GET /incidents/{id}; a dispatcher gets only
    its own agency's incidents and those its agency is notified of."""
    return {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/IncidentId"}],
        "responses": {"200": {"description": "the document (UTF-8); the same incident version gives the same bytes",
                              "content": {media_type: {"schema": schema}}},
                      **_errors(400, 401, 403, 404),
                      "503": _resp("INTAKE_AGENCY_ID is not a domain name", ERROR)},
    }


def _report_action(summary: str, body: dict[str, Any] | None = None, codes: tuple[int, ...] = (400, 401, 403, 404, 409),
                   status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/ReportId"}],
        "responses": {status: _resp("the report after the action, with its incident and suggestions",
                                    {"$ref": "#/components/schemas/ReportDetail"}), **_errors(*codes)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _call_action(summary: str, body: dict[str, Any] | None = None, *, status: str = "200",
                 done: str = "done") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"name": "linkedid", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "the call's Asterisk Linkedid (the call report's channel_ref)"}],
        "responses": {status: _resp(done, {"type": "object"}), **_errors(400, 401, 403, 404, 409),
                      "502": _resp("Asterisk refused the action (its message is in detail)", ERROR),
                      "503": _resp("calls are not configured, or Asterisk (AMI) is not connected", ERROR)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _console_paths() -> dict[str, Any]:
    agency = {"type": "string", "enum": ["fire", "police", "medical"]}
    return {
        "/reports/{id}": {"get": {
            "summary": "One report as the console shows it: its call, highlights, incident and suggested incidents",
            "parameters": [{"$ref": "#/components/parameters/ReportId"}],
            "responses": {"200": _resp("the report", {"$ref": "#/components/schemas/ReportDetail"}),
                          **_errors(400, 401, 403, 404)}}},
        "/reports/{id}/category": {"post": _report_action(
            "Confirm or change the report's category (a person's decision replaces the classifier's)",
            {"type": "object", "required": ["category"], "properties": {"category": agency}})},
        "/reports/{id}/location": {"post": _report_action(
            "Set the report's location as confirmed by the call-taker (never replaced by an automatic fix)",
            {"type": "object", "required": ["lat", "lon"], "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "accuracy_m": {"type": "number", "minimum": 1, "maximum": 5000, "default": 25}}})},
        "/reports/{id}/attach": {"post": _report_action(
            "Attach the report to an incident (its incident, if it held only this report, is merged into it)",
            {"type": "object", "required": ["incident_id"], "properties": {"incident_id": {"type": "integer"}}})},
        "/reports/{id}/new-incident": {"post": _report_action(
            "Take the report out into a new incident of its own (201)", None, status="201")},
        "/calls/{linkedid}/transfer": {"post": _call_action(
            "Transfer a live call to an agency's queue (AMI Redirect)",
            {"type": "object", "required": ["agency"], "properties": {"agency": agency}})},
        "/calls/{linkedid}/hangup": {"post": _call_action("Hang up a live call (AMI Hangup)")},
        "/calls/{linkedid}/callback": {"post": _call_action(
            "Ring back the caller of an ended call (AMI Originate): 202 while the phone rings; the outcome "
            "(answered, busy, no answer, failed, with Asterisk's reason and cause) is kept on the report's "
            "callbacks and sent on the stream as call.callback",
            {"type": "object", "properties": {"number": {"type": "string",
                                                         "description": "default: the caller's number"}}},
            status="202", done="the call-back is ringing: {linkedid, number, channel_id, report_id, outcome}")},
        "/reports/{id}/attachments/{index}": {"get": {
            "summary": "A report's photo, fetched by the server (Telegram getFile, the sender's URL) and kept",
            "parameters": [{"$ref": "#/components/parameters/ReportId"},
                           {"name": "index", "in": "path", "required": True, "schema": {"type": "integer",
                                                                                     "minimum": 0}}],
            "responses": {"200": {"description": "the image", "content": {
                f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
                for kind in ("jpeg", "png", "gif", "webp")}},
                **_errors(400, 401, 403, 404),
                "415": _resp("the attachment is not a photo, or what it points to is not an image", ERROR),
                "502": _resp("the photo could not be fetched from where it lives", ERROR),
                "503": _resp("the door the photo came through is not configured", ERROR)}}},
        "/me": {"get": {"summary": "Who is logged in, the session's CSRF token, and the map settings",
                        "responses": {"200": _resp("the user", {"type": "object"}), **_errors(401, 403)}}},
        "/map/wards": {"get": {
            "summary": "Ward centres and radii from the offline gazetteer (GeoJSON), the map's base layer",
            "parameters": [{"name": "province", "in": "query", "schema": {"type": "string"},
                            "description": "a province code, or all; default: INTAKE_DEFAULT_PROVINCE"}],
            "responses": {"200": _resp("a GeoJSON FeatureCollection of points", {"type": "object"}),
                          **_errors(400, 401, 403)}}},
    }


def openapi_document() -> dict[str, Any]:
    report_props: dict[str, Any] = {
        "text": {"type": "string", "maxLength": 5000},
        "phone": {"type": "string", "maxLength": 64},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
        "accuracy": {"type": "number", "minimum": 0, "maximum": 100000},
        "location_source": {"type": "string", "enum": ["gps", "wifi", "cell", "calltaker", "address"]},
        "category": {"type": "string", "enum": ["fire", "police", "medical", "unknown"]},
        "language": {"type": "string", "maxLength": 16},
        "reporter_name": {"type": "string", "maxLength": 255},
        "reporter_id": {"type": "string", "maxLength": 255},
        "received_at": {"type": "string", "format": "date-time"},
        "attachments": {"type": "array", "items": {"type": "object"}},
    }
    for name, schema in report_props.items():
        schema["description"] = FIELDS[name]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hotline Intake API",
            "version": __version__,
            "description": "One emergency number, many doors, one deduplicated incident queue. "
            "Errors are JSON objects {error, detail}.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": [], "csrf": []}],
        "paths": {
            "/reports": {
                "get": {
                    "summary": "The newest reports of every door, newest first (the console's queue)",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                        {"name": "cursor", "in": "query", "schema": {"type": "integer"},
                         "description": "next_cursor of the previous page"},
                    ],
                    "responses": {"200": _resp("a page", {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ReportDetail"}},
                        "next_cursor": {"type": ["integer", "null"]}}}), **_errors(400, 401, 403)},
                },
                "post": {
                    "summary": "Report an emergency (the mobile app's door)",
                    "parameters": [{
                        "name": "Idempotency-Key", "in": "header", "required": True,
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "unique per report; a retry with the same key is the same report",
                    }],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ReportIn"}}}},
                    "responses": {
                        "201": _resp("stored", {"$ref": "#/components/schemas/IngestResult"}),
                        "200": _resp("already stored (a retry)", {"$ref": "#/components/schemas/IngestResult"}),
                        **_errors(400, 401, 403, 413, 422),
                    },
                }
            },
            "/incidents": {
                "get": {
                    "summary": "List incidents, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"},
                         "description": "comma list of open, acknowledged, closed, merged (default open,acknowledged)"},
                        {"name": "category", "in": "query", "schema": {"type": "string"},
                         "description": "comma list of fire, police, medical, unknown"},
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
                         "description": "updated at or after this time"},
                        {"name": "near", "in": "query", "schema": {"type": "string"},
                         "description": "lat,lon,radius_m"},
                        {"name": "cursor", "in": "query", "schema": {"type": "integer"},
                         "description": "next_cursor of the previous page"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    ],
                    "responses": {"200": _resp("a page", {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
                        "next_cursor": {"type": ["integer", "null"]}}}), **_errors(400, 401, 403)},
                }
            },
            "/incidents/{id}": {
                "get": {
                    "summary": "One incident with its reports and audit events",
                    "parameters": [{"$ref": "#/components/parameters/IncidentId"}],
                    "responses": {"200": _resp("the incident", {"$ref": "#/components/schemas/Incident"}),
                                  **_errors(400, 401, 403, 404)},
                }
            },
            "/incidents/{id}/eido": {"get": _export(
                "The incident as a NENA EIDO (NENA-STA-021.1a Emergency Incident Data Object, version 1.0)",
                "application/emergency.eido+json", {"type": "object", "required": ["$id", "eidoVersion"]})},
            "/incidents/{id}/cap": {"get": _export(
                "The incident as an OASIS CAP 1.2 alert addressed to its agencies (scope Private or Restricted); "
                "msgType Alert at version 1, Update later, Cancel once closed or merged",
                "application/cap+xml", {"type": "string"})},
            "/incidents/{id}/claim": {"post": _action(
                "Claim the incident (a lease; renew by claiming again)",
                {"type": "object", "properties": {"seconds": {"type": "integer", "minimum": 5, "maximum": 3600}}})},
            "/incidents/{id}/release": {"post": _action("Release your claim")},
            "/incidents/{id}/ack": {"post": _action("Acknowledge: your agency has taken it on")},
            "/incidents/{id}/close": {"post": _action(
                "Close", {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 2000}}})},
            "/incidents/{id}/merge": {"post": _action(
                "Merge this incident into another",
                {"type": "object", "required": ["into"], "properties": {"into": {"type": "integer"}}})},
            "/incidents/{id}/split": {"post": _action(
                "Move reports out into a new incident (returns the new incident, 201)",
                {"type": "object", "required": ["report_ids"],
                 "properties": {"report_ids": {"type": "array", "items": {"type": "integer"}}}})},
            "/incidents/{id}/notes": {"post": _action(
                "Add a note (201)",
                {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})},
            **_console_paths(),
            "/stream": {
                "get": {
                    "summary": "WebSocket of incident events; resume with ?cursor=<last cursor seen>",
                    "parameters": [
                        {"name": "cursor", "in": "query", "schema": {"type": "integer"},
                         "description": "replay every event after this one, then live; default: live only"},
                        {"name": "category", "in": "query", "schema": {"type": "string"}},
                        {"name": "token", "in": "query", "schema": {"type": "string"},
                         "description": "the API token, for clients that cannot set headers on a WebSocket"},
                    ],
                    "responses": {"101": _resp("switching to WebSocket: messages "
                                               "{type: hello|event, cursor, kind, incident_id, data}"),
                                  **_errors(400, 401, 403)},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a token from `intake tokens create --role ROLE`"},
                "session": {"type": "apiKey", "in": "cookie", "name": "intake_session",
                            "description": "a console login (POST /auth/login); browsers only"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "with a session cookie, every POST carries the session's CSRF token"},
            },
            "parameters": {"IncidentId": {"name": "id", "in": "path", "required": True,
                                          "schema": {"type": "integer", "minimum": 1}},
                           "ReportId": {"name": "id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 1}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "detail"], "properties": {
                    "error": {"type": "string"}, "detail": {}, "field": {"type": ["string", "null"]}}},
                "ReportIn": {"type": "object", "additionalProperties": False, "properties": report_props},
                "IngestResult": {"type": "object", "properties": {
                    "report_id": {"type": "integer"}, "incident_id": {"type": ["integer", "null"]},
                    "outcome": {"type": "string", "enum": ["created", "attached", "review", "duplicate"]},
                    "category": {"type": "string"}, "confidence": {"type": "number"},
                    "needs_review": {"type": "boolean"}, "reasons": {"type": "array", "items": {"type": "object"}},
                    "related_incident_id": {"type": ["integer", "null"]},
                    "location": {"type": ["object", "null"]}}},
                "ReportDetail": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "channel": {"type": "string"}, "text": {"type": "string"},
                    "category": {"type": "string"}, "confidence": {"type": "number"},
                    "location": {"type": ["object", "null"]}, "incident_id": {"type": ["integer", "null"]},
                    "call": {"type": ["object", "null"], "description": "the call's state (call reports)"},
                    "highlights": {"type": "array", "items": {"type": "object", "properties": {
                        "start": {"type": "integer"}, "end": {"type": "integer"},
                        "kind": {"type": "string", "enum": ["evidence", "negated", "address"]}}}},
                    "incident": {"type": ["object", "null"]},
                    "suggestions": {"type": "array", "items": {"type": "object"},
                                    "description": "incidents it may belong to (why: possible_duplicate | nearby)"}}},
                "Incident": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "category": {"type": "string"}, "status": {"type": "string"},
                    "priority": {"type": "integer"}, "summary": {"type": "string"},
                    "lat": {"type": ["number", "null"]}, "lon": {"type": ["number", "null"]},
                    "accuracy_m": {"type": ["number", "null"]}, "report_count": {"type": "integer"},
                    "opened_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "needs_review": {"type": "boolean"}, "lease": {"type": ["object", "null"]},
                    "reports": {"type": "array", "items": {"type": "object"}},
                    "events": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }
