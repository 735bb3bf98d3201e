"""A local Telegram Bot API: POST /bot<token>/<method>, answered as api.telegram.org answers, calls recorded.

Like the real server it takes parameters as JSON, as a urlencoded form or as multipart (python-telegram-bot
sends a form, with objects such as reply_markup JSON-encoded inside it), and on GET with a query string.
Files added with `add_file` are served as the Bot API serves them: getFile gives a file_path, and
GET /file/bot<token>/<file_path> gives the bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

#: Parameters the Bot API takes as JSON-serialised objects when they come in a form.
_JSON_PARAMS = frozenset({"reply_markup", "reply_parameters", "entities", "link_preview_options"})

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Hotline 114", "username": "hotline_intake_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}


@dataclass
class Call:
    method: str
    params: dict[str, Any]


@dataclass
class FakeTelegramApi:
    token: str
    calls: list[Call] = field(default_factory=list)
    fail_status: int | None = None  # answer every call with this HTTP error, as Telegram does when it is down
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # file_id → (unique id, path, bytes)
    downloads: list[str] = field(default_factory=list)  # file paths downloaded
    _server: TestServer | None = None
    _next_message_id: int = 9000

    async def __aenter__(self) -> FakeTelegramApi:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._call)
        app.router.add_get("/bot{token}/{method}", self._call)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()

    @property
    def url(self) -> str:
        """What INTAKE_TELEGRAM_API_URL is set to (the Bot API's base, without /bot<token>)."""
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    def sent(self) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == "sendMessage"]

    def add_file(self, file_id: str, file_unique_id: str, data: bytes, file_path: str) -> None:
        self.files[file_id] = (file_unique_id, file_path, data)

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        path = request.match_info["path"]
        self.downloads.append(path)
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="Internal Server Error")
        for _unique, file_path, data in self.files.values():
            if file_path == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        if request.content_type == "application/json":
            data = await request.json()
            return dict(data)
        form = await request.post()
        out: dict[str, Any] = {}
        for key, value in form.items():
            text = value if isinstance(value, str) else value.file.read().decode()
            out[key] = json.loads(text) if key in _JSON_PARAMS else text
        return out

    async def _call(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params))
        if self.fail_status is not None:
            return web.json_response({"ok": False, "error_code": self.fail_status,
                                      "description": "Internal Server Error"}, status=self.fail_status)
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method == "sendMessage":
            if not str(params.get("chat_id", "")).lstrip("-").isdigit() or not params.get("text"):
                return web.json_response({"ok": False, "error_code": 400,
                                          "description": "Bad Request: message text is empty"}, status=400)
            self._next_message_id += 1
            message = {"message_id": self._next_message_id, "from": BOT_USER,
                       "chat": {"id": int(params["chat_id"]), "type": "private"},
                       "date": int(time.time()), "text": params["text"]}
            return web.json_response({"ok": True, "result": message})
        if method == "getFile":
            found = self.files.get(str(params.get("file_id", "")))
            if found is None:
                return web.json_response({"ok": False, "error_code": 400,
                                          "description": "Bad Request: invalid file_id"}, status=400)
            unique, file_path, data = found
            return web.json_response({"ok": True, "result": {
                "file_id": params["file_id"], "file_unique_id": unique, "file_size": len(data),
                "file_path": file_path}})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
