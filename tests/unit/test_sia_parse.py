"""SIA DC-09 frames: an independent encoder (CRC-16/ARC, AES-CBC as DC-09 writes them) against the door's decoding.

The encoder here is written from the DC-09 framing, not from pysiaalarm, so a bug shared by the two
would have to be made twice. The integration tests and the fixtures use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from Crypto.Cipher import AES

from intake.channels.devices import sia

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)
KEY16 = "0123456789ABCDEF"  # pysiaalarm / panel convention: the 16 characters are the key's bytes
_PAD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # DC-09 padding may be anything but | [ ]


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor), bit by bit."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("_%H:%M:%S,%m-%d-%Y")


def frame(body: str, *, crc: int | None = None) -> bytes:
    """LF crc 0LLL body CR."""
    value = crc16_arc(body.encode("ascii")) if crc is None else crc
    return f"\n{value:04X}{len(body):04X}{body}\r".encode("ascii")


def dc09(message_type: str, account: str, sequence: int, data: str, *, when: datetime | None = T0,
         key: bytes | None = None, receiver: str = "R1", line: str = "L0", bad_crc: bool = False) -> bytes:
    """One DC-09 frame. `data` is what goes inside [ ] ('#1234|Nri1/FA501', '#1234|1110 01 015', '' for NULL)."""
    seq = f"{sequence:04d}"
    tail = f"{data}]" + (stamp(when) if when is not None else "")
    if key is None:
        body = f'"{message_type}"{seq}{receiver}{line}#{account}[{tail}'
    else:
        pad_len = -(len(tail) + 1) % 16
        plain = (_PAD * 2)[:pad_len] + "|" + tail
        block = AES.new(key, AES.MODE_CBC, iv=bytes(16)).encrypt(plain.encode("ascii")).hex().upper()
        body = f'"*{message_type}"{seq}{receiver}{line}#{account}[{block}'
    crc = None
    if bad_crc:
        crc = crc16_arc(body.encode("ascii")) ^ 0x0101
    return frame(body, crc=crc)


def read_reply(data: bytes, key: bytes | None = None) -> dict[str, Any]:
    """A receiver's reply: its type, CRC check, and for an encrypted ACK the decrypted block."""
    assert data.startswith(b"\n") and data.endswith(b"\r"), data
    text = data[1:-1].decode("ascii")
    crc, length, body = text[:4], text[4:8], text[8:]
    out: dict[str, Any] = {"crc_ok": int(crc, 16) == crc16_arc(body.encode()),
                           "length_ok": int(length, 16) == len(body), "type": body[1:body.index('"', 1)], "body": body}
    if out["type"].startswith("*") and key is not None:
        block = bytes.fromhex(body[body.index("[") + 1:])
        out["decrypted"] = AES.new(key, AES.MODE_CBC, iv=bytes(16)).decrypt(block).decode("ascii")
    return out


def device(account: str = "1234", secret: str | None = None, kind: str = "sia") -> dict[str, Any]:
    return {"device_id": account, "facility_id": 1, "kind": kind, "secret": secret, "heartbeat_s": None,
            "last_seen_at": None, "silent_since": None}


def decode(raw: bytes, dev: dict[str, Any] | None, now: datetime = T0) -> sia.Reading:
    line = raw.decode("ascii").strip()
    header = sia.read_header(line)
    assert header is not None
    return sia.decode(line, header, dev, now)


# ------------------------------------------------------------------------------------ CRC ---


def test_crc16_arc_check_value_and_the_door_agree() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D  # the catalogue check value of CRC-16/ARC
    assert sia.crc16("123456789") == "BB3D"
    body = '"SIA-DCS"0002R1L0#1234[#1234|Nri1/FA501]_08:00:05,11-22-2026'
    assert sia.crc16(body) == f"{crc16_arc(body.encode()):04X}"


# ----------------------------------------------------------------------------- plain frames ---


def test_plain_sia_fire_alarm() -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|Nri1/FA501", when=T0 + timedelta(seconds=5)), device())
    assert r.reply == sia.Reply.ACK and r.event is not None
    e = r.event
    assert (e.code, e.zone, e.area, e.device_id) == ("SIA:FA", "501", "1", "1234")
    assert e.occurred_at == T0 + timedelta(seconds=5)
    assert e.channel_ref == "sia:1234:0002:20261122T080005"
    assert e.raw["data"] == "#1234|Nri1/FA501]_08:00:05,11-22-2026" and e.raw["encrypted"] is False


def test_contact_id_fire_alarm_keeps_qualifier_zone_and_partition() -> None:
    r = decode(dc09("ADM-CID", "1234", 3, "#1234|1110 01 015"), device())
    assert r.reply == sia.Reply.ACK and r.event is not None
    assert (r.event.code, r.event.zone, r.event.area) == ("CID:1110", "015", "01")


def test_contact_id_restoral() -> None:
    r = decode(dc09("ADM-CID", "1234", 4, "#1234|3110 01 015"), device())
    assert r.event is not None and r.event.code == "CID:3110"


def test_null_message_is_a_heartbeat() -> None:
    r = decode(dc09("NULL", "1234", 5, ""), device())
    assert r.reply == sia.Reply.ACK and r.event is not None and r.event.code == "SIA:NULL"


def test_null_message_without_account_is_acknowledged_and_carries_nothing() -> None:
    body = '"NULL"0000R1L0[]'
    r = decode(frame(body), None)
    assert r.reply == sia.Reply.ACK and r.event is None


def test_a_frame_without_timestamp_gets_the_day_in_its_reference() -> None:
    r = decode(dc09("SIA-DCS", "1234", 9, "#1234|NFA12", when=None), device())
    assert r.reply == sia.Reply.ACK and r.event is not None
    assert r.event.channel_ref == "sia:1234:0009:d20261122" and r.event.occurred_at is None


# ------------------------------------------------------------------------------------ refusals ---


def test_bad_crc_is_nak() -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|Nri1/FA501", bad_crc=True), device())
    assert r.reply == sia.Reply.NAK and r.event is None and "CRC" in r.reason


@pytest.mark.parametrize("offset_s", [-41, 21, -3600])
def test_timestamp_outside_the_window_is_nak(offset_s: int) -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|NFA1", when=T0 + timedelta(seconds=offset_s)), device())
    assert r.reply == sia.Reply.NAK and r.event is None


@pytest.mark.parametrize("offset_s", [-40, 0, 20])
def test_timestamp_inside_the_window_is_accepted(offset_s: int) -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|NFA1", when=T0 + timedelta(seconds=offset_s)), device())
    assert r.reply == sia.Reply.ACK


def test_unknown_account_is_duh() -> None:
    assert decode(dc09("SIA-DCS", "9999", 2, "#9999|NFA1"), None).reply == sia.Reply.DUH


def test_account_registered_for_another_door_is_duh() -> None:
    assert decode(dc09("SIA-DCS", "1234", 2, "#1234|NFA1"), device(kind="mqtt")).reply == sia.Reply.DUH


def test_unsupported_code_is_duh() -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|NZZ1"), device())
    assert r.reply == sia.Reply.DUH and "ZZ" in r.reason


def test_plain_frame_for_an_encrypting_account_is_duh() -> None:
    assert decode(dc09("SIA-DCS", "1234", 2, "#1234|NFA1"), device(secret=KEY16)).reply == sia.Reply.DUH


def test_garbage_is_not_a_frame() -> None:
    assert sia.read_header("\x00\xffhello there") is None
    assert sia.read_header("GET / HTTP/1.1") is None


# --------------------------------------------------------------------------------- encryption ---


def test_encrypted_sia_fire_alarm_is_decrypted() -> None:
    raw = dc09("SIA-DCS", "1234", 7, "#1234|Nri2/FA0012", key=KEY16.encode())
    assert b"FA0012" not in raw
    r = decode(raw, device(secret=KEY16))
    assert r.reply == sia.Reply.ACK and r.event is not None
    assert (r.event.code, r.event.zone, r.event.area) == ("SIA:FA", "0012", "2")
    assert r.event.raw["data"] == "#1234|Nri2/FA0012]_08:00:00,11-22-2026"  # the padding is not kept


def test_encrypted_contact_id_with_a_binary_hex_key() -> None:
    key = bytes(range(32))
    r = decode(dc09("ADM-CID", "1234", 8, "#1234|1111 01 007", key=key), device(secret="hex:" + key.hex()))
    assert r.reply == sia.Reply.ACK and r.event is not None
    assert (r.event.code, r.event.zone) == ("CID:1111", "007")


def test_wrong_key_is_duh_and_no_key_is_duh() -> None:
    raw = dc09("SIA-DCS", "1234", 7, "#1234|NFA12", key=KEY16.encode())
    assert decode(raw, device(secret="FEDCBA9876543210")).reply == sia.Reply.DUH
    assert decode(raw, device(secret=None)).reply == sia.Reply.DUH


def test_encrypted_frame_without_timestamp_is_nak() -> None:
    raw = dc09("SIA-DCS", "1234", 7, "#1234|NFA12", key=KEY16.encode(), when=None)
    assert decode(raw, device(secret=KEY16)).reply == sia.Reply.NAK


def test_malformed_key_in_the_registry_is_duh() -> None:
    raw = dc09("SIA-DCS", "1234", 7, "#1234|NFA12", key=KEY16.encode())
    assert decode(raw, device(secret="not-a-key")).reply == sia.Reply.DUH


# ------------------------------------------------------------------------------------ replies ---


def test_plain_ack_echoes_sequence_receiver_line_and_account() -> None:
    r = decode(dc09("SIA-DCS", "1234", 2, "#1234|NFA1", receiver="R12", line="L3"), device())
    reply = read_reply(sia.reply_bytes(r, T0))
    assert reply["crc_ok"] and reply["length_ok"]
    assert reply["type"] == "ACK" and reply["body"] == '"ACK"0002R12L3#1234[]'


def test_encrypted_ack_carries_the_receivers_time() -> None:
    r = decode(dc09("SIA-DCS", "1234", 7, "#1234|NFA12", key=KEY16.encode()), device(secret=KEY16))
    reply = read_reply(sia.reply_bytes(r, T0), KEY16.encode())
    assert reply["crc_ok"] and reply["type"] == "*ACK"
    assert reply["body"].startswith('"*ACK"0007R1L0#1234[')
    assert reply["decrypted"].endswith("|]_08:00:00,11-22-2026")


def test_nak_carries_the_receivers_time_and_duh_echoes_the_account() -> None:
    nak = read_reply(sia.nak(T0))
    assert nak["crc_ok"] and nak["type"] == "NAK" and nak["body"].endswith("[]_08:00:00,11-22-2026")
    r = decode(dc09("SIA-DCS", "9999", 42, "#9999|NFA1"), None)
    duh = read_reply(sia.reply_bytes(r, T0))
    assert duh["crc_ok"] and duh["body"] == '"DUH"0042R1L0#9999[]'
