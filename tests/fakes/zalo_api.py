"""A local Zalo OA Open API: POST /v3.0/oa/message/cs with header access_token, calls recorded.

As openapi.zalo.me does, it answers problems with HTTP 200 and a negative "error" (-216: bad access token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Sent:
    access_token: str | None
    body: dict[str, Any]


@dataclass
class FakeZaloApi:
    access_token: str
    sent: list[Sent] = field(default_factory=list)
    fail_status: int | None = None  # answer with this HTTP error instead (an outage)
    _server: TestServer | None = None

    async def __aenter__(self) -> FakeZaloApi:
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._send)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def texts(self) -> list[str]:
        return [s.body["message"]["text"] for s in self.sent]

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sent.append(Sent(request.headers.get("access_token"), body))
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="upstream error")
        if request.headers.get("access_token") != self.access_token:
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        user_id = body.get("recipient", {}).get("user_id")
        if not user_id or not body.get("message", {}).get("text"):
            return web.json_response({"error": -201, "message": "Parameters are invalid"})
        return web.json_response({"data": {"message_id": f"m{len(self.sent):06d}", "user_id": user_id},
                                  "error": 0, "message": "Success"})
