"""Twilio Media Streams: G.711 mu-law, message parsing, TwiML and webhook signatures."""

from __future__ import annotations

import base64
import json
import math
from array import array
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from intake.telephony.twilio_media import (
    MULAW_TO_LINEAR,
    Connected,
    Dtmf,
    MalformedMessageError,
    Mark,
    Media,
    Start,
    Stop,
    UnknownEventError,
    connect_stream_twiml,
    decode_mulaw,
    encode_mulaw,
    parse_message,
    verify_twilio_signature,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio_media"
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
AUTH_TOKEN = "12345678901234567890123456789012"
WEBHOOK_URL = "https://intake.example.org/twilio/voice?tenant=demo"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def s16(pcm: bytes) -> list[int]:
    return list(array("h", pcm))


# --- mu-law ---


@pytest.mark.parametrize(("code", "sample"), [(0xFF, 0), (0x00, -32124), (0x80, 32124), (0x7F, 0)])
def test_mulaw_table_known_values(code: int, sample: int) -> None:
    assert MULAW_TO_LINEAR[code] == sample
    assert s16(decode_mulaw(bytes([code]))) == [sample]


def test_mulaw_table_has_256_entries_and_is_odd_symmetric() -> None:
    assert len(MULAW_TO_LINEAR) == 256
    assert all(MULAW_TO_LINEAR[c] == -MULAW_TO_LINEAR[c ^ 0x80] for c in range(256))


def test_decode_makes_two_bytes_little_endian_per_byte() -> None:
    assert decode_mulaw(b"\x80") == (32124).to_bytes(2, "little", signed=True)


def test_encode_then_decode_every_code_gives_it_back() -> None:
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is "-0", which encodes as 0xFF
    assert encode_mulaw(decode_mulaw(codes)) == codes


def test_round_trip_error_is_within_half_a_quantisation_step() -> None:
    samples = array("h", range(-32635, 32636))
    decoded = s16(decode_mulaw(encode_mulaw(samples.tobytes())))
    # In segment e the step is 2^(e+3); |x| + 132 >= 2^(e+7), so half a step <= (|x| + 132) / 32.
    assert all(abs(d - x) <= (abs(x) + 132) / 32 for x, d in zip(samples, decoded, strict=True))


def test_clipped_samples_decode_to_the_largest_code() -> None:
    assert s16(decode_mulaw(encode_mulaw(array("h", [32767, -32768]).tobytes()))) == [32124, -32124]


def test_encode_rejects_odd_length_pcm() -> None:
    with pytest.raises(ValueError):
        encode_mulaw(b"\x00")


# --- messages ---


def test_connected() -> None:
    assert parse_message(fixture("connected__default")) == Connected(protocol="Call", version="1.0.0")


def test_start_with_custom_parameters() -> None:
    start = parse_message(fixture("start__inbound"))
    assert isinstance(start, Start)
    assert start.stream_sid == STREAM_SID
    assert start.call_sid == "CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    assert start.tracks == ("inbound",)
    assert start.media_format.encoding == "audio/x-mulaw"
    assert start.media_format.sample_rate == 8000
    assert start.media_format.channels == 1
    assert start.custom_parameters == {"tenant": "demo", "dialled_number": "+15005550006"}


def test_start_with_both_tracks_and_no_parameters() -> None:
    start = parse_message(fixture("start__both_tracks_no_parameters"))
    assert isinstance(start, Start)
    assert start.tracks == ("inbound", "outbound")
    assert start.custom_parameters == {}


def test_media_payload_is_decoded_mulaw() -> None:
    media = parse_message(fixture("media__inbound_tone"))
    assert isinstance(media, Media)
    assert (media.sequence_number, media.chunk, media.timestamp_ms, media.track) == (3, 1, 5, "inbound")
    assert len(media.payload) == 160
    pcm = s16(media.pcm())
    expected = [int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(160)]
    assert all(abs(a - b) <= (abs(b) + 132) / 32 for a, b in zip(pcm, expected, strict=True))


def test_media_of_mulaw_silence_is_zero_pcm() -> None:
    media = parse_message(fixture("media__inbound_silence"))
    assert isinstance(media, Media)
    assert media.pcm() == bytes(320)


def test_dtmf() -> None:
    assert parse_message(fixture("dtmf__inbound")) == Dtmf(
        sequence_number=5, stream_sid=STREAM_SID, track="inbound_track", digit="1"
    )


def test_mark() -> None:
    assert parse_message(fixture("mark__played")) == Mark(
        sequence_number=6, stream_sid=STREAM_SID, name="greeting-done"
    )


def test_stop() -> None:
    assert parse_message(fixture("stop__default")) == Stop(
        sequence_number=7,
        stream_sid=STREAM_SID,
        account_sid="ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        call_sid="CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    )


def test_bytes_message_is_accepted() -> None:
    assert isinstance(parse_message(fixture("stop__default").encode()), Stop)


def _broken(name: str, edit: dict[str, object]) -> str:
    message = json.loads(fixture(name))
    message.update(edit)
    return json.dumps(message)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"protocol": "Call"}',
        _broken(
            "media__inbound_tone",
            {"media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "***not base64***"}},
        ),
        _broken("media__inbound_tone", {"media": "AAAA"}),
        _broken("media__inbound_tone", {"sequenceNumber": "three"}),
        _broken("start__inbound", {"start": {"streamSid": STREAM_SID}}),
        _broken("dtmf__inbound", {"streamSid": None}),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-event",
        "bad-base64",
        "media-not-object",
        "bad-sequence",
        "start-missing-fields",
        "no-stream-sid",
    ],
)
def test_malformed_messages_raise(raw: str) -> None:
    with pytest.raises(MalformedMessageError):
        parse_message(raw)


def test_unknown_event_has_its_own_error() -> None:
    with pytest.raises(UnknownEventError) as caught:
        parse_message('{"event": "clear", "streamSid": "MZ1", "sequenceNumber": "9"}')
    assert caught.value.event == "clear"


# --- TwiML ---


def test_twiml_connects_the_stream_with_parameters() -> None:
    twiml = connect_stream_twiml("wss://intake.example.org/twilio/media", {"tenant": "demo", "note": "a&b"})
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://intake.example.org/twilio/media">'
        '<Parameter name="tenant" value="demo" /><Parameter name="note" value="a&amp;b" />'
        "</Stream></Connect></Response>"
    )


def test_twiml_needs_a_wss_url() -> None:
    with pytest.raises(ValueError):
        connect_stream_twiml("https://intake.example.org/twilio/media")


# --- signatures ---

PARAMS = {
    "CallSid": "CAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "From": "+15005550006",
    "To": "+15005550001",
    "CallStatus": "ringing",
}


def test_valid_signature() -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK_URL, PARAMS)
    assert verify_twilio_signature(AUTH_TOKEN, WEBHOOK_URL, PARAMS, signature)


@pytest.mark.parametrize("tamper", ["params", "url", "token", "empty"])
def test_invalid_signature(tamper: str) -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK_URL, PARAMS)
    params, url, token = dict(PARAMS), WEBHOOK_URL, AUTH_TOKEN
    if tamper == "params":
        params["From"] = "+15005550009"
    elif tamper == "url":
        url = WEBHOOK_URL.replace("demo", "other")
    elif tamper == "token":
        token = "0" * 32
    else:
        signature = ""
    assert not verify_twilio_signature(token, url, params, signature)


def test_base64_of_fixture_is_160_bytes() -> None:
    media = json.loads(fixture("media__inbound_silence"))
    assert base64.b64decode(media["media"]["payload"]) == b"\xff" * 160
