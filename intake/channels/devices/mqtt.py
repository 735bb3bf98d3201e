"""MQTT door: IP fire-alarm devices publishing JSON events to a broker (aiomqtt).

``INTAKE_MQTT_URL=mqtt://[user:password@]host[:port]/<topic filter>``, e.g.
``mqtt://127.0.0.1:1883/intake/devices/#`` (``mqtts://`` for TLS). One message, one JSON object:

    {"device_id": "hangbac/panel1", "code": "CID:1110", "zone": "015",
     "time": "2026-11-22T15:00:05+07:00", "event_id": "optional, unique per event",
     "snapshot_url": "optional https://...", "text": "optional note"}

``code`` is a Contact ID, SIA or camera code (core/data/device_codes.toml); ``SIA:NULL`` is a
heartbeat. Retries are one report: the reference is ``event_id``, else device + time + code + zone.

Delivery: QoS 1 on a persistent session (fixed client id, clean_session off), and the PUBACK is sent
only after the event is stored. aiomqtt 2.5.1 has no manual-ack switch of its own; paho-mqtt's
(``manual_ack_set`` / ``ack``) on the client it wraps does it. A message that could not be stored is
not acknowledged: the session is dropped and the broker redelivers it on reconnect. Malformed messages
and unknown devices are logged and acknowledged (dropped): redelivering them cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import aiomqtt

from intake.channels.devices import events
from intake.channels.devices.events import DeviceEvent, Handled, event_from_json
from intake.pipeline import IdempotencyConflict, Intake
from intake.types import ChannelError, PayloadError, json_object

log = logging.getLogger(__name__)

DOOR: Final = "mqtt"
MAX_PAYLOAD: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_url(url: str) -> MqttTarget:
    """``mqtt://user:pw@host:1883/intake/devices/#`` → where to connect and what to subscribe to."""
    parts = urlsplit(url, allow_fragments=False)  # "#" is the multi-level wildcard, not a fragment
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"INTAKE_MQTT_URL must start with mqtt:// or mqtts://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"INTAKE_MQTT_URL has no host: {url!r}")
    topic = unquote(parts.path.lstrip("/"))
    if not topic:
        raise ValueError(f"INTAKE_MQTT_URL needs a topic filter as its path, e.g. /intake/devices/#: {url!r}")
    tls = parts.scheme == "mqtts"
    return MqttTarget(parts.hostname, parts.port or (8883 if tls else 1883), topic,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None, tls)


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What became of one message (for logs and tests)."""

    topic: str
    mid: int
    handled: Handled | None = None
    dropped: str | None = None  # why it was acknowledged without being stored


def parse_message(topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """The device id and the JSON object of a message; PayloadError when it is not one."""
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"the message is larger than {MAX_PAYLOAD} bytes")
    body = json_object(payload, "the message")
    device_id = body.get("device_id")
    if not isinstance(device_id, str) or not device_id.strip() or len(device_id) > 120:
        raise PayloadError("device_id must be a non-empty string of at most 120 characters", field="device_id")
    return device_id, body


class MqttListener:
    """Subscribes to the devices' topic and stores their events; reconnects with backoff."""

    def __init__(self, intake: Intake, url: str, *, client_id: str = "hotline-intake",
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 on_result: Callable[[MessageResult], Awaitable[None]] | None = None) -> None:
        self.intake = intake
        self.target = parse_url(url)
        self.client_id = client_id
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.on_result = on_result
        self.subscribed = asyncio.Event()  # set while a session is subscribed

    async def handle(self, topic: str, payload: bytes, mid: int = 0) -> MessageResult:
        """One message: stored, or a reason it was dropped. Raises only when storing failed."""
        try:
            device_id, body = parse_message(topic, payload)
        except PayloadError as exc:
            log.warning("MQTT %s: malformed message dropped: %s", topic, exc.message)
            return MessageResult(topic, mid, dropped=exc.message)
        async with self.intake.store.read() as repo:
            device = await repo.device(device_id)
        if device is None:
            log.warning("MQTT %s: device %r is not in the facility registry; dropped", topic, device_id)
            return MessageResult(topic, mid, dropped=f"unknown device {device_id}")
        if device["kind"] not in events.DOOR_KINDS[DOOR]:
            log.warning("MQTT %s: device %r is registered as %s, not mqtt; dropped", topic, device_id, device["kind"])
            return MessageResult(topic, mid, dropped=f"device {device_id} is not an mqtt device")
        try:
            event: DeviceEvent = event_from_json(body, door=DOOR, device_id=device_id, extra_raw={"topic": topic})
            handled = await events.handle(self.intake, device, event)
        except (ChannelError, events.UnknownCode, IdempotencyConflict) as exc:
            reason = exc.message if isinstance(exc, ChannelError) else str(exc)
            log.warning("MQTT %s: message of device %s dropped: %s", topic, device_id, reason)
            return MessageResult(topic, mid, dropped=reason)
        log.info("MQTT %s: device %s %s: %s", topic, device_id, event.code, handled.disposition.value)
        return MessageResult(topic, mid, handled=handled)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay subscribed until `stop` is set."""
        delay = self.backoff_initial
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = self.backoff_initial
            except aiomqtt.MqttError as exc:
                log.warning("MQTT %s:%s: %s; reconnecting in %.1f s", self.target.host, self.target.port, exc, delay)
            except Exception:  # storing failed: drop the session so the broker redelivers what was not acked
                log.exception("MQTT session ended; reconnecting in %.1f s", delay)
            self.subscribed.clear()
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * random.uniform(0.8, 1.2))
            delay = min(self.backoff_max, delay * 2)

    async def _session(self, stop: asyncio.Event) -> None:
        t = self.target
        client = aiomqtt.Client(
            t.host, t.port, username=t.username, password=t.password, identifier=self.client_id,
            clean_session=False, tls_context=ssl.create_default_context() if t.tls else None)
        # PUBACK after storage: aiomqtt does not expose paho's manual acknowledgement, the wrapped client does.
        paho = client._client
        paho.manual_ack_set(True)
        async with client:
            await client.subscribe(t.topic, qos=1)
            self.subscribed.set()
            log.info("MQTT subscribed to %s on %s:%s", t.topic, t.host, t.port)
            stopping = asyncio.ensure_future(stop.wait())
            try:
                messages = client.messages
                while True:
                    nxt = asyncio.ensure_future(anext(messages))
                    await asyncio.wait({nxt, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not nxt.done():
                        nxt.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await nxt
                        return
                    message = nxt.result()
                    payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                    result = await self.handle(message.topic.value, payload, message.mid)
                    if message.qos > 0:
                        paho.ack(message.mid, message.qos)
                    if self.on_result is not None:
                        await self.on_result(result)
            finally:
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping
