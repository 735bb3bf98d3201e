"""The registry of facilities (buildings with fire-alarm communicators and cameras).

`intake facilities import FILE.csv` reads one facility a row; re-importing a
file updates the facilities in place (keyed by the registry's own `id`).

Columns (a header row is required; only `id`, `name` and `address` must be filled):
  id, name, address, lat, lon, accuracy_m, phone, contact_name, contact_phone, device_ids,
  device_secrets, heartbeat_s
`device_ids` is a list separated by ';' or spaces, each optionally `kind:id`
(e.g. `sia:1234;mqtt:bldg7/panel`). `device_secrets` gives devices their secret
as `id=secret` pairs separated by ';' (a SIA account's AES key, an HTTP device's
bearer token). `heartbeat_s` is the supervision interval the facility's devices
promise (a device silent for twice that is flagged). Without coordinates the
address is located with the gazetteer (ward accuracy).
"""

from __future__ import annotations

import asyncio
import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from intake.config import Settings
from intake.core import address
from intake.core.phone import normalise_phone
from intake.store import Store

REQUIRED = ("id", "name", "address")
KNOWN = (*REQUIRED, "lat", "lon", "accuracy_m", "phone", "contact_name", "contact_phone", "device_ids",
         "device_secrets", "heartbeat_s")
DEFAULT_ACCURACY_M = 30.0


class FacilityImportError(ValueError):
    pass


def _float(row: dict[str, str], name: str, lineno: int) -> float | None:
    raw = (row.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise FacilityImportError(f"line {lineno}: {name} {raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise FacilityImportError(f"line {lineno}: {name} must be finite")
    return value


def parse_row(row: dict[str, str], lineno: int, settings: Settings) -> dict[str, Any]:
    for name in REQUIRED:
        if not (row.get(name) or "").strip():
            raise FacilityImportError(f"line {lineno}: {name} is empty")
    lat, lon = _float(row, "lat", lineno), _float(row, "lon", lineno)
    accuracy = _float(row, "accuracy_m", lineno)
    if (lat is None) != (lon is None):
        raise FacilityImportError(f"line {lineno}: give both lat and lon, or neither")
    if lat is not None and not -90 <= lat <= 90:
        raise FacilityImportError(f"line {lineno}: lat {lat} out of range")
    if lon is not None and not -180 <= lon <= 180:
        raise FacilityImportError(f"line {lineno}: lon {lon} out of range")
    ward_code = None
    located_by_address = False
    if lat is None:
        found = address.locate_text(row["address"], default_province=settings.default_province)
        if found is not None:
            loc = found[1]
            lat, lon, accuracy, ward_code = loc.lat, loc.lon, loc.accuracy_m, loc.ward_code
            located_by_address = True
    devices: list[dict[str, Any]] = []
    for item in (row.get("device_ids") or "").replace(";", " ").split():
        kind, _, dev = item.rpartition(":")
        devices.append({"device_id": dev if kind else item, "kind": kind or "device"})
    secrets: dict[str, str] = {}
    for pair in (row.get("device_secrets") or "").split(";"):
        if not pair.strip():
            continue
        dev_id, sep, secret = pair.strip().partition("=")
        if not sep or not dev_id.strip() or not secret.strip():
            raise FacilityImportError(f"line {lineno}: device_secrets wants id=secret pairs, got {pair.strip()!r}")
        secrets[dev_id.strip()] = secret.strip()
    unknown = sorted(set(secrets) - {d["device_id"] for d in devices})
    if unknown:
        raise FacilityImportError(
            f"line {lineno}: device_secrets names devices not in device_ids: {', '.join(unknown)}")
    heartbeat = _float(row, "heartbeat_s", lineno)
    if heartbeat is not None and (heartbeat <= 0 or heartbeat != int(heartbeat)):
        raise FacilityImportError(f"line {lineno}: heartbeat_s must be a whole number of seconds above 0")
    for device in devices:
        device["secret"] = secrets.get(device["device_id"])
        device["heartbeat_s"] = int(heartbeat) if heartbeat is not None else None

    def phone(name: str) -> str | None:
        raw = (row.get(name) or "").strip()
        if not raw:
            return None
        p = normalise_phone(raw, settings.default_region)
        return p.e164 or raw

    return {
        "values": {
            "external_id": row["id"].strip(),
            "name": row["name"].strip(),
            "address": row["address"].strip(),
            "lat": lat,
            "lon": lon,
            "accuracy_m": accuracy if accuracy is not None else (DEFAULT_ACCURACY_M if lat is not None else None),
            "ward_code": ward_code,
            "phone": phone("phone"),
            "contact_name": (row.get("contact_name") or "").strip() or None,
            "contact_phone": phone("contact_phone"),
        },
        "devices": devices,
        "located_by_address": located_by_address,
    }


def read_rows(path: str | Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise FacilityImportError(
                    f"{path}: missing column(s) {', '.join(missing)}; columns: {', '.join(KNOWN)}"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FacilityImportError(f"cannot read {path}: {exc}") from exc


async def import_csv(store: Store, path: str | Path, settings: Settings, *, progress: bool = True) -> dict[str, int]:
    """All rows or none: a bad row stops the import before anything is written."""
    rows = await asyncio.to_thread(read_rows, path)

    from tqdm import tqdm

    parsed = [parse_row(r, i, settings) for i, r in enumerate(
        tqdm(rows, desc="reading", unit="row", disable=not progress), start=2)]
    seen: dict[str, int] = {}
    for i, p in enumerate(parsed, start=2):
        for dev in p["devices"]:
            if dev["device_id"] in seen:
                raise FacilityImportError(
                    f"line {i}: device {dev['device_id']} is already listed on line {seen[dev['device_id']]}")
            seen[dev["device_id"]] = i
    summary = {"created": 0, "updated": 0, "devices": 0, "located_by_address": 0, "unlocated": 0}
    now = datetime.now(UTC)
    async with store.transaction() as repo:
        for p in tqdm(parsed, desc="storing", unit="facility", disable=not progress):
            values = p["values"]
            existing = await repo.facility_by_external_id(values["external_id"])
            if existing is None:
                facility_id = await repo.insert_facility({**values, "created_at": now, "updated_at": now})
                summary["created"] += 1
            else:
                facility_id = existing["id"]
                await repo.update_facility(facility_id, {**values, "updated_at": now})
                summary["updated"] += 1
            await repo.set_facility_devices(facility_id, p["devices"])
            summary["devices"] += len(p["devices"])
            summary["located_by_address"] += int(p["located_by_address"])
            summary["unlocated"] += int(values["lat"] is None)
    return summary
