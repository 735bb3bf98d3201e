"""AudioSocket frame codec: encoding, incremental parsing, UUID and sample-rate helpers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from intake.telephony.audiosocket import (
    AudioSocketError,
    Frame,
    FrameParser,
    Kind,
    encode,
    read_capture,
    sample_rate,
    silence_frame,
    uuid_of,
)

CAPTURES = Path("/work/shared/fixtures/asterisk/audiosocket")
CALL_UUID = uuid.UUID("6ba6f33f-0e04-420c-a041-935e3b8eb398")


def test_encode_is_kind_then_big_endian_length_then_payload() -> None:
    assert encode(Frame(Kind.DTMF, b"#")) == b"\x03\x00\x01#"
    assert encode(Frame(Kind.SLIN, bytes(320)))[:3] == b"\x10\x01\x40"


def test_hangup_frame_is_three_zero_bytes() -> None:
    assert encode(Frame(Kind.HANGUP)) == b"\x00\x00\x00"


def test_encode_rejects_payload_over_64k() -> None:
    with pytest.raises(AudioSocketError):
        encode(Frame(Kind.SLIN, bytes(0x10000)))


def test_round_trip_of_several_frames_in_one_read() -> None:
    frames = [
        Frame(Kind.UUID, CALL_UUID.bytes),
        Frame(Kind.SLIN, bytes(range(256)) + bytes(64)),
        Frame(Kind.DTMF, b"1"),
        Frame(Kind.HANGUP),
    ]
    assert FrameParser().feed(b"".join(encode(f) for f in frames)) == frames


def test_frames_split_across_reads_of_every_size() -> None:
    frames = [Frame(Kind.UUID, CALL_UUID.bytes), Frame(Kind.SLIN_16K, bytes(640)), Frame(Kind.DTMF, b"#")]
    stream = b"".join(encode(f) for f in frames)
    for size in (1, 2, 3, 4, 7, 19, 100):
        parser = FrameParser()
        got: list[Frame] = []
        for i in range(0, len(stream), size):
            got += parser.feed(stream[i : i + size])
        assert got == frames, size
        assert parser.pending == 0


def test_partial_frame_stays_pending() -> None:
    parser = FrameParser()
    assert parser.feed(b"\x10\x01\x40" + bytes(100)) == []
    assert parser.pending == 103


def test_unknown_kind_is_parsed_not_dropped() -> None:
    assert FrameParser().feed(b"\x42\x00\x02ab") == [Frame(0x42, b"ab")]


def test_uuid_of_reads_16_raw_bytes() -> None:
    assert uuid_of(Frame(Kind.UUID, CALL_UUID.bytes)) == CALL_UUID


@pytest.mark.parametrize("frame", [Frame(Kind.SLIN, bytes(16)), Frame(Kind.UUID, b"short")])
def test_uuid_of_rejects_other_frames(frame: Frame) -> None:
    with pytest.raises(AudioSocketError):
        uuid_of(frame)


@pytest.mark.parametrize(
    ("kind", "rate"),
    [
        (0x10, 8000),
        (0x11, 12000),
        (0x12, 16000),
        (0x13, 24000),
        (0x14, 32000),
        (0x15, 44100),
        (0x16, 48000),
        (0x17, 96000),
        (0x18, 192000),
    ],
)
def test_sample_rate_of_audio_kinds(kind: int, rate: int) -> None:
    assert sample_rate(kind) == rate


def test_sample_rate_of_non_audio_kind_is_an_error() -> None:
    with pytest.raises(ValueError):
        sample_rate(Kind.DTMF)


def test_silence_frame_is_20_ms() -> None:
    assert silence_frame() == Frame(Kind.SLIN, bytes(320))
    assert len(silence_frame(Kind.SLIN_16K).payload) == 640


def test_captured_stream_parses_exactly() -> None:
    data = (CAPTURES / "normal_call.bin").read_bytes()
    parser = FrameParser()
    frames = parser.feed(data)
    assert parser.pending == 0
    assert uuid_of(frames[0]) == CALL_UUID
    assert b"".join(encode(f) for f in frames) == data


def test_capture_timing_lines_match_frames() -> None:
    capture = read_capture(CAPTURES / "dtmf_call.bin")
    assert [t for t, _ in capture] == sorted(t for t, _ in capture)
    assert [f.payload for _, f in capture if f.kind == Kind.DTMF] == [b"1", b"1", b"2", b"#"]
