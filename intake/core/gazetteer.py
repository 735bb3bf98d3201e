"""Offline gazetteer of Vietnamese administrative units: points and radii, no network.

Two generations of units are kept side by side:

* 2025 (34 provinces, two levels: ward + province), in force since 1 July 2025;
* legacy (63 provinces, three levels: ward, district, province), which people
  still use in speech and on signs for years.

Every unit has a centroid and a radius in metres: for 2025 wards the radius of
a disc with the ward's area, for legacy wards the half-diagonal of their
bounding box. Legacy wards also know the 2025 ward(s) they became (the default
one first), so an old-style address can be reported in the new form.

The data is generated from the `vietnamadminunits` package (MIT) by
``scripts/build_gazetteer.py`` into ``data/wards.json``; this module only reads
that file.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intake.core.textnorm import tokens

DATA_FILE = Path(__file__).with_name("data") / "wards.json"

_M_PER_DEG = 111_320.0


def name_key(text: str) -> str:
    """The matching key of a unit name: folded letters and digits, no spaces ('Ô Chợ Dừa' -> 'ochodua').

    A number alone loses its leading zeros ('05' -> '5'), so 'Phường 05' finds 'Phường 5'.
    """
    k = "".join(tokens(text))
    return str(int(k)) if k.isdigit() else k


def _short(name: str, unit_type: str | None) -> str:
    if unit_type and name.startswith(unit_type + " ") and len(name) > len(unit_type) + 1:
        return name[len(unit_type) + 1 :]
    return name


@dataclass(frozen=True, slots=True)
class Province:
    """A 2025 province or centrally governed city."""

    code: str
    name: str  # 'Thành phố Hà Nội'
    short: str  # 'Hà Nội'
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True, slots=True)
class Ward:
    """A 2025 ward (phường), commune (xã) or special zone (đặc khu)."""

    code: str
    name: str  # 'Phường Hoàn Kiếm'
    type: str  # 'Phường' | 'Xã' | 'Đặc khu'
    province_code: str
    province: str  # 'Thành phố Hà Nội'
    lat: float
    lon: float
    radius_m: float

    @property
    def short(self) -> str:
        return _short(self.name, self.type)


@dataclass(frozen=True, slots=True)
class LegacyProvince:
    """A province of the 63-province system (before July 2025)."""

    code: str
    name: str
    short: str
    lat: float
    lon: float
    radius_m: float
    province_code: str | None  # the 2025 province it became part of


@dataclass(frozen=True, slots=True)
class LegacyDistrict:
    code: str
    name: str  # 'Quận Hoàn Kiếm'
    type: str  # 'Quận' | 'Huyện' | 'Thị xã' | 'Thành phố'
    province_code: str  # legacy province code
    province: str
    lat: float
    lon: float
    radius_m: float
    ward_codes: tuple[str, ...] = ()  # 2025 ward, only for island districts that had no wards

    @property
    def short(self) -> str:
        return _short(self.name, self.type)


@dataclass(frozen=True, slots=True)
class LegacyWard:
    code: str
    name: str  # 'Phường Hàng Bạc'
    type: str  # 'Phường' | 'Xã' | 'Thị trấn'
    district_code: str
    district: str  # 'Quận Hoàn Kiếm'
    province_code: str  # legacy province code
    province: str
    lat: float
    lon: float
    radius_m: float
    ward_codes: tuple[str, ...]  # the 2025 ward(s) it became; the default (no street known) first

    @property
    def short(self) -> str:
        return _short(self.name, self.type)

    @property
    def ward_code(self) -> str | None:
        """The 2025 ward it maps to (the default one when it was divided)."""
        return self.ward_codes[0] if self.ward_codes else None


def _index(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for k, code in pairs:
        if k and code not in out[k]:
            out[k].append(code)
    return {k: tuple(v) for k, v in out.items()}


class Gazetteer:
    """Read-only lookups over the generated ward file. Build with `load()` (cached)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.source: str = str(data.get("source", ""))
        self._provinces: dict[str, Province] = {}
        prov_keys: list[tuple[str, str]] = []
        for code, name, short, lat, lon, radius, keys in data["provinces"]:
            self._provinces[code] = Province(code, name, short, lat, lon, float(radius))
            prov_keys += [(name_key(short), code), (name_key(name), code)] + [(k, code) for k in keys]
        self._province_by_key = _index(prov_keys)

        self._wards: dict[str, Ward] = {}
        ward_keys: list[tuple[str, str]] = []
        self._wards_by_province: dict[str, list[Ward]] = defaultdict(list)
        for code, name, wtype, pcode, lat, lon, radius, keys in data["wards"]:
            w = Ward(code, name, wtype, pcode, self._provinces[pcode].name, lat, lon, float(radius))
            self._wards[code] = w
            self._wards_by_province[pcode].append(w)
            ward_keys += [(name_key(w.short), code)] + [(k, code) for k in keys]
        self._ward_by_key = _index(ward_keys)

        self._legacy_provinces: dict[str, LegacyProvince] = {}
        lprov_keys: list[tuple[str, str]] = []
        for code, name, short, lat, lon, radius, keys, new_code in data["legacy_provinces"]:
            lp = LegacyProvince(code, name, short, lat, lon, float(radius), new_code)
            self._legacy_provinces[code] = lp
            lprov_keys += [(name_key(short), code), (name_key(name), code)] + [(k, code) for k in keys]
        self._legacy_province_by_key = _index(lprov_keys)

        self._legacy_districts: dict[str, LegacyDistrict] = {}
        dist_keys: list[tuple[str, str]] = []
        for code, name, dtype, pcode, lat, lon, radius, keys, new_codes in data["legacy_districts"]:
            d = LegacyDistrict(
                code,
                name,
                dtype,
                pcode,
                self._legacy_provinces[pcode].name,
                lat,
                lon,
                float(radius),
                tuple(new_codes),
            )
            self._legacy_districts[code] = d
            dist_keys += [(name_key(d.short), code)] + [(k, code) for k in keys]
        self._legacy_district_by_key = _index(dist_keys)

        self._legacy_wards: dict[str, LegacyWard] = {}
        self._legacy_wards_by_district: dict[str, list[LegacyWard]] = defaultdict(list)
        self._legacy_wards_by_new: dict[str, list[LegacyWard]] = defaultdict(list)
        lward_keys: list[tuple[str, str]] = []
        for code, name, wtype, dcode, lat, lon, radius, keys, new_codes in data["legacy_wards"]:
            d = self._legacy_districts[dcode]
            lw = LegacyWard(
                code,
                name,
                wtype,
                dcode,
                d.name,
                d.province_code,
                d.province,
                lat,
                lon,
                float(radius),
                tuple(new_codes),
            )
            self._legacy_wards[code] = lw
            self._legacy_wards_by_district[dcode].append(lw)
            for nc in lw.ward_codes:
                self._legacy_wards_by_new[nc].append(lw)
            lward_keys += [(name_key(lw.short), code)] + [(k, code) for k in keys]
        self._legacy_ward_by_key = _index(lward_keys)

        self._kinds: dict[str, frozenset[str]] = {}
        kinds: dict[str, set[str]] = defaultdict(set)
        for k in self._ward_by_key:
            kinds[k].add("ward")
        for k in self._legacy_ward_by_key:
            kinds[k].add("ward")
        for k in self._legacy_district_by_key:
            kinds[k].add("district")
        for k in list(self._province_by_key) + list(self._legacy_province_by_key):
            kinds[k].add("province")
        self._kinds = {k: frozenset(v) for k, v in kinds.items()}

    # ---- 2025 units ---------------------------------------------------------------------------

    def province(self, code: str) -> Province | None:
        return self._provinces.get(code)

    def provinces(self) -> list[Province]:
        return list(self._provinces.values())

    def ward(self, code: str) -> Ward | None:
        return self._wards.get(code)

    def wards(self, province_code: str | None = None) -> list[Ward]:
        """2025 wards, all of them or those of one province (by 2025 province code)."""
        if province_code is None:
            return list(self._wards.values())
        return list(self._wards_by_province.get(province_code, ()))

    def nearest_ward(self, lat: float, lon: float, *, max_distance_m: float | None = 50_000.0) -> Ward | None:
        """The 2025 ward whose centroid is nearest (approximate: centroids, not boundaries).

        None when the nearest centroid is farther than `max_distance_m` (a point outside Vietnam).
        """
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return None
        kx = math.cos(math.radians(lat))
        best: Ward | None = None
        best_d2 = math.inf
        for w in self._wards.values():
            dy = w.lat - lat
            dx = (w.lon - lon) * kx
            d2 = dx * dx + dy * dy
            if d2 < best_d2:
                best, best_d2 = w, d2
        if best is None:
            return None
        if max_distance_m is not None and math.sqrt(best_d2) * _M_PER_DEG > max_distance_m:
            return None
        return best

    def find_provinces(self, name: str) -> list[Province]:
        """2025 provinces called `name` (short, full or alias: 'Hà Nội', 'HN', 'Sài Gòn', 'TP.HCM').

        A legacy province name ('Hải Dương') finds the 2025 province it is now part of.
        """
        k = name_key(name)
        codes = list(self._province_by_key.get(k, ()))
        for lc in self._legacy_province_by_key.get(k, ()):
            new = self._legacy_provinces[lc].province_code
            if new and new not in codes:
                codes.append(new)
        return [self._provinces[c] for c in codes]

    def find_wards(self, name: str, province_code: str | None = None) -> list[Ward]:
        """2025 wards called `name` (without its type: 'Hoàn Kiếm'), optionally in one province."""
        found = [self._wards[c] for c in self._ward_by_key.get(name_key(name), ())]
        if province_code is not None:
            found = [w for w in found if w.province_code == province_code]
        return found

    # ---- legacy units -------------------------------------------------------------------------

    def legacy_province(self, code: str) -> LegacyProvince | None:
        return self._legacy_provinces.get(code)

    def legacy_provinces(self) -> list[LegacyProvince]:
        return list(self._legacy_provinces.values())

    def legacy_district(self, code: str) -> LegacyDistrict | None:
        return self._legacy_districts.get(code)

    def legacy_districts(self, province_code: str | None = None) -> list[LegacyDistrict]:
        found = list(self._legacy_districts.values())
        if province_code is not None:
            found = [d for d in found if d.province_code == province_code]
        return found

    def legacy_ward(self, code: str) -> LegacyWard | None:
        return self._legacy_wards.get(code)

    def legacy_wards(self, district_code: str | None = None) -> list[LegacyWard]:
        if district_code is None:
            return list(self._legacy_wards.values())
        return list(self._legacy_wards_by_district.get(district_code, ()))

    def legacy_wards_of(self, ward_code: str) -> list[LegacyWard]:
        """The legacy wards that became (all or part of) the 2025 ward `ward_code`."""
        return list(self._legacy_wards_by_new.get(ward_code, ()))

    def find_legacy_provinces(self, name: str) -> list[LegacyProvince]:
        """Legacy provinces called `name`; a 2025 province name also finds the legacy ones merged into it."""
        k = name_key(name)
        codes = list(self._legacy_province_by_key.get(k, ()))
        if not codes:
            for nc in self._province_by_key.get(k, ()):
                codes += [p.code for p in self._legacy_provinces.values() if p.province_code == nc]
        return [self._legacy_provinces[c] for c in codes]

    def find_legacy_districts(self, name: str, province_code: str | None = None) -> list[LegacyDistrict]:
        """Legacy districts called `name` ('Đống Đa', '1' for Quận 1), optionally in one legacy province."""
        found = [self._legacy_districts[c] for c in self._legacy_district_by_key.get(name_key(name), ())]
        if province_code is not None:
            found = [d for d in found if d.province_code == province_code]
        return found

    def find_legacy_wards(
        self, name: str, *, district_code: str | None = None, province_code: str | None = None
    ) -> list[LegacyWard]:
        """Legacy wards called `name`, optionally in one legacy district or legacy province."""
        found = [self._legacy_wards[c] for c in self._legacy_ward_by_key.get(name_key(name), ())]
        if district_code is not None:
            found = [w for w in found if w.district_code == district_code]
        if province_code is not None:
            found = [w for w in found if w.province_code == province_code]
        return found

    # ---- for the address finder ---------------------------------------------------------------

    def kinds(self, key: str) -> frozenset[str]:
        """Which levels ('ward', 'district', 'province') have a unit whose key is `key` (see `name_key`)."""
        return self._kinds.get(key, frozenset())


def from_file(path: Path) -> Gazetteer:
    with path.open(encoding="utf-8") as fh:
        return Gazetteer(json.load(fh))


@functools.cache
def load() -> Gazetteer:
    """The gazetteer of the bundled data file, read once per process."""
    return from_file(DATA_FILE)
