"""The Asterisk bridge: AMI events make and grow call reports; AMI actions route calls.

panoramisk 1.4 parses the wire and matches responses to actions; this module
owns the connection's life, because panoramisk's own manager reconnects on a
fixed 2 s timer, never notices a half-open connection (Ping without a Pong
timeout) and runs event handlers as detached tasks. Here:

- one connection at a time, reconnected with exponential backoff and jitter;
- a Ping every `ping_interval`; no answer within `ping_timeout` → the
  connection is declared dead and dropped;
- events are handled strictly in arrival order by one consumer;
- after every (re)connect, live calls are rebuilt from CoreShowChannels: calls
  that started while we were away are created, calls that ended are closed, and
  nothing is created twice (a call's report is keyed by its Linkedid).

Known panoramisk pitfalls handled (see shared/fixtures/asterisk/README.md):
Originate always carries `Async: true`; error responses come back as messages
(turned into `AmiActionError` here); events carrying a pending ActionID are
delivered to that action's result, not to event handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from intake import locfix
from intake.core.model import ReportIn
from intake.core.phone import EMERGENCY_SHORT_CODES, normalise_phone
from intake.pipeline import Intake
from intake.telephony import screenpop

log = logging.getLogger(__name__)

#: AMI Hangup causes (Q.850) worth naming in the record.
HANGUP_CAUSES = {0: "unknown", 16: "normal clearing", 17: "user busy", 18: "no user responding",
                 19: "no answer", 21: "call rejected", 127: "interworking (caller cancelled)"}
#: Where a transfer to an agency sends the call (dialplans/extensions.conf, context intake-transfer).
TRANSFER_CONTEXT = "intake-transfer"
CALLBACK_CONTEXT = "intake-callback"


class AmiError(Exception):
    pass


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error` (no such channel, permission denied, ...)."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.message = message


class AmiNotConnected(AmiError):
    pass


@dataclass
class CallState:
    linkedid: str
    uniqueid: str
    channel: str
    caller_number: str
    dialled_number: str
    started_at: datetime
    state: str = "ringing"  # ringing | up | hungup
    answered_at: datetime | None = None
    answered_by: str | None = None
    queue: str | None = None  # the call-taker queue it waits in (QueueCallerJoin)
    offered_to: str | None = None  # the queue member whose phone rings for it now (AgentCalled)
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    audio_uuid: str | None = None  # INTAKE_UUID: ties the AudioSocket connection to this call
    recording: str | None = None
    transferred_to: str | None = None
    dtmf: str = ""
    needs_callback: bool = False
    callback_reason: str | None = None
    application: str | None = None  # the dialplan application the caller's channel is in
    audio_connected: bool = False  # an AudioSocket connection for audio_uuid reached this server
    report_id: int | None = None
    incident_id: int | None = None
    channels: set[str] = field(default_factory=set)  # every Uniqueid of the call

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("channels")
        for key in ("started_at", "answered_at", "ended_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        if self.answered_at and self.ended_at:
            data["talk_seconds"] = round((self.ended_at - self.answered_at).total_seconds(), 1)
        if self.ended_at:
            data["duration_seconds"] = round((self.ended_at - self.started_at).total_seconds(), 1)
        return data


class _Link:
    """The panoramisk protocol's 'factory': what AMIProtocol calls back into."""

    forgetable_actions = ("ping", "login")

    def __init__(self, events: asyncio.Queue[Message | None]) -> None:
        self.events = events
        self.awaiting_actions: deque[Any] = deque()
        self.lost = asyncio.Event()
        self.log = log
        self.save_stream = None

    def dispatch(self, message: Message) -> None:
        self.events.put_nowait(message)

    def connection_lost(self, exc: object) -> None:
        self.lost.set()


CallEvent = Callable[[str, CallState, dict[str, Any]], Awaitable[None]]


class AmiBridge:
    def __init__(
        self,
        intake: Intake,
        *,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str = "intake",
        secret: str = "",
        contexts: tuple[str, ...] = ("intake", "intake-inline"),
        lines: tuple[str, ...] = (*EMERGENCY_SHORT_CODES, "116"),
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        action_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_call_event: CallEvent | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.intake = intake
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.contexts, self.lines = contexts, lines
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.action_timeout = action_timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.on_call_event = on_call_event
        self.clock = clock
        self.calls: dict[str, CallState] = {}  # by Linkedid
        self._by_uniqueid: dict[str, str] = {}  # Uniqueid → Linkedid
        self._protocol: AMIProtocol | None = None
        self._link: _Link | None = None
        self._logged_in = False
        self.connected = asyncio.Event()  # logged in and live calls rebuilt
        self.connections = 0
        # True when this process also serves the calls' audio (CallAudioRouter sets it): a call that
        # reached AudioSocket() and ended without its audio ever arriving was cut off, not finished.
        self.expects_audio = False

    # --- connection life -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set."""
        delay = self.backoff_initial
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = self.backoff_initial  # a session that logged in resets the backoff
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("AMI %s:%s: %s; retrying in %.1f s", self.host, self.port, exc, delay)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(self.backoff_max, delay * 2)

    async def _session(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Message | None] = asyncio.Queue()
        link = _Link(events)
        _, protocol = await asyncio.wait_for(
            loop.create_connection(AMIProtocol, self.host, self.port), timeout=10)
        protocol.factory = link
        protocol.log = log
        protocol.config = {}
        protocol.encoding = "utf-8"
        self._protocol, self._link = protocol, link
        try:
            login = await asyncio.wait_for(protocol.send({
                "Action": "Login", "Username": self.username, "Secret": self.secret, "Events": "on"}), 10)
            if not login.success:
                raise AmiActionError("Login", login.get("Message", "refused"))
            self._logged_in = True
            self.connections += 1
            log.info("AMI connected to %s:%s (connection %d)", self.host, self.port, self.connections)
            await self._rebuild()
            self.connected.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pinger(protocol, link))
                consumer = tg.create_task(self._consume(events))
                ended = tg.create_task(_first_of(link.lost, stop))
                await ended
                events.put_nowait(None)  # drain what arrived, then stop
                await consumer
                link.lost.set()  # ends the pinger
        finally:
            self.connected.clear()
            self._logged_in = False
            self._protocol, self._link = None, None
            protocol.close()

    async def _pinger(self, protocol: AMIProtocol, link: _Link) -> None:
        while not link.lost.is_set():
            try:
                await asyncio.wait_for(link.lost.wait(), self.ping_interval)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(protocol.send({"Action": "Ping"}), self.ping_timeout)
            except TimeoutError:
                log.warning("AMI: no Pong within %.1f s; dropping the connection", self.ping_timeout)
                protocol.transport.abort()
                link.lost.set()
                return

    async def _consume(self, events: asyncio.Queue[Message | None]) -> None:
        while (message := await events.get()) is not None:
            try:
                await self.handle_event(message)
            except Exception:  # one bad event must not stop the call stream; it is logged in full
                log.exception("AMI event %s could not be handled", message.get("Event"))

    # --- actions ----------------------------------------------------------------------

    async def action(self, action: str, **fields: str) -> Any:
        """Send an action; `Response: Error` raises AmiActionError."""
        if self._protocol is None or not self._logged_in:
            raise AmiNotConnected("not connected to Asterisk")
        if action.lower() == "originate":
            fields.setdefault("Async", "true")  # without it panoramisk 1.4 drops the connection
        # as_list=None: let panoramisk see list responses (EventList, async Originate) through to their end
        result = await self._answer(self._protocol.send({"Action": action, **fields}, as_list=None), action)
        first = result[0] if isinstance(result, list) else result
        if first.get("Response") == "Error":
            raise AmiActionError(action, first.get("Message", "error"))
        return result

    async def _answer(self, pending: Any, action: str) -> Any:
        """The answer to a sent action; a connection lost meanwhile fails at once (panoramisk would leave the
        future pending until the timeout)."""
        link = self._link
        assert link is not None
        lost = asyncio.ensure_future(link.lost.wait())
        try:
            done, _ = await asyncio.wait({pending, lost}, timeout=self.action_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if pending in done:
            return pending.result()
        pending.cancel()
        if lost in done:
            raise AmiNotConnected(f"the AMI connection was lost before Asterisk answered {action}")
        raise TimeoutError(f"Asterisk did not answer {action} within {self.action_timeout:g} s")

    async def transfer(self, linkedid: str, agency: str) -> None:
        """Send the caller to an agency's queue (AMI Redirect)."""
        call = self._call(linkedid)
        await self.action("Redirect", Channel=call.channel, Context=TRANSFER_CONTEXT, Exten=agency, Priority="1")
        call.transferred_to = agency
        await self._record(call, "transferred", {"agency": agency})

    async def call_back(self, number: str, *, report_id: int | None = None,
                        endpoint: str = "PJSIP/{number}@trunk", caller_id: str = "112") -> str:
        """Ring an abandoned caller back (AMI Originate into the call-back context); returns its ChannelId.

        With `report_id` (the abandoned call's report), the attempt and its outcome are kept on that report.
        """
        channel_id = f"callback-{random.getrandbits(48):012x}"
        attempt: dict[str, Any] = {"number": number, "channel_id": channel_id, "at": self.clock().isoformat()}
        try:
            result = await self.action(
                "Originate", Channel=endpoint.format(number=number), Context=CALLBACK_CONTEXT, Exten="s",
                Priority="1", CallerID=caller_id, Timeout="30000", ChannelId=channel_id,
                Variable=f"INTAKE_CALLBACK_REPORT={report_id or ''}")
            responses = result if isinstance(result, list) else [result]
            final = next((r for r in responses if r.get("Event") == "OriginateResponse"), None)
            if final is not None and final.get("Response") == "Failure":
                raise AmiActionError("Originate", f"call-back to {number} failed (reason {final.get('Reason')})")
            attempt["outcome"] = "ringing" if final is None else f"answered (reason {final.get('Reason')})"
        except AmiError as exc:
            attempt["outcome"] = f"failed: {exc}"
            raise
        finally:
            if report_id is not None:
                await self._note_callback(report_id, attempt)
        return channel_id

    async def _note_callback(self, report_id: int, attempt: dict[str, Any]) -> None:
        async with self.intake.store.read() as repo:
            row = await repo.report(report_id)
        earlier = list(((row or {}).get("raw") or {}).get("callbacks", []))
        await self.intake.update_report(report_id, raw_patch={"callbacks": [*earlier, attempt]}, actor="ami")

    async def get_var(self, linkedid: str, name: str) -> str | None:
        """A channel variable of a live call; None when it is unset (Asterisk sends no or an empty Value)."""
        result = await self.action("Getvar", Channel=self._call(linkedid).channel, Variable=name)
        first = result[0] if isinstance(result, list) else result
        return first.get("Value") or None

    def audio_started(self, audio_uuid: str) -> CallState | None:
        """The audio door found this call's AudioSocket connection."""
        call = next((c for c in self.calls.values() if c.audio_uuid == audio_uuid), None)
        if call is not None:
            call.audio_connected = True
        return call

    async def hangup(self, linkedid: str, cause: int = 16) -> None:
        await self.action("Hangup", Channel=self._call(linkedid).channel, Cause=str(cause))

    async def set_var(self, linkedid: str, name: str, value: str) -> None:
        await self.action("Setvar", Channel=self._call(linkedid).channel, Variable=name, Value=value)

    def _call(self, linkedid: str) -> CallState:
        call = self.calls.get(linkedid)
        if call is None:
            raise AmiError(f"no live call {linkedid}")
        return call

    # --- state ---------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        """After a (re)connect: the live channels are the truth."""
        result = await self.action("CoreShowChannels")
        items = [m for m in (result if isinstance(result, list) else [result]) if m.get("Event") == "CoreShowChannel"]
        log.info("AMI: %d live channel(s) after connecting", len(items))
        seen: set[str] = set()
        for item in items:
            linkedid = item.get("Linkedid", "")
            seen.add(linkedid)
            if linkedid not in self.calls and self._is_intake_call(item):
                await self._new_call(item)
            elif linkedid in self.calls:
                call = self.calls[linkedid]
                call.channels.add(item.get("Uniqueid", ""))
                if item.get("ChannelState") == "6" and call.state == "ringing":
                    call.state, call.answered_at = "up", self.clock()
        for linkedid, call in list(self.calls.items()):
            if linkedid not in seen and call.state != "hungup":
                # It ended while we were away; the cause is lost with the connection.
                await self._ended(call, cause=None, cause_text="ended while the AMI connection was down")

    def _is_intake_call(self, h: Message | dict[str, str]) -> bool:
        return h.get("Context") in self.contexts and h.get("Exten") in self.lines

    async def handle_event(self, m: Message | dict[str, str]) -> None:
        event = m.get("Event", "")
        uniqueid = m.get("Uniqueid", "")
        linkedid = m.get("Linkedid") or self._by_uniqueid.get(uniqueid, "")
        if event == "Newchannel":
            if linkedid in self.calls:
                self.calls[linkedid].channels.add(uniqueid)
                self._by_uniqueid[uniqueid] = linkedid
            elif self._is_intake_call(m):
                await self._new_call(m)
            return
        call = self.calls.get(linkedid)
        if call is None:
            return
        if event == "VarSet":
            name, value = m.get("Variable", ""), m.get("Value", "")
            if name == "INTAKE_UUID":
                call.audio_uuid = value
                await self._record(call, "audio", {"audio_uuid": value})
            elif name == "MIXMONITOR_FILENAME":
                call.recording = value
        elif event == "Newstate" and m.get("ChannelState") == "6" and uniqueid == call.uniqueid:
            if call.state == "ringing":
                call.state, call.answered_at = "up", self.clock()
                await self._record(call, "answered", {})
        elif event == "QueueCallerJoin":
            call.queue = m.get("Queue") or call.queue
            await self._record(call, "queued", {"queue": call.queue})
        elif event == "AgentCalled":
            # Name queue members after the console users (queues.conf: member => PJSIP/1001,0,<user>): the
            # console then knows which call rings on whose phone.
            call.offered_to = m.get("MemberName") or m.get("Interface")
            await self._offer(call, m, ringing=True)
        elif event == "AgentRingNoAnswer":
            call.offered_to = None
            await self._offer(call, m, ringing=False)
        elif event == "AgentConnect":
            call.answered_by = m.get("MemberName") or m.get("Interface")
            call.offered_to = None
            await self._record(call, "answered_by", {"calltaker": call.answered_by})
            await self._offer(call, m, ringing=False, answered=True)
        elif event == "Newexten" and uniqueid == call.uniqueid:
            call.application = m.get("Application") or call.application
        elif event == "DTMFEnd" and m.get("Direction") == "Received":
            call.dtmf += m.get("Digit", "")
        elif event == "Hangup" and uniqueid == call.uniqueid:
            cause = int(m.get("Cause", "0") or 0)
            await self._ended(call, cause=cause, cause_text=m.get("Cause-txt"))

    async def _new_call(self, m: Message | dict[str, str]) -> None:
        now = self.clock()
        linkedid = m.get("Linkedid", "")
        call = CallState(linkedid=linkedid, uniqueid=m.get("Uniqueid", ""), channel=m.get("Channel", ""),
                         caller_number=m.get("CallerIDNum", ""), dialled_number=m.get("Exten", ""), started_at=now)
        call.channels.add(call.uniqueid)
        if m.get("ChannelState") == "6":
            call.state, call.answered_at = "up", now
        self.calls[linkedid] = call
        self._by_uniqueid[call.uniqueid] = linkedid
        result = await self.intake.ingest(ReportIn(
            channel="call", channel_ref=linkedid, received_at=now, phone=call.caller_number or None,
            dialled_number=call.dialled_number,
            # Only what never changes for this call goes in `raw`: a call rebuilt after a reconnect is the
            # same report (same digest), not an idempotency conflict.
            raw={"linkedid": linkedid, "caller_number": call.caller_number, "channel": call.channel},
        ))
        call.report_id, call.incident_id = result.report_id, result.incident_id
        if (located := await locfix.apply_pending(self.intake, call.report_id)) is not None:
            call.incident_id = located.incident_id  # an AML fix that came before the call
        await screenpop.publish(self.intake, await screenpop.build(
            self.intake, caller_number=call.caller_number, line=call.dialled_number, report_id=call.report_id,
            incident_id=call.incident_id, call=call.record()))
        await self._emit("ringing", call, {"outcome": result.outcome.value,
                                           "phone": normalise_phone(call.caller_number).e164
                                           if call.caller_number else None})

    async def _ended(self, call: CallState, *, cause: int | None, cause_text: str | None) -> None:
        call.state, call.ended_at = "hungup", self.clock()
        call.hangup_cause = cause
        call.hangup_cause_text = cause_text or (HANGUP_CAUSES.get(cause) if cause is not None else None)
        if call.answered_at is None:
            call.needs_callback, call.callback_reason = True, "hung up before answer"
        elif (self.expects_audio and call.audio_uuid and not call.audio_connected and not call.transferred_to
              and not call.answered_by):
            # Answered, sent to AudioSocket(), no call-taker ever connected, and gone without a byte of audio:
            # the caller was cut off (with the dialplan's fork, a call a person answered is never flagged).
            call.needs_callback, call.callback_reason = True, "cut off: the call's audio never reached intake"
        await self._record(call, "hungup", {"cause": cause, "needs_callback": call.needs_callback})
        self.calls.pop(call.linkedid, None)
        for uid in call.channels:
            self._by_uniqueid.pop(uid, None)

    async def _offer(self, call: CallState, m: Message | dict[str, str], *, ringing: bool,
                     answered: bool = False) -> None:
        """`call.offered` on the stream: which call-taker's phone rings for the call (or stopped ringing)."""
        payload = {"linkedid": call.linkedid, "report_id": call.report_id, "queue": m.get("Queue"),
                   "member": m.get("MemberName"), "interface": m.get("Interface"), "ringing": ringing,
                   "answered": answered}
        async with self.intake.store.transaction() as repo:
            await repo.write_outbox([{"at": self.clock(), "topic": "call", "kind": "call.offered",
                                      "incident_id": call.incident_id, "report_id": call.report_id,
                                      "payload": payload}])
        await self._emit("offered" if ringing else "offer_ended", call, payload)

    async def _record(self, call: CallState, what: str, data: dict[str, Any]) -> None:
        if call.report_id is not None:
            await self.intake.update_report(call.report_id, raw_patch={"call": call.record()}, actor="ami")
        await self._emit(what, call, data)

    async def _emit(self, what: str, call: CallState, data: dict[str, Any]) -> None:
        if self.on_call_event is not None:
            await self.on_call_event(what, call, data)


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
