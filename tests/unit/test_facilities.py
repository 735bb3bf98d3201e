"""Facility registry rows: devices with their secrets and supervision interval."""

from __future__ import annotations

import pytest

from intake.config import Settings
from intake.facilities import FacilityImportError, parse_row

ROW = {"id": "HN-9", "name": "Kho A", "address": "12 Hàng Bạc, Hoàn Kiếm, Hà Nội", "lat": "21.0341",
       "lon": "105.8519", "device_ids": "sia:1001;http:kho-a",
       "device_secrets": "1001=00112233445566778899AABBCCDDEEFF", "heartbeat_s": "300"}


def test_devices_get_their_secret_and_the_facilitys_heartbeat() -> None:
    devices = parse_row(dict(ROW), 2, Settings())["devices"]
    assert devices == [
        {"device_id": "1001", "kind": "sia", "secret": "00112233445566778899AABBCCDDEEFF", "heartbeat_s": 300},
        {"device_id": "kho-a", "kind": "http", "secret": None, "heartbeat_s": 300},
    ]


@pytest.mark.parametrize(("column", "value", "message"), [
    ("device_secrets", "9999=abc", "not in device_ids: 9999"),
    ("device_secrets", "1001", "id=secret pairs"),
    ("heartbeat_s", "0", "whole number of seconds"),
    ("heartbeat_s", "2.5", "whole number of seconds"),
])
def test_bad_device_columns_name_the_line_and_the_problem(column: str, value: str, message: str) -> None:
    with pytest.raises(FacilityImportError, match=f"line 7: .*{message}"):
        parse_row({**ROW, column: value}, 7, Settings())
