"""The channel contract: what every door does (see ARCHITECTURE.md).

1. verify the request is genuine        → raise Unauthorized / Forbidden
2. parse it, purely, into ReportIns      → raise PayloadError; [] for a known event that carries no report
3. reply to the reporter where it can    (after the report is stored)

Listener doors (AMI, SIA DC-09, MQTT) also have `async run(publish)`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

from intake.core.model import ReportIn


class ChannelError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail


class PayloadError(ChannelError):
    """The request is genuine but malformed: 400 with what was wrong."""

    status = 400
    code = "invalid_payload"


class PayloadTooLarge(ChannelError):
    status = 413
    code = "too_large"


class Unauthorized(ChannelError):
    """No or bad credentials / signature."""

    status = 401
    code = "unauthorized"


class Forbidden(ChannelError):
    status = 403
    code = "forbidden"


def json_object(body: bytes, what: str = "the body", *, detail: Any = None) -> dict[str, Any]:
    """`body` as a JSON object, or a PayloadError saying `what` was wrong with it."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"{what} must be a JSON object", detail=detail)
    return data


def form_fields(body: bytes) -> dict[str, str]:
    """`body` as an application/x-www-form-urlencoded form (a field given twice is an error)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"the body is not an application/x-www-form-urlencoded form: {exc}") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise PayloadError(f"field {key!r} appears twice", field=key)
        form[key] = value
    return form


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request as a door sees it: enough to verify a signature and parse, nothing framework-specific."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    received_at: datetime
    query: Mapping[str, str] = field(default_factory=dict)
    remote: str | None = None


class Door(Protocol):
    name: str

    def verify(self, inbound: Inbound) -> None: ...

    def parse(self, inbound: Inbound) -> Sequence[ReportIn]: ...


Publish = Callable[[ReportIn], Awaitable[Any]]


class ListenerDoor(Door, Protocol):
    async def run(self, publish: Publish) -> None: ...
