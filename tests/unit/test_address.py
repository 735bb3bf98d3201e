"""The address finder: Vietnamese addresses in free text, resolved offline to a ward."""

from __future__ import annotations

import socket
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from intake.core import address
from intake.core.address import AddressMatch, ResolvedPlace, find_address, locate_text, resolve
from intake.core.geo import distance_m
from intake.core.model import LocationSource

ROOT = Path(__file__).resolve().parents[2]


def found(text: str) -> AddressMatch:
    m = find_address(text)
    assert m is not None, text
    return m


def resolved(text: str, **kwargs: Any) -> ResolvedPlace:
    place = resolve(found(text), **kwargs)
    assert place is not None, text
    return place


# (text, parts expected in the match, 2025 ward it resolves to, old ward it resolves to)
CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    (
        "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm",
        {
            "house_number": "12",
            "street": "Hàng Bạc",
            "street_type": "phố",
            "district": "Hoàn Kiếm",
            "form": "legacy",
        },
        "Phường Hoàn Kiếm",
        "Phường Hàng Bạc",
    ),
    (
        "có người ngất ở ngõ 45 ngách 12 Hào Nam, phường Ô Chợ Dừa, quận Đống Đa, Hà Nội",
        {
            "alleys": ("ngõ 45", "ngách 12"),
            "street": "Hào Nam",
            "ward": "Ô Chợ Dừa",
            "ward_type": "phường",
            "district": "Đống Đa",
            "province": "Hà Nội",
            "form": "legacy",
        },
        "Phường Ô Chợ Dừa",
        "Phường Ô Chợ Dừa",
    ),
    (
        "số 8 hẻm 12 đường Lê Lợi, phường Bến Thành, TP HCM",
        {
            "house_number": "8",
            "alleys": ("hẻm 12",),
            "street": "Lê Lợi",
            "street_type": "đường",
            "ward": "Bến Thành",
            "province": "HCM",
            "district": None,
            "form": "2025",
        },
        "Phường Bến Thành",
        None,
    ),
    (
        "12 Hàng Bạc, phường Hoàn Kiếm, Hà Nội",
        {
            "house_number": "12",
            "street": "Hàng Bạc",
            "ward": "Hoàn Kiếm",
            "province": "Hà Nội",
            "form": "2025",
        },
        "Phường Hoàn Kiếm",
        "Phường Hàng Bạc",  # the street is an old ward inside the new one: the smaller area wins
    ),
    (
        "Cấp cứu! 25 Lý Thường Kiệt, P. Phan Chu Trinh, Q. Hoàn Kiếm, HN",
        {
            "house_number": "25",
            "street": "Lý Thường Kiệt",
            "ward": "Phan Chu Trinh",
            "ward_type": "phường",
            "district": "Hoàn Kiếm",
            "district_type": "quận",
            "province": "HN",
        },
        "Phường Cửa Nam",
        "Phường Phan Chu Trinh",
    ),
    (
        "xe máy va chạm ở 120 Nguyễn Trãi, P.Thượng Đình, Q.Thanh Xuân",
        {"house_number": "120", "street": "Nguyễn Trãi", "ward": "Thượng Đình", "district": "Thanh Xuân"},
        "Phường Khương Đình",
        "Phường Thượng Đình",
    ),
    (
        "Xin cứu! Nhà em ở 18 Trần Duy Hưng, P. Trung Hòa, Q. Cầu Giấy, HN. Có người bị ngã",
        {
            "text": "18 Trần Duy Hưng, P. Trung Hòa, Q. Cầu Giấy, HN",
            "ward": "Trung Hòa",
            "district": "Cầu Giấy",
        },
        "Phường Yên Hòa",
        "Phường Trung Hòa",
    ),
    (
        "nha so 5 ngach 3 ngo 24 pho Kim Ma, Ba Dinh, Ha Noi",
        {
            "house_number": "5",
            "alleys": ("ngách 3", "ngõ 24"),
            "street": "Kim Ma",
            "district": "Ba Dinh",
            "province": "Ha Noi",
            "form": "legacy",
        },
        "Phường Ngọc Hà",
        "Phường Kim Mã",
    ),
    (
        "xe bus chay o ngo 5 duong Lang, phuong Lang Thuong, quan Dong Da, HN",
        {
            "alleys": ("ngõ 5",),
            "street": "Lang",
            "street_type": "đường",
            "ward": "Lang Thuong",
            "district": "Dong Da",
            "province": "HN",
        },
        "Phường Láng",
        "Phường Láng Thượng",
    ),
    (
        "chay o so 20 hang bac hoan kiem",  # no accents, no capitals, no commas
        {"house_number": "20", "street": "hang bac", "district": "hoan kiem", "form": "legacy"},
        "Phường Hoàn Kiếm",
        "Phường Hàng Bạc",
    ),
    (
        "SO 18 NGO 2 PHO TRAN QUOC HOAN, P DICH VONG HAU, Q CAU GIAY",
        {"house_number": "18", "street": "TRAN QUOC HOAN", "ward": "DICH VONG HAU", "district": "CAU GIAY"},
        "Phường Cầu Giấy",
        "Phường Dịch Vọng Hậu",
    ),
    (
        "nhà số 7, ngõ 12, phố Huế, phường Phố Huế, quận Hai Bà Trưng",
        {
            "house_number": "7",
            "alleys": ("ngõ 12",),
            "street": "Huế",
            "ward": "Phố Huế",
            "district": "Hai Bà Trưng",
        },
        "Phường Hai Bà Trưng",
        "Phường Phố Huế",
    ),
    (
        "nhà số 3 ngõ Văn Chương, Đống Đa",  # a named alley that is also an old ward of the district
        {"house_number": "3", "alleys": ("ngõ Văn Chương",), "district": "Đống Đa", "street": None},
        "Phường Văn Miếu - Quốc Tử Giám",
        "Phường Văn Chương",
    ),
    (
        "Bệnh nhân ở 36 Hàng Bài, phường Hàng Bài, quận Hoàn Kiếm, Hà Nội cần xe cấp cứu",
        {"text": "36 Hàng Bài, phường Hàng Bài, quận Hoàn Kiếm, Hà Nội", "ward": "Hàng Bài"},
        "Phường Cửa Nam",
        "Phường Hàng Bài",
    ),
    (
        "ngã tư Kim Mã - Liễu Giai, quận Ba Đình",
        {"street": "Kim Mã", "cross_street": "Liễu Giai", "street_type": "ngã tư", "district": "Ba Đình"},
        "Phường Ngọc Hà",
        "Phường Kim Mã",
    ),
    (
        "tổ 5, phường Định Công, quận Hoàng Mai, Hà Nội",
        {"house_number": None, "ward": "Định Công", "district": "Hoàng Mai"},
        "Phường Định Công",
        "Phường Định Công",
    ),
    (
        "cháy lớn tại thôn 2 xã Tân Lập, huyện Đan Phượng, Hà Nội",
        {
            "house_number": None,
            "ward": "Tân Lập",
            "ward_type": "xã",
            "district": "Đan Phượng",
            "district_type": "huyện",
        },
        "Xã Hoài Đức",
        "Xã Tân Lập",
    ),
    (
        "Số 1 Đại Cồ Việt, phường Bạch Mai, Hà Nội",
        {"house_number": "1", "street": "Đại Cồ Việt", "ward": "Bạch Mai", "form": "2025"},
        "Phường Bạch Mai",
        None,
    ),
    (
        "cháy ở xã Bát Tràng, Hà Nội",
        {"ward": "Bát Tràng", "ward_type": "xã", "province": "Hà Nội", "form": "2025"},
        "Xã Bát Tràng",
        None,
    ),
    (
        "P. Hàng Bạc có khói",  # an old ward without its district: unique in the default province
        {"ward": "Hàng Bạc", "ward_type": "phường", "form": "partial"},
        "Phường Hoàn Kiếm",
        "Phường Hàng Bạc",
    ),
    (
        "cháy chung cư 34 đường 3 Tháng 2, Phường 12, Quận 10, TP.HCM",
        {"house_number": "34", "street": "3 Tháng 2", "ward": "12", "district": "10", "province": "HCM"},
        "Phường Hòa Hưng",
        "Phường 12",
    ),
    (
        "Có người ngã xe ở 123/4A Nguyễn Trãi, P2, Q5, TPHCM",
        {
            "house_number": "123/4A",
            "street": "Nguyễn Trãi",
            "ward": "2",
            "district": "5",
            "province": "TPHCM",
        },
        "Phường Chợ Quán",
        "Phường 2",
    ),
    (
        "cháy ở 15 Nguyễn Huệ P.Bến Nghé Q1 Sài Gòn",
        {
            "house_number": "15",
            "street": "Nguyễn Huệ",
            "ward": "Bến Nghé",
            "district": "1",
            "province": "Sài Gòn",
        },
        "Phường Sài Gòn",
        "Phường Bến Nghé",
    ),
    (
        "khói bốc lên từ số 45 hẻm 20/3 Lê Văn Sỹ, phường 13, quận Phú Nhuận, TP Hồ Chí Minh",
        {
            "house_number": "45",
            "alleys": ("hẻm 20/3",),
            "street": "Lê Văn Sỹ",
            "ward": "13",
            "district": "Phú Nhuận",
            "province": "Hồ Chí Minh",
        },
        "Phường Phú Nhuận",
        "Phường 13",
    ),
    (
        "phường Linh Trung, thành phố Thủ Đức, TP.HCM",
        {
            "ward": "Linh Trung",
            "district": "Thủ Đức",
            "district_type": "thành phố",
            "province": "HCM",
            "province_type": "thành phố",
        },
        "Phường Linh Xuân",
        "Phường Linh Trung",
    ),
    (
        "12 Nguyễn Huệ, phường Sài Gòn, TP.HCM",
        {"house_number": "12", "street": "Nguyễn Huệ", "ward": "Sài Gòn", "form": "2025"},
        "Phường Sài Gòn",
        None,
    ),
    (
        "kiệt 45 Ông Ích Khiêm, phường Thanh Khê, Đà Nẵng",
        {"alleys": ("kiệt 45",), "street": "Ông Ích Khiêm", "ward": "Thanh Khê", "province": "Đà Nẵng"},
        "Phường Thanh Khê",
        None,
    ),
    (
        "đặc khu Phú Quốc, tỉnh An Giang",
        {"ward": "Phú Quốc", "ward_type": "đặc khu", "province": "An Giang", "province_type": "tỉnh"},
        "Đặc khu Phú Quốc",
        None,
    ),
    (
        "12 Hàng Bạc Hoàn Kiếm Hà Nội",  # no commas: the names end the street
        {"house_number": "12", "street": "Hàng Bạc", "district": "Hoàn Kiếm", "province": "Hà Nội"},
        "Phường Hoàn Kiếm",
        "Phường Hàng Bạc",
    ),
]


@pytest.mark.parametrize(("text", "parts", "ward", "legacy_ward"), CASES, ids=[c[0][:40] for c in CASES])
def test_realistic_report_is_found_and_resolved_to_its_ward(
    text: str, parts: dict[str, Any], ward: str | None, legacy_ward: str | None
) -> None:
    m = found(text)
    for name, value in parts.items():
        assert getattr(m, name) == value, name
    place = resolve(m)
    assert place is not None
    assert place.level == "ward"
    assert place.ward == ward
    assert place.legacy_ward == legacy_ward
    assert place.accuracy_m >= 150


def test_hang_bac_street_in_hoan_kiem_resolves_to_the_old_ward_and_the_new_one() -> None:
    place = resolved("Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm")
    assert place.legacy_ward == "Phường Hàng Bạc"
    assert place.legacy_district == "Quận Hoàn Kiếm"
    assert place.ward == "Phường Hoàn Kiếm"
    assert place.ward_code == "00070"
    assert place.province == "Thành phố Hà Nội"
    assert distance_m(place.lat, place.lon, 21.033, 105.852) < 1000
    assert 150 <= place.accuracy_m < 1000  # the old ward's radius, smaller than the new ward's
    assert place.label == "12 Phố Hàng Bạc, Phường Hoàn Kiếm, Thành phố Hà Nội"


def test_match_span_is_the_original_text() -> None:
    text = "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm, mọi người ra ngoài"
    m = found(text)
    assert (m.start, m.end) == (11, 45)
    assert m.text == text[m.start : m.end] == "số 12 phố Hàng Bạc, quận Hoàn Kiếm"


def test_decomposed_unicode_keeps_original_offsets() -> None:
    text = unicodedata.normalize("NFD", "Báo cháy ở số 12 phố Hàng Bạc, quận Hoàn Kiếm")
    m = found(text)
    assert m.text == text[m.start : m.end]
    assert unicodedata.normalize("NFC", m.street or "") == "Hàng Bạc"
    assert m.end == len(text)


def test_unaccented_sms_returns_its_own_words() -> None:
    m = found("so 5 ngo 10 pho Ton Duc Thang, Dong Da")
    assert (m.house_number, m.alleys, m.street, m.district) == ("5", ("ngõ 10",), "Ton Duc Thang", "Dong Da")
    assert m.form == "legacy"


def test_district_without_a_ward_resolves_to_the_district() -> None:
    place = resolved("so 5 ngo 10 pho Ton Duc Thang, Dong Da")
    assert place.level == "district"
    assert place.legacy_district == "Quận Đống Đa"
    assert place.ward is None and place.ward_code is None
    assert place.accuracy_m > 1000
    assert place.label == "5 Ngõ 10 Phố Ton Duc Thang, Quận Đống Đa, Thành phố Hà Nội"


def test_bare_district_after_o_is_found() -> None:
    m = found("tai nạn ở Cầu Giấy")
    assert (m.district, m.form) == ("Cầu Giấy", "legacy")
    assert resolved("tai nạn ở Cầu Giấy").level == "district"


def test_intersection_without_district_is_found_but_not_resolved() -> None:
    m = found("tai nan o nga tu Kim Ma - Lieu Giai")
    assert (m.street_type, m.street, m.cross_street, m.form) == ("ngã tư", "Kim Ma", "Lieu Giai", "partial")
    assert resolve(m) is None


def test_street_alone_does_not_resolve() -> None:
    m = found("toi bi cuop o pho Hang Bong")
    assert (m.street, m.form) == ("Hang Bong", "partial")
    assert resolve(m) is None


def test_street_equal_to_a_ward_name_only_counts_in_its_own_district() -> None:
    place = resolved("số 12 phố Hàng Bạc, quận Ba Đình")
    assert place.level == "district"
    assert place.legacy_district == "Quận Ba Đình"
    assert place.legacy_ward is None


def test_street_with_an_explicit_province_resolves_to_the_province() -> None:
    place = resolved("đường Lê Lợi, TP HCM có tai nạn")
    assert place.level == "province"
    assert place.province == "Thành phố Hồ Chí Minh"
    assert place.ward is None
    assert place.accuracy_m > 10_000


def test_district_not_in_the_named_province_falls_back_to_the_province() -> None:
    place = resolved("quận 1, Hà Nội có cháy")  # Hà Nội has no Quận 1: do not jump to Hồ Chí Minh City
    assert (place.level, place.province) == ("province", "Thành phố Hà Nội")


def test_ward_outside_the_default_province_is_found_when_unique() -> None:
    place = resolved("phường Bến Thành có cháy")
    assert (place.ward, place.province) == ("Phường Bến Thành", "Thành phố Hồ Chí Minh")


def test_no_default_province_still_resolves_unique_names() -> None:
    place = resolved("số 12 phố Hàng Bạc, quận Hoàn Kiếm", default_province=None)
    assert place.legacy_ward == "Phường Hàng Bạc"


def test_mixed_forms_new_ward_with_old_district() -> None:
    place = resolved("phường Hoàn Kiếm, quận Hoàn Kiếm")
    assert (place.ward, place.legacy_district, place.legacy_ward) == (
        "Phường Hoàn Kiếm",
        "Quận Hoàn Kiếm",
        None,
    )


def test_divided_old_ward_reports_its_default_new_ward() -> None:
    place = resolved("số 10 phố Trường Chinh, phường Phương Liệt, quận Thanh Xuân")
    assert place.legacy_ward == "Phường Phương Liệt"
    assert place.ward == "Phường Phương Liệt"
    assert place.ward_code == "00352"


def test_city_named_like_its_province_is_the_old_district() -> None:
    m = found("phường Trần Phú, thành phố Hải Dương")
    assert (m.district, m.district_type, m.province, m.form) == ("Hải Dương", "thành phố", None, "legacy")
    place = resolve(m)
    assert place is not None
    assert (place.legacy_ward, place.legacy_district) == ("Phường Trần Phú", "Thành phố Hải Dương")
    assert place.province == "Thành phố Hải Phòng"  # Hải Dương joined Hải Phòng in 2025


def test_merged_province_name_covers_its_old_provinces() -> None:
    place = resolved("xã Thanh Quang, huyện Thanh Hà, Hải Phòng")  # Thanh Hà was in Hải Dương
    assert (place.legacy_ward, place.legacy_district) == ("Xã Thanh Quang", "Huyện Thanh Hà")


def test_centrally_governed_city_after_thanh_pho_is_the_province() -> None:
    m = found("phường Bến Thành, thành phố Hồ Chí Minh")
    assert (m.province, m.district, m.form) == ("Hồ Chí Minh", None, "2025")


def test_kilometre_marker_is_not_a_house_number() -> None:
    m = found("tai nạn ở Km 12 quốc lộ 1A, huyện Thanh Trì")
    assert (m.house_number, m.street_type, m.street, m.district) == (None, "quốc lộ", "1A", "Thanh Trì")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Có cháy! Mau đến cứu với",
        "có 2 người bị thương",
        "Hôm nay trời đẹp, tôi ăn phở bò ở Hà Nội",
        "tren duong di lam thi bi nga",
        "o xa lam, khong biet duong",
        "tai nạn giao thông ở Hải Dương",  # a province alone is not an address
        "gọi lại cho tôi số 0912345678",
        "nhà tôi có 3 tầng, 12 Người ở",
        "🔥🔥🔥 cháy!!!",
        "tôi ở thành phố Hà Nội",
        "vấn đề xã hội",
        "nhà ở phố cổ Hà Nội",
        "tai nạn trên đường cao tốc",
        "bệnh nhân tiểu đường bị tắc đường thở",
        "so 5 duong cao toc",
        "ăn phở ở quán phở gần nhà",
    ],
)
def test_text_without_an_address_gives_none(text: str) -> None:
    assert find_address(text) is None
    assert locate_text(text) is None


def test_locate_text_gives_an_address_location() -> None:
    got = locate_text("có người ngất ở ngõ 45 ngách 12 Hào Nam, phường Ô Chợ Dừa, quận Đống Đa, Hà Nội")
    assert got is not None
    match, loc = got
    assert match.ward == "Ô Chợ Dừa"
    assert loc.source is LocationSource.ADDRESS
    assert loc.ward_code == "00190"
    assert loc.label == "Ngõ 45 Ngách 12 Hào Nam, Phường Ô Chợ Dừa, Thành phố Hà Nội"
    assert loc.accuracy_m >= 150
    assert distance_m(loc.lat, loc.lon, 21.02, 105.826) < 1500


def test_locate_text_none_when_the_address_does_not_resolve() -> None:
    assert locate_text("tai nan o nga tu Kim Ma - Lieu Giai") is None


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Refuse every socket connection and name lookup, and record the attempts (a library may swallow
    the error)."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access is forbidden in address resolution")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_resolution_never_touches_the_network(network_attempts: list[object]) -> None:
    address._parse.cache_clear()  # make the parsers run again, under the guard
    texts = [c[0] for c in CASES] + [
        # old wards divided between new wards, with a street: what makes convert_address geocode online
        "số 10 phố Trường Chinh, phường Phương Liệt, quận Thanh Xuân, Hà Nội",
        "số 5 đường Quảng Oai, thị trấn Tây Đằng, huyện Ba Vì, Hà Nội",
    ]
    results = [locate_text(text) for text in texts]
    assert all(r is not None for r in results)
    assert network_attempts == []


def test_the_network_guard_catches_the_geocoding_path_we_avoid(network_attempts: list[object]) -> None:
    # convert_address geocodes a divided old ward with a street online: the guard above must see it
    from vietnamadminunits import convert_address  # type: ignore[import-untyped, unused-ignore]

    with pytest.raises(Exception):  # noqa: B017 - geopy wraps the refusal in its own error
        convert_address("số 5 đường Quảng Oai, Thị trấn Tây Đằng, Huyện Ba Vì, Hà Nội")
    assert network_attempts


def test_find_address_finds_the_place_at_the_end_of_a_long_report() -> None:
    """(Its speed is measured by `intake bench ingest`, not asserted here.)"""
    words = (
        "alo tổng đài có cháy to lắm khói đen mọi người chạy ra ngoài còn người kẹt bên trong " * 12
    ).split()
    text = " ".join(words[:190]) + " địa chỉ là số 12 phố Hàng Bạc, quận Hoàn Kiếm, nhanh lên"
    m = find_address(text)
    assert m is not None and m.district == "Hoàn Kiếm" and m.street == "Hàng Bạc" and m.house_number == "12"


def test_importing_the_finder_does_not_import_the_parsers_or_sqlite() -> None:
    code = (
        "import sys\n"
        "from intake.core.address import find_address\n"
        "assert find_address('số 12 phố Hàng Bạc, quận Hoàn Kiếm') is not None\n"
        "assert 'vietnamadminunits' not in sys.modules, 'imported eagerly'\n"
        "assert 'sqlite3' not in sys.modules, 'the runtime gazetteer must read JSON only'\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, check=True, timeout=60)
