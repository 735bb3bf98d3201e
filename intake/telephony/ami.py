"""The Asterisk bridge: AMI events make and grow call reports; AMI actions route calls.

panoramisk 1.4 parses the wire and matches responses to actions; this module owns the connection's life,
because panoramisk's own manager reconnects on a fixed 2 s timer, never notices a half-open connection
(Ping without a Pong timeout) and runs event handlers as detached tasks. Here:

- one connection at a time, reconnected with exponential backoff and jitter; a Ping every `ping_interval`,
  and no answer within `ping_timeout` drops the connection;
- events are read by one consumer, in arrival order, and only change the calls' state in memory; what
  must be written (the report, the screen-pop, the call's state, the stream's events) goes to the call's
  own worker, which writes it in order. One call's writes never hold up another call's screen-pop, and a
  burst of events for one call becomes one write of its latest state;
- after every (re)connect, live calls are rebuilt from CoreShowChannels, recognised by what they carry
  (INTAKE_LINE, INTAKE_UUID, INTAKE_CALLBACK), wherever they are in the dialplan: calls that started while
  we were away are created, calls that ended are closed, nothing is created twice (a call's report is
  keyed by its Linkedid), and a call whose audio fork died with a previous intake process is forked again;
  CoreStatus tells whether Asterisk itself restarted (then every call it had was cut off).

When a call counts as answered: a call-taker picked it up (app_queue's AgentConnect). The dialplan answers
every call at once to fork its audio (`channel_answered_at`), which is not a person answering. A call no
call-taker answered is flagged for call-back unless the centre itself ended it.

Known panoramisk pitfalls handled (see shared/fixtures/asterisk/README.md): Originate always carries
`Async: true`; error responses come back as messages (turned into `AmiActionError` here); events carrying a
pending ActionID are delivered to that action's result, not to event handlers (so Originate is sent
without waiting for its OriginateResponse, which then arrives as an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
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
HANGUP_CAUSES = {0: "unknown", 1: "unallocated number", 16: "normal clearing", 17: "user busy",
                 18: "no user responding", 19: "no answer", 21: "call rejected", 34: "no circuit available",
                 127: "interworking (caller cancelled)"}
#: OriginateResponse `Reason` (Asterisk's control frame of the outcome).
ORIGINATE_REASONS = {0: "failed", 1: "hung up", 3: "no answer", 4: "answered", 5: "busy", 8: "congestion"}
#: A call-back leg's hang-up cause, when it says more than OriginateResponse's Reason.
CAUSE_OUTCOMES = {17: "busy", 18: "no answer", 19: "no answer", 21: "rejected", 1: "failed", 34: "congestion"}
#: Where a transfer to an agency sends the call (dialplans/extensions.conf, context intake-transfer).
TRANSFER_CONTEXT = "intake-transfer"
CALLBACK_CONTEXT = "intake-callback"
FORK_CONTEXT = "intake-fork"
FORK_AUDIO_CONTEXT = "intake-fork-audio"
#: Ring a call-back this long before Asterisk gives up (Originate Timeout).
CALLBACK_RING_S = 30.0
#: Asterisk unreachable this long (after a live connection): its calls are taken as cut off.
OUTAGE_CUTOFF_S = 10.0
#: After its audio connection closed, audio still waits this long for its call (the bridge may be behind).
PAIR_GRACE_S = 15.0
#: Variables read from a live channel to recognise it after a (re)connect.
REBUILD_VARS = ("INTAKE_LINE", "INTAKE_UUID", "INTAKE_CALLBACK", "INTAKE_CALLBACK_REPORT", "INTAKE_TRANSFERRED_TO",
                "MEMBERNAME", "MIXMONITOR_FILENAME")


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 1) if a is not None and b is not None else None


@dataclass
class CallState:
    linkedid: str
    uniqueid: str
    channel: str
    caller_number: str
    dialled_number: str
    started_at: datetime
    state: str = "ringing"  # ringing | queued | up (with a call-taker) | hungup
    asterisk_ts: float | None = None  # Newchannel's own Timestamp (Asterisk's clock), for latency figures
    channel_answered_at: datetime | None = None  # the dialplan's Answer(): media is up, no person yet
    queue: str | None = None  # the call-taker queue it waits in (QueueCallerJoin)
    queued_at: datetime | None = None
    offered_to: str | None = None  # the queue member whose phone rings for it now (AgentCalled)
    answered_at: datetime | None = None  # a call-taker first picked up (AgentConnect): the answer time
    answered_by: str | None = None
    with_calltaker: str | None = None  # the queue member on the call now (after a transfer, the agency's)
    ended_at: datetime | None = None
    ended_by: str | None = None  # caller | calltaker | centre | asterisk, where Asterisk says
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    abandoned: bool = False  # the caller gave up while waiting in a queue (QueueCallerAbandon)
    audio_uuid: str | None = None  # INTAKE_UUID: ties the AudioSocket connection to this call
    recording: str | None = None
    transferred_to: str | None = None
    dtmf: str = ""
    needs_callback: bool = False
    callback_reason: str | None = None
    application: str | None = None  # the dialplan application the caller's channel is in
    inline_audio: bool = False  # the caller's own channel ran AudioSocket() ([intake-inline]: no queue yet)
    audio_connected: bool = False  # an AudioSocket connection for audio_uuid reached this server
    audio_forks: int = 0  # audio forks this server started itself (after a restart of intake)
    rebuilt: bool = False  # learned from CoreShowChannels, not from its first events
    hangup_requested: bool = False  # a call-taker hung up through intake (AMI Hangup)
    report_id: int | None = None
    incident_id: int | None = None
    channels: set[str] = field(default_factory=set)  # every Uniqueid of the call

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("channels")
        data.pop("hangup_requested")
        for key in ("started_at", "channel_answered_at", "queued_at", "answered_at", "ended_at"):
            data[key] = _iso(getattr(self, key))
        if self.answered_at is not None:
            data["wait_seconds"] = _seconds(self.started_at, self.answered_at)
        elif self.ended_at is not None:
            data["wait_seconds"] = _seconds(self.started_at, self.ended_at)
        if self.answered_at and self.ended_at:
            data["talk_seconds"] = _seconds(self.answered_at, self.ended_at)
        if self.ended_at:
            data["duration_seconds"] = _seconds(self.started_at, self.ended_at)
        return data

    def restore(self, stored: dict[str, Any]) -> None:
        """Take what an earlier intake process recorded of this call (its report's raw["call"])."""
        for key in ("started_at", "channel_answered_at", "queued_at", "answered_at"):
            value = stored.get(key)
            if isinstance(value, str) and (key == "started_at" or getattr(self, key) is None):
                with contextlib.suppress(ValueError):
                    setattr(self, key, datetime.fromisoformat(value))
        for key in ("queue", "answered_by", "with_calltaker", "audio_uuid", "recording", "transferred_to",
                    "asterisk_ts"):
            if stored.get(key) and not getattr(self, key):
                setattr(self, key, stored[key])
        self.dtmf = str(stored.get("dtmf") or "") + self.dtmf
        self.audio_forks += int(stored.get("audio_forks") or 0)
        if self.answered_by and self.state != "hungup":
            self.state = "up"
        elif self.queue and self.state == "ringing":
            self.state = "queued"


@dataclass
class CallbackAttempt:
    """One call-back (AMI Originate) to a caller, kept on the abandoned call's report (raw["callbacks"])."""

    report_id: int | None
    number: str
    channel_id: str  # Originate ChannelId: the call-back leg's Uniqueid and Linkedid
    action_id: str
    at: datetime
    outcome: str = "ringing"  # ringing | answered | busy | no answer | failed | hung up | congestion
    reason: int | None = None  # OriginateResponse Reason
    cause: int | None = None  # the leg's Hangup cause
    cause_text: str | None = None
    answered_at: datetime | None = None  # the caller picked up
    connected_to: str | None = None  # the call-taker the caller was put through to
    ended_at: datetime | None = None
    error: str | None = None
    responded: bool = False  # OriginateResponse came

    def record(self) -> dict[str, Any]:
        return {"number": self.number, "channel_id": self.channel_id, "at": _iso(self.at), "outcome": self.outcome,
                "reason": self.reason, "cause": self.cause, "cause_text": self.cause_text,
                "answered_at": _iso(self.answered_at), "connected_to": self.connected_to,
                "ended_at": _iso(self.ended_at), "talk_seconds": _seconds(self.answered_at, self.ended_at),
                "error": self.error, "done": self.ended_at is not None and (self.responded or self.error is not None)}


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
Job = Callable[[], Awaitable[None]]


def _event_time(m: Message | dict[str, str]) -> float | None:
    """The event's own Timestamp (manager.conf timestampevents), None when absent or not a number."""
    try:
        return float(m.get("Timestamp") or "")
    except ValueError:
        return None


def _int_header(m: Message | dict[str, str], name: str) -> int:
    """A numeric header (Cause, Reason); 0 when absent or not a number, as Asterisk means by 0."""
    value = m.get(name) or "0"
    return int(value) if value.isdigit() else 0


def _duration_s(text: str) -> float:
    """CoreShowChannel's Duration, HH:MM:SS."""
    try:
        h, m, s = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + s)


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
        callback_ring_s: float = CALLBACK_RING_S,
        outage_cutoff_s: float = OUTAGE_CUTOFF_S,
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
        self.callback_ring_s = callback_ring_s
        self.outage_cutoff_s = outage_cutoff_s
        self._lost_at: float | None = None  # loop time the last live connection was lost (None: connected)
        self.on_call_event = on_call_event
        self.clock = clock
        self.calls: dict[str, CallState] = {}  # by Linkedid
        self.callbacks: dict[str, CallbackAttempt] = {}  # live call-backs, by ChannelId
        self._by_uniqueid: dict[str, str] = {}  # Uniqueid → Linkedid
        self._originates: dict[str, str] = {}  # Originate ActionID → ChannelId
        self._protocol: AMIProtocol | None = None
        self._link: _Link | None = None
        self._logged_in = False
        self.connected = asyncio.Event()  # logged in and live calls rebuilt
        self.connections = 0
        self.asterisk_started: str | None = None  # CoreStatus CoreStartupDate/Time of the Asterisk we talk to
        self._shutdown_seen = False
        # True when this process also serves the calls' audio (CallAudioRouter sets it).
        self.expects_audio = False
        self._audio_live: set[str] = set()  # AudioSocket connections open in this process, by UUID
        self._audio_waiters: dict[str, list[asyncio.Future[CallState]]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._queues: dict[str, asyncio.Queue[Job | None]] = {}  # each call's worker
        self._persist_pending: set[str] = set()

    # --- connection life -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set. The calls' workers live here, across reconnects."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                await self._connect_loop(stop)
            finally:
                self._tg = None
                for queue in self._queues.values():
                    queue.put_nowait(None)  # each worker finishes what it was given, then ends

    async def _connect_loop(self, stop: asyncio.Event) -> None:
        delay = self.backoff_initial
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = self.backoff_initial  # a session that logged in resets the backoff
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("AMI %s:%s: %s; retrying in %.1f s", self.host, self.port, exc, delay)
            if stop.is_set():
                break
            await self._cut_off_if_down()
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
            # Events that arrive while the rebuild runs wait in `events` and are handled after it (each of its
            # actions fails at once if the connection drops, and times out if Asterisk stops answering).
            await self._rebuild()
            self.connected.set()
            self._lost_at = None
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pinger(protocol, link))
                consumer = tg.create_task(self._consume(events))
                ended = tg.create_task(_first_of(link.lost, stop))
                await ended
                events.put_nowait(None)  # drain what arrived, then stop
                await consumer
                link.lost.set()  # ends the pinger
        finally:
            if self.connected.is_set():
                self._lost_at = asyncio.get_running_loop().time()
            self.connected.clear()
            self._logged_in = False
            self._protocol, self._link = None, None
            protocol.close()

    async def _cut_off_if_down(self) -> None:
        """Asterisk unreachable for `outage_cutoff_s`: its calls are taken as cut off (flagged for call-back).
        A caller whose call in fact survived is picked up again when Asterisk answers."""
        if self._lost_at is None or not self.calls:
            return
        down_s = asyncio.get_running_loop().time() - self._lost_at
        if down_s < self.outage_cutoff_s:
            return
        log.warning("AMI: Asterisk unreachable for %.0f s; %d call(s) taken as cut off", down_s, len(self.calls))
        for call in list(self.calls.values()):
            self._conclude(call, cause=None, cause_text="Asterisk unreachable",
                           cut_off=f"cut off: Asterisk could not be reached for {down_s:.0f} s")
            await self._finish(call)

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

    # --- each call's worker ------------------------------------------------------------

    async def _submit(self, call: CallState | str, job: Job) -> None:
        """Run `job` after the earlier jobs of the same call (or call-back leg, by its ChannelId); at once,
        awaited, when the bridge is not running."""
        key = call if isinstance(call, str) else call.linkedid
        if self._tg is None:
            await job()
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._tg.create_task(self._work(key, queue))
        queue.put_nowait(job)

    async def _work(self, linkedid: str, queue: asyncio.Queue[Job | None]) -> None:
        try:
            while (job := await queue.get()) is not None:
                try:
                    await job()
                except Exception:  # the call's later writes still happen; this one is logged in full
                    log.exception("call %s: a write failed", linkedid)
        finally:
            if self._queues.get(linkedid) is queue:
                del self._queues[linkedid]

    def _end_worker(self, call: CallState) -> None:
        queue = self._queues.pop(call.linkedid, None)
        if queue is not None:
            queue.put_nowait(None)  # what is queued still runs; anything later gets a worker of its own

    async def _flushed(self, call: CallState) -> None:
        """Wait until the call's writes queued so far are done."""
        if self._tg is None:
            return
        mark: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def done() -> None:
            mark.set_result(None)
        await self._submit(call, done)
        await mark

    async def _touch(self, call: CallState, what: str | None = None, data: dict[str, Any] | None = None) -> None:
        """The call's state changed: write its latest state (once for a burst of changes), then tell."""
        if call.linkedid not in self._persist_pending:
            self._persist_pending.add(call.linkedid)
            await self._submit(call, lambda: self._persist(call))
        if what is not None:
            await self._submit(call, lambda: self._emit(what, call, data or {}))

    async def _persist(self, call: CallState) -> None:
        self._persist_pending.discard(call.linkedid)
        if call.report_id is None:
            return
        record = call.record()
        await self.intake.patch_report_raw(call.report_id, {"call": record}, outbox=[{
            "topic": "call", "kind": "call.updated", "payload": {"linkedid": call.linkedid, "call": record}}])

    # --- actions ----------------------------------------------------------------------

    async def action(self, action: str, *, wait_list: bool = True, **fields: str) -> Any:
        """Send an action; `Response: Error` raises AmiActionError.

        `wait_list=False`: the first response is the answer, even when more follows as events (an async
        Originate's OriginateResponse then reaches `handle_event`)."""
        if self._protocol is None or not self._logged_in:
            raise AmiNotConnected("not connected to Asterisk")
        if action.lower() == "originate":
            fields.setdefault("Async", "true")  # without it panoramisk 1.4 drops the connection
        # as_list=None: let panoramisk see list responses (EventList, async Originate) through to their end
        sent = self._protocol.send({"Action": action, **fields}, as_list=None if wait_list else False)
        result = await self._answer(sent, action)
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
        await self._touch(call, "transferred", {"agency": agency})
        await self._flushed(call)  # whoever asked reads the transfer on the report once this returns

    async def call_back(self, number: str, *, report_id: int | None = None,
                        endpoint: str = "PJSIP/{number}@trunk", caller_id: str = "112") -> str:
        """Ring an abandoned caller back (AMI Originate into the call-back context); returns its ChannelId.

        Returns once Asterisk has queued the call; the phone then rings for up to `callback_ring_s`. The
        outcome (answered, busy, no answer, failed, with Asterisk's reason and cause) comes later from
        OriginateResponse and the leg's own events, and is kept on the report `report_id` (raw["callbacks"]),
        with a `call.callback` event on the stream at each step.
        """
        channel_id = f"callback-{random.getrandbits(48):012x}"
        attempt = CallbackAttempt(report_id, number, channel_id, f"intake-{channel_id}", self.clock())
        self.callbacks[channel_id] = attempt
        self._originates[attempt.action_id] = channel_id
        await self._note_callback(attempt)
        try:
            await self.action(
                "Originate", wait_list=False, ActionID=attempt.action_id, Channel=endpoint.format(number=number),
                Context=CALLBACK_CONTEXT, Exten="s", Priority="1", CallerID=caller_id,
                Timeout=str(int(self.callback_ring_s * 1000)), ChannelId=channel_id,
                Variable=f"INTAKE_CALLBACK_REPORT={report_id or ''}")
        except (AmiError, TimeoutError) as exc:
            attempt.outcome, attempt.error = "failed", str(exc)
            self._forget_callback(attempt)
            await self._note_callback(attempt)
            raise
        return channel_id

    def _forget_callback(self, attempt: CallbackAttempt) -> None:
        """The attempt is over: no more events are expected for it; its worker ends after its queued writes."""
        self.callbacks.pop(attempt.channel_id, None)
        self._originates.pop(attempt.action_id, None)
        queue = self._queues.pop(attempt.channel_id, None)
        if queue is not None:
            queue.put_nowait(None)

    async def _note_callback(self, attempt: CallbackAttempt) -> None:
        record = attempt.record()
        if attempt.report_id is None:
            return

        def put(raw: dict[str, Any]) -> dict[str, Any]:
            earlier = [a for a in raw.get("callbacks", []) if isinstance(a, dict)]
            at = next((i for i, a in enumerate(earlier) if a.get("channel_id") == attempt.channel_id), None)
            if at is None:
                earlier.append(record)
            else:  # what an earlier process knew (the number, when it rang) stays unless we know better
                earlier[at] = {**earlier[at], **{k: v for k, v in record.items() if v not in (None, "")}}
            return {**raw, "callbacks": earlier}

        await self.intake.patch_report_raw(attempt.report_id, put, outbox=[{
            "topic": "call", "kind": "call.callback", "payload": {"report_id": attempt.report_id, **record}}])

    async def get_var(self, linkedid: str, name: str) -> str | None:
        """A channel variable of a live call; None when it is unset (Asterisk sends no or an empty Value)."""
        return await self._getvar(self._call(linkedid).channel, name)

    async def _getvar(self, channel: str, name: str) -> str | None:
        result = await self.action("Getvar", Channel=channel, Variable=name)
        first = result[0] if isinstance(result, list) else result
        return first.get("Value") or None

    def audio_started(self, audio_uuid: str) -> CallState | None:
        """The audio door found this call's AudioSocket connection (None while the call is not known yet)."""
        call = next((c for c in self.calls.values() if c.audio_uuid == audio_uuid), None)
        if call is not None and call.report_id is not None:
            self._audio_live.add(audio_uuid)
            if not call.audio_connected:
                call.audio_connected = True
                self._touch_nowait(call)
            return call
        return None

    def _touch_nowait(self, call: CallState) -> None:
        queue = self._queues.get(call.linkedid)
        if queue is not None and call.linkedid not in self._persist_pending:
            self._persist_pending.add(call.linkedid)
            queue.put_nowait(lambda: self._persist(call))

    async def call_for_audio(self, audio_uuid: str, closed: Callable[[], Awaitable[None]],
                             grace_s: float = PAIR_GRACE_S) -> CallState | None:
        """The call an AudioSocket connection belongs to. The audio may arrive before the bridge has seen the
        call's INTAKE_UUID (a burst of calls): it waits for as long as its connection is open, and `grace_s`
        after that. None: no call of ours carries that UUID."""
        call = self.audio_started(audio_uuid)
        if call is not None:
            return call
        waiter: asyncio.Future[CallState] = asyncio.get_running_loop().create_future()
        self._audio_waiters.setdefault(audio_uuid, []).append(waiter)
        ended = asyncio.ensure_future(closed())
        try:
            both: set[asyncio.Future[Any]] = {waiter, ended}
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                await asyncio.wait({waiter}, timeout=grace_s)
        finally:
            ended.cancel()
            waiters = self._audio_waiters.get(audio_uuid, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._audio_waiters.pop(audio_uuid, None)
        return self.audio_started(audio_uuid) if waiter.done() else None

    def audio_ended(self, audio_uuid: str) -> None:
        self._audio_live.discard(audio_uuid)

    async def _audio_known(self, call: CallState) -> None:
        """The call's INTAKE_UUID and report are known: audio waiting for them goes on."""
        if call.audio_uuid is None or call.report_id is None:
            return
        for waiter in self._audio_waiters.get(call.audio_uuid, []):
            if not waiter.done():
                waiter.set_result(call)

    async def hangup(self, linkedid: str, cause: int = 16) -> None:
        call = self._call(linkedid)
        call.hangup_requested = True
        try:
            await self.action("Hangup", Channel=call.channel, Cause=str(cause))
        except BaseException:
            call.hangup_requested = False
            raise

    async def set_var(self, linkedid: str, name: str, value: str) -> None:
        await self.action("Setvar", Channel=self._call(linkedid).channel, Variable=name, Value=value)

    def _call(self, linkedid: str) -> CallState:
        call = self.calls.get(linkedid)
        if call is None:
            raise AmiError(f"no live call {linkedid}")
        return call

    # --- state after a (re)connect ---------------------------------------------------------

    async def _rebuild(self) -> None:
        """After a (re)connect: the live channels are the truth."""
        restarted = await self._asterisk_restarted()
        result = await self.action("CoreShowChannels")
        items = [m for m in (result if isinstance(result, list) else [result]) if m.get("Event") == "CoreShowChannel"]
        log.info("AMI: %d live channel(s) after connecting%s", len(items),
                 " (Asterisk restarted)" if restarted else "")
        groups: dict[str, list[Message]] = {}
        for item in items:
            groups.setdefault(item.get("Linkedid", ""), []).append(item)
        for linkedid, call in list(self.calls.items()):
            if linkedid in groups and not restarted:
                for item in groups[linkedid]:
                    call.channels.add(item.get("Uniqueid", ""))
                    self._by_uniqueid[item.get("Uniqueid", "")] = linkedid
            elif call.state != "hungup":
                if restarted:
                    self._conclude(call, cause=None, cause_text="Asterisk restarted",
                                   cut_off="cut off: Asterisk restarted during the call")
                else:
                    # It ended while we were away; the cause is lost with the connection.
                    self._conclude(call, cause=None, cause_text="ended while the AMI connection was down")
                await self._finish(call)
        for attempt in list(self.callbacks.values()):
            if attempt.channel_id not in groups or restarted:
                attempt.outcome = "unknown" if attempt.outcome == "ringing" else attempt.outcome
                attempt.error = ("Asterisk restarted during the call-back" if restarted
                                 else "the call-back ended while intake could not see Asterisk")
                attempt.ended_at = attempt.ended_at or self.clock()
                self._forget_callback(attempt)
                await self._note_callback(attempt)
        for linkedid, chans in groups.items():
            if linkedid in self.calls or linkedid in self.callbacks:
                continue
            first = next((c for c in chans if c.get("Uniqueid") == linkedid), None)
            if first is None or first.get("Channel", "").startswith("Local/"):
                continue  # the audio fork's Local channels, or an Originate of our own
            try:
                await self._adopt(first)
            except (AmiError, TimeoutError) as exc:
                log.warning("AMI: live channel %s could not be read: %s", first.get("Channel"), exc)
        if self.expects_audio:
            for call in list(self.calls.values()):
                await self._refork(call, groups)

    async def _asterisk_restarted(self) -> bool:
        """Did Asterisk start again since the last connection (its calls are then gone)?"""
        shutdown, self._shutdown_seen = self._shutdown_seen, False
        try:
            status = await self.action("CoreStatus")
        except (AmiError, TimeoutError):
            return shutdown
        first = status[0] if isinstance(status, list) else status
        started = f"{first.get('CoreStartupDate', '')} {first.get('CoreStartupTime', '')}".strip() or None
        before, self.asterisk_started = self.asterisk_started, started
        return shutdown or (before is not None and started is not None and before != started)

    async def _adopt(self, item: Message) -> None:
        """A live channel we hold no call for: ours if it carries INTAKE_LINE (or stands in our contexts)."""
        channel = item.get("Channel", "")
        found = {name: await self._getvar(channel, name) for name in REBUILD_VARS}
        if found["INTAKE_CALLBACK"]:
            # A call-back leg an earlier intake process started: not an emergency call; its end is still kept.
            report = found["INTAKE_CALLBACK_REPORT"]
            channel_id = item.get("Uniqueid", "")
            attempt = CallbackAttempt(int(report) if report and report.isdigit() else None, "", channel_id, "",
                                      self.clock(), outcome="answered")
            self.callbacks[channel_id] = attempt
            return
        if not found["INTAKE_LINE"] and not self._is_intake_call(item):
            return
        now = self.clock()
        m = dict(item)
        m["Exten"] = found["INTAKE_LINE"] or item.get("Exten", "")
        started = now - timedelta(seconds=_duration_s(item.get("Duration", "")))
        call = self._new_state(m, started)
        call.rebuilt = True
        call.audio_uuid = found["INTAKE_UUID"]
        call.recording = found["MIXMONITOR_FILENAME"]
        call.transferred_to = found["INTAKE_TRANSFERRED_TO"]
        call.application = item.get("Application") or None
        if item.get("ChannelState") == "6":
            call.channel_answered_at = started
        if call.application == "Queue":
            call.state = "queued"
            if item.get("BridgeId") and found["MEMBERNAME"]:
                call.state, call.answered_by = "up", found["MEMBERNAME"]
                call.with_calltaker = found["MEMBERNAME"]
        log.info("AMI: call %s from %s picked up live (%s)", call.linkedid, call.caller_number, call.state)
        await self._submit(call, lambda: self._open(call, restore=True))

    async def _refork(self, call: CallState, groups: dict[str, list[Message]]) -> None:
        """Audio for a live call whose fork died with an earlier intake process (or failed while none ran):
        fork it again. Only a call past its own fork (waiting in a queue, or with a call-taker) is forked: a
        call that is just starting forks itself."""
        uuid = call.audio_uuid
        if call.state == "hungup" or not uuid or uuid in self._audio_live or call.application != "Queue":
            return
        forks = [c for chans in groups.values() for c in chans
                 if c.get("Channel", "").startswith(f"Local/{uuid}@{FORK_CONTEXT}")]
        if forks:
            return  # its fork is alive; its audio connection reaches us on its own
        try:
            await self.action("Originate", wait_list=False, Channel=f"Local/{uuid}@{FORK_CONTEXT}/n",
                              Context=FORK_AUDIO_CONTEXT, Exten=uuid, Priority="1")
        except (AmiError, TimeoutError) as exc:
            log.warning("call %s: its audio could not be forked again: %s", call.linkedid, exc)
            return
        call.audio_forks += 1
        log.info("call %s: audio forked again after a restart of intake", call.linkedid)
        await self._touch(call, "audio_forked", {"audio_uuid": uuid})

    def _is_intake_call(self, h: Message | dict[str, str]) -> bool:
        return h.get("Context") in self.contexts and h.get("Exten") in self.lines

    # --- events ------------------------------------------------------------------------------

    async def handle_event(self, m: Message | dict[str, str]) -> None:
        event = m.get("Event", "")
        uniqueid = m.get("Uniqueid", "")
        if event == "Shutdown":
            self._shutdown_seen = True
            return
        if await self._callback_event(event, m):
            return
        linkedid = m.get("Linkedid") or self._by_uniqueid.get(uniqueid, "")
        if event == "Newchannel":
            if linkedid in self.calls:
                self.calls[linkedid].channels.add(uniqueid)
                self._by_uniqueid[uniqueid] = linkedid
            elif self._is_intake_call(m):
                now = self.clock()
                new = self._new_state(m, now)
                new.asterisk_ts = _event_time(m)
                if m.get("ChannelState") == "6":
                    new.channel_answered_at = now
                await self._submit(new, lambda: self._open(new))
            return
        call = self.calls.get(linkedid)
        if call is None:
            return
        caller = uniqueid == call.uniqueid
        now = self.clock()
        if event == "VarSet" and caller:
            name, value = m.get("Variable", ""), m.get("Value", "")
            if name == "INTAKE_UUID" and value:
                call.audio_uuid = value
                await self._touch(call, "audio", {"audio_uuid": value})
                await self._submit(call, lambda: self._audio_known(call))
            elif name == "MIXMONITOR_FILENAME" and value:
                call.recording = value
                await self._touch(call)
        elif event == "Newstate" and m.get("ChannelState") == "6" and caller:
            if call.channel_answered_at is None:
                call.channel_answered_at = now
                await self._touch(call, "channel_up", {})
        elif event == "QueueCallerJoin" and caller:
            call.queue = m.get("Queue") or call.queue
            call.queued_at = call.queued_at or now
            call.state, call.with_calltaker = "queued", None  # waiting again (after a transfer: the agency)
            await self._touch(call, "queued", {"queue": call.queue})
        elif event == "AgentCalled":
            # Name queue members after the console users (queues.conf: member => PJSIP/1001,0,<user>): the
            # console then knows which call rings on whose phone.
            call.offered_to = m.get("MemberName") or m.get("Interface")
            await self._offer(call, m, ringing=True)
        elif event == "AgentRingNoAnswer":
            call.offered_to = None
            await self._offer(call, m, ringing=False)
        elif event == "AgentConnect":
            member = m.get("MemberName") or m.get("Interface")
            call.answered_by = call.answered_by or member
            call.answered_at = call.answered_at or now
            call.with_calltaker = member
            call.offered_to = None
            call.state = "up"
            await self._touch(call, "answered", {"calltaker": member})
            await self._offer(call, m, ringing=False, answered=True)
        elif event == "AgentComplete":
            reason = (m.get("Reason") or "").lower()  # caller | agent | transfer
            if reason in ("caller", "agent"):
                call.ended_by = "caller" if reason == "caller" else "calltaker"
        elif event == "QueueCallerAbandon" and caller:
            call.abandoned = True
            call.ended_by = "caller"
        elif event == "Newexten" and caller:
            call.application = m.get("Application") or call.application
            call.inline_audio = call.inline_audio or call.application == "AudioSocket"
        elif event == "DTMFEnd" and caller and m.get("Direction") == "Received":
            call.dtmf += m.get("Digit", "")
            await self._touch(call, "dtmf", {"digit": m.get("Digit", "")})
        elif event == "Hangup" and caller:
            cause = _int_header(m, "Cause")
            self._conclude(call, cause=cause, cause_text=m.get("Cause-txt"))
            await self._finish(call)

    def _new_state(self, m: Message | dict[str, str], started: datetime) -> CallState:
        linkedid = m.get("Linkedid", "") or m.get("Uniqueid", "")
        call = CallState(linkedid=linkedid, uniqueid=m.get("Uniqueid", ""), channel=m.get("Channel", ""),
                         caller_number=m.get("CallerIDNum", ""), dialled_number=m.get("Exten", ""),
                         started_at=started)
        call.channels.add(call.uniqueid)
        self.calls[linkedid] = call
        self._by_uniqueid[call.uniqueid] = linkedid
        return call

    async def _open(self, call: CallState, *, restore: bool = False) -> None:
        """The call's report and the screen-pop, as soon as can be: what the screen-pop shows of the caller's
        past (earlier reports, facility, last location, incidents nearby) is read while the report is being
        stored; an AML fix that came before the call is on the report when the screen-pop goes out."""
        report = ReportIn(
            channel="call", channel_ref=call.linkedid, received_at=call.started_at,
            phone=call.caller_number or None, dialled_number=call.dialled_number,
            # Only what never changes for this call goes in `raw`: a call rebuilt after a reconnect is the
            # same report (same digest), not an idempotency conflict.
            raw={"linkedid": call.linkedid, "caller_number": call.caller_number, "channel": call.channel},
        )
        result, pop = await asyncio.gather(
            self.intake.ingest(report),
            screenpop.build(self.intake, caller_number=call.caller_number, line=call.dialled_number,
                            report_id=None, incident_id=None, call={}))
        call.report_id, call.incident_id = result.report_id, result.incident_id
        if (located := await locfix.apply_pending(self.intake, call.report_id)) is not None:
            call.incident_id = located.incident_id  # an AML fix that came before the call, before the pop
        duplicate = result.outcome.value == "duplicate"
        if restore and duplicate:
            async with self.intake.store.read() as repo:
                row = await repo.report(result.report_id)
            stored = ((row or {}).get("raw") or {}).get("call")
            if isinstance(stored, dict):
                call.restore(stored)
            await self._persist(call)  # an earlier process popped it up already
        else:
            pop["earlier_reports"] = [r for r in pop["earlier_reports"] if r["id"] != call.report_id]
            await screenpop.publish(self.intake, {**pop, "report_id": call.report_id,
                                                  "incident_id": call.incident_id, "call": call.record()})
        await self._emit("ringing", call, {"outcome": result.outcome.value, "rebuilt": call.rebuilt,
                                           "phone": normalise_phone(call.caller_number).e164
                                           if call.caller_number else None})
        await self._audio_known(call)

    def _conclude(self, call: CallState, *, cause: int | None, cause_text: str | None,
                  cut_off: str | None = None) -> None:
        """The call ended: when, why, by whom, and whether the caller must be called back."""
        call.state, call.ended_at = "hungup", self.clock()
        call.offered_to = call.with_calltaker = None
        call.hangup_cause = cause
        call.hangup_cause_text = cause_text or (HANGUP_CAUSES.get(cause) if cause is not None else None)
        if call.hangup_requested:
            call.ended_by = "calltaker"
        if cut_off is not None:
            call.needs_callback, call.callback_reason = True, cut_off
            call.ended_by = "asterisk"
        elif call.answered_by is not None or call.hangup_requested:
            call.needs_callback, call.callback_reason = False, None
        elif call.abandoned:
            wait = _seconds(call.queued_at or call.started_at, call.ended_at) or 0.0
            call.hangup_cause_text = "caller abandoned in queue"
            call.needs_callback = True
            call.callback_reason = f"caller abandoned in queue{' ' + call.queue if call.queue else ''} after {wait:g} s"
        elif call.channel_answered_at is None:
            call.needs_callback, call.callback_reason = True, "hung up before answer"
        elif self.expects_audio and call.audio_uuid and not call.audio_connected and call.inline_audio:
            # Sent to AudioSocket() in line (no queue yet) and gone without a byte of audio: cut off.
            call.needs_callback, call.callback_reason = True, "cut off: the call's audio never reached intake"
        elif cause_text == "ended while the AMI connection was down":
            call.needs_callback = True
            call.callback_reason = "ended while intake could not see Asterisk, before a call-taker answered"
        else:
            call.needs_callback, call.callback_reason = True, "ended before a call-taker answered"

    async def _finish(self, call: CallState) -> None:
        self.calls.pop(call.linkedid, None)
        for uid in call.channels:
            self._by_uniqueid.pop(uid, None)
        await self._touch(call, "hungup", {"cause": call.hangup_cause, "needs_callback": call.needs_callback})
        self._end_worker(call)

    async def _offer(self, call: CallState, m: Message | dict[str, str], *, ringing: bool,
                     answered: bool = False) -> None:
        """`call.offered` on the stream: which call-taker's phone rings for the call (or stopped ringing)."""
        payload = {"linkedid": call.linkedid, "queue": m.get("Queue"), "member": m.get("MemberName"),
                   "interface": m.get("Interface"), "ringing": ringing, "answered": answered}

        async def write() -> None:
            await self.intake.publish([{"topic": "call", "kind": "call.offered", "incident_id": call.incident_id,
                                        "report_id": call.report_id,
                                        "payload": {**payload, "report_id": call.report_id}}])
            await self._emit("offered" if ringing else "offer_ended", call, payload)

        await self._submit(call, write)

    # --- call-backs ------------------------------------------------------------------------------

    async def _callback_event(self, event: str, m: Message | dict[str, str]) -> bool:
        """Events of our own call-back legs; True when the event was one. What they say is written by the
        leg's own worker (keyed by its ChannelId), so the consumer never waits for the store."""
        if event == "OriginateResponse":
            channel_id = self._originates.pop(m.get("ActionID", ""), None) or m.get("Uniqueid", "")
            attempt = self.callbacks.get(channel_id)
            if attempt is None:
                return True
            code = _int_header(m, "Reason")
            attempt.reason, attempt.responded = code, True
            if m.get("Response") == "Success":
                attempt.outcome, attempt.answered_at = "answered", attempt.answered_at or self.clock()
            elif code != 0 or attempt.outcome in ("ringing", "answered"):
                # Reason 0 says only "failed": the leg's own hang-up cause (busy, rejected...) says more.
                attempt.outcome = ORIGINATE_REASONS.get(code, "failed")
            await self._submit(channel_id, lambda: self._note_callback(attempt))
            if attempt.ended_at is not None:
                self._forget_callback(attempt)
            elif m.get("Response") != "Success":  # its Hangup, with the cause, usually follows at once
                await self._submit(channel_id, lambda: self._end_callback_later(attempt))
            return True
        leg_id = m.get("Linkedid") or m.get("Uniqueid", "")
        leg = self.callbacks.get(leg_id)
        if leg is None:
            return False
        if event == "AgentConnect":
            leg.connected_to = m.get("MemberName") or m.get("Interface")
        elif event == "Hangup" and m.get("Uniqueid") == leg.channel_id:
            cause = _int_header(m, "Cause")
            leg.cause, leg.cause_text = cause, m.get("Cause-txt") or HANGUP_CAUSES.get(cause)
            leg.ended_at = self.clock()
            if leg.outcome in ("ringing", "failed") and cause in CAUSE_OUTCOMES:
                leg.outcome = CAUSE_OUTCOMES[cause]
        else:
            return True
        await self._submit(leg_id, lambda: self._note_callback(leg))
        if leg.ended_at is not None and leg.responded:
            self._forget_callback(leg)
        return True

    async def _end_callback_later(self, attempt: CallbackAttempt, wait_s: float = 2.0) -> None:
        """A failed call-back whose leg never reported its hang-up: end it after `wait_s`."""
        await asyncio.sleep(wait_s)
        if attempt.ended_at is None:
            attempt.ended_at = self.clock()
            self._forget_callback(attempt)
            await self._note_callback(attempt)

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
