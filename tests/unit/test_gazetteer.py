"""The offline gazetteer: 2025 and legacy administrative units with points and radii."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

from intake.core import gazetteer
from intake.core.gazetteer import (
    DATA_FILE,
    Gazetteer,
    LegacyDistrict,
    LegacyWard,
    Province,
    Ward,
    load,
    name_key,
)
from intake.core.geo import distance_m

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gz() -> Gazetteer:
    return load()


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_gazetteer", ROOT / "scripts" / "build_gazetteer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_is_cached(gz: Gazetteer) -> None:
    assert load() is gz


def test_data_file_is_small() -> None:
    assert DATA_FILE.stat().st_size < 3_000_000


def test_data_file_is_what_the_build_script_generates_from_the_installed_dataset() -> None:
    vau = importlib.util.find_spec("vietnamadminunits")
    assert vau is not None and vau.origin is not None
    data_dir = Path(vau.origin).parent / "data"
    script = _build_script()
    data = script.build(data_dir / "dataset.db", data_dir / "converter_2025.json")
    assert script.dumps(data) == DATA_FILE.read_text(encoding="utf-8")


def test_counts_of_units(gz: Gazetteer) -> None:
    assert len(gz.provinces()) == 34
    assert len(gz.wards()) == 3321
    assert len(gz.wards("01")) == 126  # Hà Nội since July 2025
    assert len(gz.legacy_provinces()) == 63
    assert len(gz.legacy_wards()) > 10_000


def test_ward_by_code(gz: Gazetteer) -> None:
    w = gz.ward("00070")
    assert w is not None
    assert (w.name, w.short, w.type, w.province_code, w.province) == (
        "Phường Hoàn Kiếm",
        "Hoàn Kiếm",
        "Phường",
        "01",
        "Thành phố Hà Nội",
    )
    assert distance_m(w.lat, w.lon, 21.032, 105.85) < 200
    assert gz.ward("99999") is None


def test_ward_radius_is_that_of_a_disc_of_its_area(gz: Gazetteer) -> None:
    w = gz.ward("00070")
    assert w is not None
    assert w.radius_m == pytest.approx(math.sqrt(1.91e6 / math.pi), abs=1)  # 1.91 km²


def test_wards_of_a_province_belong_to_it(gz: Gazetteer) -> None:
    assert {w.province_code for w in gz.wards("79")} == {"79"}
    assert gz.wards("00") == []


def test_legacy_ward_knows_its_district_and_new_ward(gz: Gazetteer) -> None:
    lw = gz.legacy_ward("00061")
    assert lw is not None
    assert (lw.name, lw.district, lw.province, lw.ward_code) == (
        "Phường Hàng Bạc",
        "Quận Hoàn Kiếm",
        "Thành phố Hà Nội",
        "00070",
    )
    assert 150 <= lw.radius_m < 400  # from its bounding box: the old quarter's wards are small
    assert distance_m(lw.lat, lw.lon, 21.033, 105.852) < 300


def test_divided_legacy_ward_lists_its_default_new_ward_first(gz: Gazetteer) -> None:
    lw = gz.legacy_ward("00358")  # Phường Phương Liệt, Quận Thanh Xuân
    assert lw is not None
    assert lw.ward_codes == ("00352", "00322")
    assert lw.ward_code == "00352"


def test_every_legacy_ward_maps_to_existing_new_wards(gz: Gazetteer) -> None:
    for lw in gz.legacy_wards():
        assert lw.ward_codes, lw
        assert all(gz.ward(c) is not None for c in lw.ward_codes), lw


def test_island_district_without_wards_maps_to_its_special_zone(gz: Gazetteer) -> None:
    d = gz.legacy_district("318")
    assert d is not None and d.name == "Huyện Bạch Long Vĩ"
    zone = gz.ward(d.ward_codes[0])
    assert zone is not None and zone.name == "Đặc khu Bạch Long Vĩ"


def test_every_unit_is_in_vietnam_with_a_sane_radius(gz: Gazetteer) -> None:
    units: list[Ward | LegacyWard | LegacyDistrict | Province] = [
        *gz.wards(),
        *gz.legacy_wards(),
        *gz.legacy_districts(),
        *gz.provinces(),
    ]
    for u in units:
        assert 8.0 < u.lat < 23.5 and 102.0 < u.lon < 118.0, u
        assert 150 <= u.radius_m <= 120_000, u


def test_old_ward_is_never_much_wider_than_the_new_wards_it_became(gz: Gazetteer) -> None:
    for lw in gz.legacy_wards():
        new_wards = [w for w in map(gz.ward, lw.ward_codes) if w is not None]
        together = math.sqrt(sum(w.radius_m**2 for w in new_wards))
        assert lw.radius_m <= 1.25 * together + 1, lw


def test_nearest_ward(gz: Gazetteer) -> None:
    w = gz.nearest_ward(21.0329, 105.8529)  # Hàng Bạc
    assert w is not None and w.code == "00070"
    w = gz.nearest_ward(10.7713, 106.694)
    assert w is not None and w.name == "Phường Bến Thành"


def test_nearest_ward_is_none_far_from_vietnam(gz: Gazetteer) -> None:
    assert gz.nearest_ward(48.85, 2.35) is None
    assert gz.nearest_ward(float("nan"), 105.8) is None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Hà Nội", "01"),
        ("HN", "01"),
        ("ha noi", "01"),
        ("Thành phố Hà Nội", "01"),
        ("TP.HCM", "79"),
        ("HCM", "79"),
        ("Sài Gòn", "79"),
        ("Hồ Chí Minh", "79"),
        ("Đà Nẵng", "48"),
        ("Huế", "46"),
    ],
)
def test_find_provinces_by_name_or_alias(gz: Gazetteer, name: str, code: str) -> None:
    assert [p.code for p in gz.find_provinces(name)] == [code]


def test_a_merged_province_finds_the_province_it_joined(gz: Gazetteer) -> None:
    assert [p.name for p in gz.find_provinces("Hải Dương")] == ["Thành phố Hải Phòng"]
    assert [p.name for p in gz.find_legacy_provinces("Hải Dương")] == ["Tỉnh Hải Dương"]


def test_find_wards_by_name_and_province(gz: Gazetteer) -> None:
    assert [w.code for w in gz.find_wards("Hoàn Kiếm")] == ["00070"]
    assert [w.code for w in gz.find_wards("hoan kiem", "79")] == []


def test_find_legacy_districts_by_number_and_alias(gz: Gazetteer) -> None:
    assert [d.name for d in gz.find_legacy_districts("1", "79")] == ["Quận 1"]
    assert [d.name for d in gz.find_legacy_districts("01", "79")] == ["Quận 1"]
    assert {d.name for d in gz.find_legacy_districts("Kỳ Anh")} == {"Huyện Kỳ Anh", "Thị xã Kỳ Anh"}


def test_find_legacy_wards_by_name_in_a_district(gz: Gazetteer) -> None:
    assert [w.code for w in gz.find_legacy_wards("Hàng Bạc", district_code="002")] == ["00061"]
    assert gz.find_legacy_wards("Hàng Bạc", district_code="001") == []
    assert [w.name for w in gz.find_legacy_wards("12", district_code="771")] == ["Phường 12"]


def test_legacy_ward_found_by_its_former_name(gz: Gazetteer) -> None:
    # Phường Nguyễn Trung Trực was merged into Phường Trúc Bạch
    assert [w.name for w in gz.find_legacy_wards("Nguyễn Trung Trực", district_code="001")] == [
        "Phường Trúc Bạch"
    ]


def test_legacy_wards_of_a_new_ward(gz: Gazetteer) -> None:
    names = {lw.name for lw in gz.legacy_wards_of("00070")}
    assert {"Phường Hàng Bạc", "Phường Hàng Đào", "Phường Hàng Bồ"} <= names


def test_name_key_folds_and_drops_leading_zeros() -> None:
    assert name_key("Ô Chợ Dừa") == "ochodua"
    assert name_key("05") == "5"
    assert name_key("Bà Rịa - Vũng Tàu") == "bariavungtau"


def test_kinds_tell_which_levels_use_a_name(gz: Gazetteer) -> None:
    assert gz.kinds("hoankiem") == {"ward", "district"}
    assert gz.kinds("hanoi") == {"province"}
    assert gz.kinds("khongcoten") == frozenset()


def test_runtime_module_reads_json_not_sqlite() -> None:
    source = Path(gazetteer.__file__).read_text(encoding="utf-8")
    assert "sqlite3" not in source
