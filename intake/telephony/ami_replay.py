"""A local AMI server that replays real Asterisk transcripts (tests, `intake bench`).

Transcripts (``shared/fixtures/asterisk/ami/*.txt``) hold every message as it
crossed the wire, each after a marker line ``--- recv|sent <ISO time> <epoch>``.
The server behaves as Asterisk did: greeting line, Login, FullyBooted, then the
recorded events with their recorded spacing (``speed`` > 1 replays faster).
When the transcript shows the client sending an action, the replay waits for
the client under test to send that action and answers with the recorded
responses, rewritten to the client's ActionID. Ping, Logoff and
CoreShowChannels sent at other times are answered from the replay's own view of
the live channels, as Asterisk would; so are Getvar (from the VarSet events the
replay sent) and CoreStatus. ``kill()`` / ``restart()`` drop and restore the
connection (``restart(fresh=True)``: a new Asterisk, with a new start-up time
in CoreStatus); a recorded ``Shutdown`` event closes the connection and stops
listening for as long as the real restart took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

GREETING = b"Asterisk Call Manager/11.0.0\r\n"
EOM = b"\r\n\r\n"
_MARKER = re.compile(r"^--- (recv|sent) (\S+) (\d+(?:\.\d+)?)$")
_LOGIN_EVENTS = ("fullybooted", "successfulauth")


@dataclass(frozen=True, slots=True)
class Entry:
    direction: str  # 'recv' (Asterisk → client) or 'sent' (client → Asterisk)
    t: float  # unix time it crossed the wire
    data: bytes  # the message exactly as on the wire

    @property
    def headers(self) -> dict[str, str]:
        return parse_headers(self.data)


def parse_headers(data: bytes) -> dict[str, str]:
    """Header names lower-cased; the first occurrence of a repeated header wins."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in out:
            out[name.strip().lower()] = value.strip()
    return out


def load_transcript(path: str | Path) -> list[Entry]:
    entries: list[Entry] = []
    current: tuple[str, float] | None = None
    body = bytearray()
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.startswith(b"--- "):
                m = _MARKER.match(raw.decode().rstrip("\n"))
                if m:
                    if current is not None:
                        entries.append(Entry(current[0], current[1], bytes(body)))
                    current, body = (m.group(1), float(m.group(3))), bytearray()
                    continue
            if current is None:
                continue  # the '#' header
            body += raw
    if current is not None:
        entries.append(Entry(current[0], current[1], bytes(body)))
    return entries


def _message(**headers: str) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.actions: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.gone = asyncio.Event()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class AmiReplayServer:
    def __init__(self, transcript: str | Path | list[Entry], *, speed: float = 1.0, username: str = "intake",
                 secret: str = "intake-secret", host: str = "127.0.0.1", port: int = 0,
                 action_timeout: float = 10.0) -> None:
        self.entries = load_transcript(transcript) if not isinstance(transcript, list) else transcript
        self.speed = speed
        self.username, self.secret = username, secret
        self.host, self.port = host, port
        self.action_timeout = action_timeout
        self.live: dict[str, dict[str, Any]] = {}  # Uniqueid → the channel's latest headers (and "_vars")
        self.sent_events: list[dict[str, str]] = []  # every event sent, for tests
        self.received_actions: list[dict[str, str]] = []  # every action a client sent
        self.logins = 0
        self.startup = time.strftime("%Y-%m-%d %H:%M:%S")  # CoreStatus CoreStartupDate/Time
        self._starts = 1
        self.finished = asyncio.Event()
        self._client: _Client | None = None
        self._client_ready = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._expected: dict[str, int] = {}
        self._stack = contextlib.AsyncExitStack()

    # --- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> AmiReplayServer:
        await self._listen()
        self._tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._replay_task = self._tasks.create_task(self._replay())
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._replay_task is not None:
            self._replay_task.cancel()
        await self._drop_client()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._stack.__aexit__(et, e, tb)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def kill(self) -> None:
        """Asterisk dies: connections drop at once and nothing listens."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_client(abort=True)

    async def restart(self, fresh: bool = False) -> None:
        """Listen again; `fresh`: this is a new Asterisk (its start-up time changes, its calls are gone)."""
        if fresh:
            self._starts += 1
            self.startup = f"{time.strftime('%Y-%m-%d %H:%M:%S')} #{self._starts}"
            self.live.clear()
        await self._listen()

    async def _drop_client(self, abort: bool = False) -> None:
        client, self._client = self._client, None
        self._client_ready.clear()
        if client is not None:
            if abort:
                client.writer.transport.abort()
            else:
                client.writer.close()
            client.gone.set()
            with contextlib.suppress(ConnectionError):
                await client.writer.wait_closed()

    # --- one connection ------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(reader, writer)
        writer.write(GREETING)
        try:
            login = parse_headers(await reader.readuntil(EOM))
            action_id = login.get("actionid", "")
            if login.get("action", "").lower() != "login" or (login.get("username"), login.get("secret")) != (
                self.username, self.secret):
                writer.write(_message(Response="Error", ActionID=action_id, Message="Authentication failed"))
                await writer.drain()
                writer.close()
                return
            writer.write(_message(Response="Success", ActionID=action_id, Message="Authentication accepted"))
            writer.write(_message(Event="FullyBooted", Privilege="system,all", Uptime="1", LastReload="1",
                                  Status="Fully Booted"))
            self.logins += 1
            if self._client is not None:
                await self._drop_client()
            self._client = client
            self._client_ready.set()
            while True:
                action = parse_headers(await reader.readuntil(EOM))
                self.received_actions.append(action)
                self._answer(client, action)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            client.gone.set()
            if self._client is client:
                self._client = None
                self._client_ready.clear()
            writer.close()

    def _answer(self, client: _Client, action: dict[str, str]) -> None:
        name = action.get("action", "").lower()
        action_id = action.get("actionid", "")
        if self._expected.get(name, 0) > 0:
            client.actions.put_nowait(action)  # the transcript answers it
        elif name == "ping":
            client.send(_message(Response="Success", ActionID=action_id, Ping="Pong", Timestamp=f"{time.time():.6f}"))
        elif name == "logoff":
            client.send(_message(Response="Goodbye", ActionID=action_id, Message="Thanks for all the fish."))
            client.writer.close()
        elif name == "coreshowchannels":
            self._core_show_channels(client, action_id)
        elif name == "corestatus":
            date, _, clock = self.startup.partition(" ")
            client.send(_message(Response="Success", ActionID=action_id, CoreStartupDate=date,
                                 CoreStartupTime=clock, CoreCurrentCalls=str(len(self.live))))
        elif name == "getvar" and action.get("channel"):
            ch = next((c for c in self.live.values() if c.get("channel") == action["channel"]), None)
            if ch is None:
                client.send(_message(Response="Error", ActionID=action_id, Message="No such channel"))
            else:
                value = ch.get("_vars", {}).get(action.get("variable", ""), "")
                client.send(_message(Response="Success", ActionID=action_id, Variable=action.get("variable", ""),
                                     Value=value))
        else:
            client.send(_message(Response="Error", ActionID=action_id, Message="Invalid/unknown command"))

    def _core_show_channels(self, client: _Client, action_id: str) -> None:
        client.send(_message(Response="Success", ActionID=action_id, EventList="start",
                             Message="Channels will follow"))
        for ch in self.live.values():
            client.send(_message(
                Event="CoreShowChannel", ActionID=action_id, Channel=ch.get("channel", ""),
                ChannelState=ch.get("channelstate", ""), ChannelStateDesc=ch.get("channelstatedesc", ""),
                CallerIDNum=ch.get("calleridnum", ""), CallerIDName=ch.get("calleridname", ""),
                ConnectedLineNum=ch.get("connectedlinenum", ""), ConnectedLineName=ch.get("connectedlinename", ""),
                Language=ch.get("language", ""), AccountCode=ch.get("accountcode", ""),
                Context=ch.get("context", ""), Exten=ch.get("exten", ""), Priority=ch.get("priority", ""),
                Uniqueid=ch.get("uniqueid", ""), Linkedid=ch.get("linkedid", ""),
                Application=ch.get("application", ""), ApplicationData=ch.get("appdata", ""),
                Duration="00:00:01", BridgeId="",
            ))
        client.send(_message(Event="CoreShowChannelsComplete", ActionID=action_id, EventList="Complete",
                             ListItems=str(len(self.live))))

    # --- the replay ------------------------------------------------------------------

    def _plan(self) -> list[Entry]:
        """The transcript without its login exchanges and pings (the server makes its own)."""
        skip_ids: set[str] = set()
        out: list[Entry] = []
        for e in self.entries:
            h = e.headers
            if e.direction == "sent" and h.get("action", "").lower() in ("login", "ping"):
                skip_ids.add(h.get("actionid", ""))
                continue
            if e.direction == "recv":
                if e.data.startswith(b"Asterisk Call Manager/"):
                    continue
                if h.get("actionid") in skip_ids or h.get("event", "").lower() in _LOGIN_EVENTS:
                    continue
            out.append(e)
        return out

    async def _connected(self) -> _Client:
        while True:
            await self._client_ready.wait()
            if self._client is not None:
                return self._client

    async def _replay(self) -> None:
        plan = self._plan()
        for e in plan:
            if e.direction == "sent":
                name = e.headers.get("action", "").lower()
                self._expected[name] = self._expected.get(name, 0) + 1
        if not plan:
            self.finished.set()
            return
        client = await self._connected()
        loop = asyncio.get_running_loop()
        base, t0 = loop.time(), plan[0].t
        id_map: dict[str, str] = {}
        for i, e in enumerate(plan):
            if e.direction == "sent":
                action = await self._wait_action(e)
                if action is not None:
                    id_map[e.headers.get("actionid", "")] = action.get("actionid", "")
                base, t0 = loop.time(), e.t
                continue
            delay = base + (e.t - t0) / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._client is None:  # Asterisk was killed: wait for it to come back and for a login
                client = await self._connected()
                base, t0 = loop.time(), e.t
            client = self._client or client
            data = e.data
            recorded = e.headers.get("actionid")
            if recorded and recorded in id_map:
                data = data.replace(f"ActionID: {recorded}".encode(), f"ActionID: {id_map[recorded]}".encode())
            self._track(e.headers)
            client.send(data)
            if e.headers.get("event", "").lower() == "shutdown":
                await self._restart_like_asterisk(plan[i + 1:], e)
                client = await self._connected()
                base, t0 = loop.time(), plan[i + 1].t if i + 1 < len(plan) else e.t
        self.finished.set()

    async def _restart_like_asterisk(self, rest: list[Entry], shutdown: Entry) -> None:
        await self.kill()
        gap = (rest[0].t - shutdown.t) if rest else 2.0
        await asyncio.sleep(max(0.05, gap / self.speed))
        await self.restart(fresh=True)

    async def _wait_action(self, e: Entry) -> dict[str, str] | None:
        name = e.headers.get("action", "").lower()
        deadline = asyncio.get_running_loop().time() + self.action_timeout
        try:
            while True:
                client = await self._connected()
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    log.warning("replay: the client never sent %s; going on", name)
                    return None
                try:
                    action = await asyncio.wait_for(client.actions.get(), min(remaining, 0.2))
                except TimeoutError:
                    continue
                if action.get("action", "").lower() == name:
                    return action
                self._answer_unexpected(client, action)
        finally:
            self._expected[name] -= 1

    def _answer_unexpected(self, client: _Client, action: dict[str, str]) -> None:
        name = action.get("action", "").lower()
        count = self._expected.get(name, 0)
        self._expected[name] = 0
        try:
            self._answer(client, action)
        finally:
            self._expected[name] = count

    def _track(self, h: dict[str, str]) -> None:
        event = h.get("event", "").lower()
        if not event:
            return
        self.sent_events.append(h)
        uid = h.get("uniqueid")
        if not uid:
            return
        if event == "newchannel":
            self.live[uid] = dict(h)
        elif event == "hangup":
            self.live.pop(uid, None)
        elif uid in self.live:
            for key in ("channelstate", "channelstatedesc", "context", "exten", "priority", "calleridnum",
                        "connectedlinenum", "connectedlinename"):
                if key in h:
                    self.live[uid][key] = h[key]
            if event == "newexten":
                self.live[uid]["application"] = h.get("application", "")
                self.live[uid]["appdata"] = h.get("appdata", "")
            elif event == "varset":
                self.live[uid].setdefault("_vars", {})[h.get("variable", "")] = h.get("value", "")


@contextlib.asynccontextmanager
async def replay(path: str | Path, **kwargs: object) -> AsyncIterator[AmiReplayServer]:
    async with AmiReplayServer(path, **kwargs) as server:  # type: ignore[arg-type]
        yield server
