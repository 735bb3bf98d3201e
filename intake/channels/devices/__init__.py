"""Fire-alarm devices: SIA DC-09 panels (sia), MQTT devices (mqtt), IP devices and AI cameras over HTTP (http).

Every device is registered to a facility (``intake facilities import``); its reports carry the
facility's address, position and contact. `events` holds what the three doors share: an event's code
decides report / restoral / logged, and supervision flags devices whose heartbeats stopped.

Settings (each door is off until configured):
  INTAKE_SIA_PORT            the DC-09 receiver's TCP and UDP port; INTAKE_SIA_HOST (default 127.0.0.1),
                             INTAKE_SIA_UDP=off to listen on TCP only
  INTAKE_MQTT_URL            mqtt://host:1883/intake/devices/# ; INTAKE_MQTT_CLIENT_ID (default hotline-intake)
  INTAKE_DEVICES_HTTP=on     POST /api/v1/devices/{device_id}/events
  INTAKE_DEVICE_SUPERVISION_S  how often silent devices are looked for (default 30 s)
  INTAKE_CAMERA_MIN_CONFIDENCE detections below it are logged, not reported (default 0.5)
"""

from __future__ import annotations

import asyncio
import logging

from intake.config import ConfigError, Settings
from intake.pipeline import Intake

log = logging.getLogger(__name__)

_ON = frozenset({"1", "on", "true", "yes"})


def http_enabled(settings: Settings) -> bool:
    return settings.extra.get("devices_http", "").strip().lower() in _ON


def _number(settings: Settings, name: str, default: float) -> float:
    raw = settings.extra.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"INTAKE_{name.upper()} must be a number, not {raw!r}") from exc


def start(tg: asyncio.TaskGroup, intake: Intake, settings: Settings, stop: asyncio.Event) -> list[str]:
    """Start the configured device listeners, and supervision, in `tg` until `stop`; the doors started."""
    started: list[str] = []
    extra = settings.extra
    if extra.get("sia_port"):
        from intake.channels.devices.sia import SiaReceiver

        port = int(_number(settings, "sia_port", 0))
        if not 0 < port < 65536:
            raise ConfigError(f"INTAKE_SIA_PORT must be a port number, not {extra['sia_port']!r}")
        udp = extra.get("sia_udp", "on").strip().lower() in _ON
        tg.create_task(SiaReceiver(intake, extra.get("sia_host", "127.0.0.1"), port, udp=udp).run(stop))
        started.append("sia")
    if extra.get("mqtt_url"):
        from intake.channels.devices.mqtt import MqttListener

        try:
            listener = MqttListener(intake, extra["mqtt_url"], client_id=extra.get("mqtt_client_id", "hotline-intake"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        tg.create_task(listener.run(stop))
        started.append("mqtt")
    if http_enabled(settings):
        started.append("http")
    if started:
        from intake.channels.devices.events import CAMERA_MIN_CONFIDENCE, supervise

        _number(settings, "camera_min_confidence", CAMERA_MIN_CONFIDENCE)  # a typo fails the start, not each event

        every = _number(settings, "device_supervision_s", 30.0)
        tg.create_task(supervise(intake.store, intake.clock, stop, every_s=every))
        log.info("device doors: %s; supervision every %s s", ", ".join(started), every)
    return started
