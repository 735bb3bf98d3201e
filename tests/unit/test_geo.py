import math

import h3

from intake.core.geo import SEARCH_RES, cell, cell_lock_key, disk_cells, distance_m, search_cells


def test_distance_of_one_degree_of_latitude() -> None:
    assert math.isclose(distance_m(21.0, 105.8, 22.0, 105.8), 111_195, rel_tol=1e-3)


def test_distance_is_zero_to_itself_and_symmetric() -> None:
    assert distance_m(21.03, 105.85, 21.03, 105.85) == 0
    assert distance_m(21.0, 105.8, 21.1, 105.9) == distance_m(21.1, 105.9, 21.0, 105.8)


def test_two_points_within_a_kilometre_share_a_locked_cell() -> None:
    # The serialisation guarantee: whatever two nearby points, their lock sets intersect.
    for i in range(200):
        lat = 21.0 + i * 0.0007
        lon = 105.8 + i * 0.0011
        other_lat, other_lon = lat + 0.006, lon - 0.006  # ~900 m away
        assert set(search_cells(lat, lon)) & set(search_cells(other_lat, other_lon))


def test_search_cells_are_sorted_and_seven() -> None:
    cells = search_cells(21.03, 105.85)
    assert cells == sorted(cells) and len(cells) == 7
    assert h3.get_resolution(cells[0]) == SEARCH_RES


def test_disk_cells_cover_the_radius() -> None:
    cells = set(disk_cells(21.03, 105.85, 3000))
    assert cell(21.03 + 0.025, 105.85) in cells  # ~2.8 km north


def test_lock_keys_are_signed_64_bit() -> None:
    key = cell_lock_key(cell(21.03, 105.85))
    assert -(2**63) <= key < 2**63
