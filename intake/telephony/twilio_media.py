"""Twilio Media Streams: the second audio door (WebSocket, JSON messages, mu-law 8 kHz).

G.711 mu-law is done here with lookup tables (``audioop`` is gone in Python 3.13).
The message parser is pure: it turns one WebSocket text message into a dataclass.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

# --- G.711 mu-law ---------------------------------------------------------------------------------

_BIAS: Final = 0x84
_CLIP: Final = 32635


def _mulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -magnitude if code & 0x80 else magnitude


def _linear_to_mulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


#: mu-law byte -> signed 16-bit sample (ITU-T G.711).
MULAW_TO_LINEAR: Final[tuple[int, ...]] = tuple(_mulaw_to_linear(code) for code in range(256))
# Indexed by the sample as an unsigned 16-bit value (sample & 0xFFFF).
_LINEAR_TO_MULAW: Final = bytes(_linear_to_mulaw(u - 0x10000 if u >= 0x8000 else u) for u in range(0x10000))
_BIG_ENDIAN: Final = sys.byteorder == "big"


def decode_mulaw(data: bytes) -> bytes:
    """mu-law bytes -> signed 16-bit little-endian PCM (two bytes per input byte)."""
    samples = array("h", [MULAW_TO_LINEAR[code] for code in data])
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples.tobytes()


def encode_mulaw(pcm: bytes) -> bytes:
    """Signed 16-bit little-endian PCM -> mu-law bytes (one per sample)."""
    if len(pcm) % 2:
        raise ValueError(f"s16le PCM has an even length, got {len(pcm)} bytes")
    samples = array("H")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:
        samples.byteswap()
    table = _LINEAR_TO_MULAW
    return bytes([table[u] for u in samples])


# --- WebSocket messages ---------------------------------------------------------------------------


class MalformedMessageError(ValueError):
    """A Media Streams message that is not the documented JSON shape."""


class UnknownEventError(MalformedMessageError):
    """Well-formed JSON with an ``event`` this parser does not know (callers may skip it)."""

    def __init__(self, event: str) -> None:
        super().__init__(f"unknown Media Streams event {event!r}")
        self.event = event


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str  # "audio/x-mulaw"
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class Start:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Media:
    sequence_number: int
    stream_sid: str
    track: str  # "inbound" or "outbound"
    chunk: int
    timestamp_ms: int  # since the stream started
    payload: bytes  # raw mu-law, base64-decoded

    def pcm(self) -> bytes:
        """The payload as s16le 8 kHz PCM."""
        return decode_mulaw(self.payload)


@dataclass(frozen=True, slots=True)
class Dtmf:
    sequence_number: int
    stream_sid: str
    track: str  # "inbound_track"
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    sequence_number: int
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str


TwilioMessage = Connected | Start | Media | Dtmf | Mark | Stop


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise MalformedMessageError(f"{key!r} must be an object, got {type(value).__name__}")
    return value


def _str(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        raise MalformedMessageError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _int(parent: Mapping[str, Any], key: str) -> int:
    # Twilio sends sequenceNumber, chunk and timestamp as decimal strings, sampleRate as a number.
    value = parent.get(key)
    if isinstance(value, bool):
        raise MalformedMessageError(f"{key!r} must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise MalformedMessageError(f"{key!r} must be an integer, got {value!r}")


def parse_message(raw: str | bytes) -> TwilioMessage:
    """Parse one Media Streams WebSocket message; MalformedMessageError if it is not the documented shape."""
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessageError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedMessageError("a Media Streams message is a JSON object")
    event = _str(message, "event")
    if event == "connected":
        return Connected(protocol=_str(message, "protocol"), version=_str(message, "version"))
    seq = _int(message, "sequenceNumber")
    if event == "start":
        start = _obj(message, "start")
        fmt = _obj(start, "mediaFormat")
        tracks = start.get("tracks", [])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise MalformedMessageError("'tracks' must be a list of strings")
        params = start.get("customParameters", {})
        if not isinstance(params, dict):
            raise MalformedMessageError("'customParameters' must be an object")
        return Start(
            sequence_number=seq,
            stream_sid=_str(start, "streamSid"),
            account_sid=_str(start, "accountSid"),
            call_sid=_str(start, "callSid"),
            tracks=tuple(tracks),
            media_format=MediaFormat(_str(fmt, "encoding"), _int(fmt, "sampleRate"), _int(fmt, "channels")),
            custom_parameters={str(k): str(v) for k, v in params.items()},
        )
    stream_sid = _str(message, "streamSid")
    if event == "media":
        media = _obj(message, "media")
        try:
            payload = base64.b64decode(_str(media, "payload"), validate=True)
        except binascii.Error as exc:
            raise MalformedMessageError(f"media payload is not base64: {exc}") from exc
        return Media(
            sequence_number=seq,
            stream_sid=stream_sid,
            track=_str(media, "track"),
            chunk=_int(media, "chunk"),
            timestamp_ms=_int(media, "timestamp"),
            payload=payload,
        )
    if event == "dtmf":
        dtmf = _obj(message, "dtmf")
        return Dtmf(sequence_number=seq, stream_sid=stream_sid, track=_str(dtmf, "track"), digit=_str(dtmf, "digit"))
    if event == "mark":
        return Mark(sequence_number=seq, stream_sid=stream_sid, name=_str(_obj(message, "mark"), "name"))
    if event == "stop":
        stop = _obj(message, "stop")
        return Stop(
            sequence_number=seq,
            stream_sid=stream_sid,
            account_sid=_str(stop, "accountSid"),
            call_sid=_str(stop, "callSid"),
        )
    raise UnknownEventError(event)


# --- voice webhook --------------------------------------------------------------------------------


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str] | None = None) -> str:
    """TwiML answering the voice webhook: connect the call's audio to our WebSocket at ``stream_url``."""
    if urlsplit(stream_url).scheme != "wss":
        raise ValueError(f"Twilio Media Streams need a wss:// URL, got {stream_url!r}")
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in (parameters or {}).items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """True when ``signature`` (the X-Twilio-Signature header) signs this URL and POST form."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))
