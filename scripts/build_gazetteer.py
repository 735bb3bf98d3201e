#!/usr/bin/env python3
"""Regenerate ``intake/core/data/wards.json`` from the installed vietnamadminunits data.

The runtime gazetteer (``intake.core.gazetteer``) reads only the generated JSON;
this script is the one place that opens the library's SQLite dataset (with the
standard library ``sqlite3``) and its converter tables.

Usage::

    .venv/bin/python scripts/build_gazetteer.py [--out intake/core/data/wards.json]

Output layout (arrays rather than objects, to keep the file small):

* ``provinces`` (2025, 34): ``[code, name, short, lat, lon, radius_m, [keys]]``
* ``wards`` (2025): ``[code, name, type, province_code, lat, lon, radius_m, [keys]]``
* ``legacy_provinces`` (63): ``[code, name, short, lat, lon, radius_m, [keys], new_province_code]``
* ``legacy_districts``: ``[code, name, type, province_code, lat, lon, radius_m, [keys], [new_ward_codes]]``
  (``new_ward_codes`` only for the island districts that had no wards and became a special zone)
* ``legacy_wards``: ``[code, name, type, district_code, lat, lon, radius_m, [keys], [new_ward_codes]]``
  ``new_ward_codes``: the 2025 ward(s) it became, the default (used without a street) first.

``keys`` are extra folded, space-free names the unit is also known by (aliases
and abbreviations from the library's keyword lists, without the type prefix);
the plain short name is always a key and is not repeated.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import statistics
import sys
import unicodedata
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "intake" / "core" / "data" / "wards.json"

MIN_WARD_RADIUS_M = 150.0
EARTH_M_PER_DEG = 111_320.0

# Type prefixes as they appear (folded, space-free) at the start of the library's keywords.
PREFIXES: dict[str, tuple[str, ...]] = {
    "ward": ("phuong", "xa", "thitran", "dackhu", "ward", "tt", "p", "f", "x"),
    "district": ("quan", "huyen", "thixa", "thanhpho", "district", "tx", "tp", "q", "h"),
    "province": ("thanhpho", "tinh", "tp", "t"),
}
EXTRA_PROVINCE_KEYS: dict[str, tuple[str, ...]] = {
    # 2025 / legacy province short key -> extra spoken or written names
    "hochiminh": ("hcm", "tphcm", "hcmc", "saigon", "sg", "thanhphohochiminh"),
    "hanoi": ("hn", "hanoicity", "thudo"),
    "danang": ("dng",),
    "haiphong": ("hp",),
    "hue": ("thuathienhue", "tth"),
}


def fold(text: str) -> str:
    """Same folding as intake.core.textnorm.fold (kept local: the script must run stand-alone)."""
    text = text.replace("đ", "d").replace("Đ", "d").lower()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def key(text: str) -> str:
    """Folded, letters and digits only; a number alone loses its leading zeros."""
    k = "".join(re.findall(r"[0-9a-z]+", fold(text)))
    return str(int(k)) if k.isdigit() else k


def short_name(full: str, unit_type: str | None, short: str | None) -> str:
    """'Phường Hàng Bạc' -> 'Hàng Bạc'; 'Phường 12' -> '12'; drops '(Thị trấn)' qualifiers."""
    s = re.sub(r"\s*\(.*?\)\s*$", "", short or full).strip()
    if unit_type and s.startswith(unit_type + " "):
        rest = s[len(unit_type) + 1 :].strip()
        if rest:
            s = rest
    return s


def extra_keys(keywords_json: str | None, kind: str, short_key: str) -> list[str]:
    """Aliases from a keyword list, type prefixes removed, minus the short key itself."""
    if not keywords_json:
        return []
    kws = [str(k) for k in json.loads(keywords_json)]
    kwset = set(kws)
    out: set[str] = set()
    for kw in kws:
        stripped = None
        for p in PREFIXES[kind]:
            if kw.startswith(p) and len(kw) > len(p):
                rest = kw[len(p) :]
                if rest in kwset or rest.isdigit():
                    stripped = rest
                    break
        if stripped is not None:
            out.add(str(int(stripped)) if stripped.isdigit() else stripped)
        elif not any(kw.startswith(p) for p in PREFIXES[kind]):
            out.add(str(int(kw)) if kw.isdigit() else kw)
    out.discard(short_key)
    out.discard("")
    return sorted(out)


def parse_bounds(bounds: str | None) -> tuple[float, float, float, float] | None:
    if not bounds:
        return None
    try:
        a, b = bounds.replace("—", "–").split("–")
        la1, lo1 = (float(x) for x in a.split(","))
        la2, lo2 = (float(x) for x in b.split(","))
    except ValueError:
        return None
    return min(la1, la2), min(lo1, lo2), max(la1, la2), max(lo1, lo2)


def dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * EARTH_M_PER_DEG
    dx = (lon2 - lon1) * EARTH_M_PER_DEG * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


def half_diagonal(b: tuple[float, float, float, float]) -> float:
    return dist_m(b[0], b[1], b[2], b[3]) / 2


def inside(b: tuple[float, float, float, float], lat: float, lon: float, slack_deg: float = 0.002) -> bool:
    return b[0] - slack_deg <= lat <= b[2] + slack_deg and b[1] - slack_deg <= lon <= b[3] + slack_deg


def r5(x: float) -> float:
    return round(float(x), 5)


def build(db_path: Path, converter_path: Path) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    conv = json.loads(converter_path.read_text(encoding="utf-8"))

    # ---- 2025 provinces and wards -------------------------------------------------------------
    new_rows = list(con.execute("SELECT * FROM admin_units ORDER BY provinceCode, wardCode"))
    new_code_by_key: dict[tuple[str, str], str] = {}
    prov_new: dict[str, dict[str, Any]] = {}
    prov_code_by_key: dict[str, str] = {}
    wards: list[list[Any]] = []
    areas_by_prov: dict[str, list[float]] = defaultdict(list)
    for r in new_rows:
        pc = r["provinceCode"]
        prov_code_by_key[r["provinceKey"]] = pc
        if pc not in prov_new:
            pshort_key = key(r["provinceShort"])
            pkeys = set(extra_keys(r["provinceKeywords"], "province", pshort_key))
            pkeys.update(EXTRA_PROVINCE_KEYS.get(pshort_key, ()))
            pkeys.discard(pshort_key)
            prov_new[pc] = {
                "name": r["province"],
                "short": r["provinceShort"],
                "lat": r5(r["provinceLat"]),
                "lon": r5(r["provinceLon"]),
                "keys": sorted(pkeys),
            }
        new_code_by_key[(r["provinceKey"], r["wardKey"])] = r["wardCode"]
        area = r["wardAreaKm2"]
        if area:
            areas_by_prov[pc].append(float(area))
    for r in new_rows:
        pc = r["provinceCode"]
        area = r["wardAreaKm2"]
        if not area:  # two wards have no area: use the province's median
            area = statistics.median(areas_by_prov[pc])
        radius = max(MIN_WARD_RADIUS_M, math.sqrt(float(area) * 1e6 / math.pi))
        short = short_name(r["ward"], r["wardType"], r["wardShort"])
        wards.append(
            [
                r["wardCode"],
                r["ward"],
                r["wardType"],
                pc,
                r5(r["wardLat"]),
                r5(r["wardLon"]),
                round(radius),
                extra_keys(r["wardKeywords"], "ward", key(short)),
            ]
        )
    provinces = []
    for pc, p in sorted(prov_new.items()):
        radius = math.sqrt(sum(areas_by_prov[pc]) * 1e6 / math.pi)
        provinces.append([pc, p["name"], p["short"], p["lat"], p["lon"], round(radius), p["keys"]])

    # ---- legacy (63 provinces, districts, wards) ------------------------------------------------
    old_rows = list(
        con.execute("SELECT * FROM admin_units_legacy ORDER BY provinceCode, districtCode, wardCode")
    )
    old_prov_of_new: dict[str, str] = {}
    for new_pkey, old_pkeys in conv["DICT_PROVINCE"].items():
        for opk in old_pkeys:
            old_prov_of_new[opk] = prov_code_by_key[new_pkey]

    # legacy composite key -> [new ward codes], default first
    to_new: dict[str, list[str]] = defaultdict(list)
    for new_pkey, mapping in conv["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_wkey, old_keys in mapping.items():
            code = new_code_by_key.get((new_pkey, new_wkey))
            if code is None:
                continue
            for ok in old_keys:
                if code not in to_new[ok]:
                    to_new[ok].append(code)
    for new_pkey, mapping in conv["DICT_PROVINCE_WARD_DIVIDED"].items():
        for ok, options in mapping.items():
            ordered = sorted(options, key=lambda o: not o["isDefaultNewWard"])
            for o in ordered:
                code = new_code_by_key.get((new_pkey, o["newWardKey"]))
                if code is not None and code not in to_new[ok]:
                    to_new[ok].append(code)

    wards_by_district: dict[str, list[sqlite3.Row]] = defaultdict(list)
    district_row: dict[str, sqlite3.Row] = {}
    prov_old_rows: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for r in old_rows:
        district_row.setdefault(r["districtCode"], r)
        prov_old_rows[r["provinceCode"]].append(r)
        if r["wardCode"]:
            wards_by_district[r["districtCode"]].append(r)

    # district radius: its bounding box when it is plausible, else the spread of its wards' centroids
    district_radius: dict[str, float] = {}
    bad_districts = 0
    for dc, r in district_row.items():
        b = parse_bounds(r["districtBounds"])
        members = wards_by_district.get(dc, [])
        spread = max(
            (dist_m(r["districtLat"], r["districtLon"], w["wardLat"], w["wardLon"]) for w in members),
            default=0.0,
        )
        ok = b is not None and inside(b, r["districtLat"], r["districtLon"])
        if ok and b is not None and members:
            share = sum(inside(b, w["wardLat"], w["wardLon"], 0.01) for w in members) / len(members)
            ok = share >= 0.6 and half_diagonal(b) <= 80_000
        if ok and b is not None:
            radius = half_diagonal(b)
        else:
            bad_districts += 1
            radius = spread * 1.15 if spread else 5000.0
        district_radius[dc] = max(1000.0, radius)

    legacy_districts: list[list[Any]] = []
    for dc, r in district_row.items():
        short = short_name(r["district"], r["districtType"], r["districtShort"])
        special = []
        if not wards_by_district.get(dc):
            special = to_new.get(f"{r['provinceKey']}_{r['districtKey']}_", [])
        legacy_districts.append(
            [
                dc,
                r["district"],
                r["districtType"],
                r["provinceCode"],
                r5(r["districtLat"]),
                r5(r["districtLon"]),
                round(district_radius[dc]),
                extra_keys(r["districtKeywords"], "district", key(short)),
                special,
            ]
        )

    legacy_wards: list[list[Any]] = []
    bad_wards = 0
    unmapped = 0
    capped = 0
    new_radius = {w[0]: float(w[6]) for w in wards}
    for dc, members in wards_by_district.items():
        fallback = min(10_000.0, max(300.0, district_radius[dc] / math.sqrt(max(1, len(members)))))
        for r in members:
            b = parse_bounds(r["wardBounds"])
            radius = half_diagonal(b) if b is not None else 0.0
            if b is None or not inside(b, r["wardLat"], r["wardLon"]) or radius > district_radius[dc]:
                bad_wards += 1
                radius = fallback
            composite = f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}"
            new_codes = to_new.get(composite, [])
            if not new_codes:
                unmapped += 1
            else:
                # an old ward lies within the new ward(s) it became: never wider than they are together
                # (x 1.25, the ratio of a square's half-diagonal to the radius of a disc of its area)
                cap = 1.25 * math.sqrt(sum(new_radius[c] ** 2 for c in new_codes))
                if radius > cap:
                    capped += 1
                    radius = cap
            short = short_name(r["ward"], r["wardType"], r["wardShort"])
            legacy_wards.append(
                [
                    r["wardCode"],
                    r["ward"],
                    r["wardType"],
                    dc,
                    r5(r["wardLat"]),
                    r5(r["wardLon"]),
                    round(max(MIN_WARD_RADIUS_M, radius)),
                    extra_keys(r["wardKeywords"], "ward", key(short)),
                    new_codes,
                ]
            )

    legacy_provinces: list[list[Any]] = []
    for pc, rows in sorted(prov_old_rows.items()):
        r = rows[0]
        pts = [(w["wardLat"], w["wardLon"]) for w in rows if w["wardLat"] is not None]
        dists = sorted(dist_m(r["provinceLat"], r["provinceLon"], la, lo) for la, lo in pts)
        radius = dists[int(0.95 * (len(dists) - 1))] if dists else 30_000.0
        pshort_key = key(r["provinceShort"])
        pkeys = set(extra_keys(r["provinceKeywords"], "province", pshort_key))
        pkeys.update(EXTRA_PROVINCE_KEYS.get(pshort_key, ()))
        pkeys.discard(pshort_key)
        legacy_provinces.append(
            [
                pc,
                r["province"],
                r["provinceShort"],
                r5(r["provinceLat"]),
                r5(r["provinceLon"]),
                round(max(5000.0, radius)),
                sorted(pkeys),
                old_prov_of_new.get(r["provinceKey"]),
            ]
        )

    con.close()
    print(
        f"2025: {len(provinces)} provinces, {len(wards)} wards; legacy: {len(legacy_provinces)} provinces, "
        f"{len(legacy_districts)} districts ({bad_districts} with implausible bounds), "
        f"{len(legacy_wards)} wards ({bad_wards} with implausible bounds, {capped} capped, "
        f"{unmapped} unmapped)",
        file=sys.stderr,
    )
    try:
        version = metadata.version("vietnamadminunits")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "format": 1,
        "source": f"vietnamadminunits {version} (MIT), dataset.db + converter_2025.json",
        "provinces": provinces,
        "wards": wards,
        "legacy_provinces": legacy_provinces,
        "legacy_districts": legacy_districts,
        "legacy_wards": legacy_wards,
    }


def dumps(data: dict[str, Any]) -> str:
    """Compact JSON with one unit per line, so that diffs of the generated file stay readable."""

    def enc(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for k, v in data.items():
        if isinstance(v, list):
            parts.append(f"{enc(k)}:[\n" + ",\n".join(enc(row) for row in v) + "\n]")
        else:
            parts.append(f"{enc(k)}:{enc(v)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--data-dir", type=Path, default=None, help="vietnamadminunits/data (default: installed)")
    args = ap.parse_args(argv)
    data_dir: Path = args.data_dir
    if data_dir is None:
        import importlib.util

        spec = importlib.util.find_spec("vietnamadminunits")
        if spec is None or spec.origin is None:
            print("vietnamadminunits is not installed", file=sys.stderr)
            return 1
        data_dir = Path(spec.origin).parent / "data"
    data = build(data_dir / "dataset.db", data_dir / "converter_2025.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(data), encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
