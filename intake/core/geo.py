"""Distances and H3 cells.

Matching searches for candidate incidents among the H3 cells around a report.
`SEARCH_RES` cells are large enough (average edge ≈ 1.2 km) that two reports
which could belong to one incident are always in the same cell or in
neighbouring cells, so locking the disk of cells around a report serialises
every pair of reports that could match.
"""

from __future__ import annotations

import math

import h3

EARTH_RADIUS_M = 6_371_008.8
SEARCH_RES = 7  # cell stored on incidents and locked while matching
FINE_RES = 10  # cell stored on reports, for heat maps and exports


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def cell(lat: float, lon: float, res: int = SEARCH_RES) -> str:
    return str(h3.latlng_to_cell(lat, lon, res))


def search_cells(lat: float, lon: float) -> list[str]:
    """The search cell of a point and its ring of neighbours, sorted (lock order)."""
    return sorted(str(c) for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, SEARCH_RES), 1))


def disk_cells(lat: float, lon: float, radius_m: float, res: int = SEARCH_RES) -> list[str]:
    """Cells at `res` that cover a circle of `radius_m` around a point (for `near=` queries)."""
    edge = h3.average_hexagon_edge_length(res, unit="m")
    k = max(1, math.ceil(radius_m / (edge * 1.5)) + 1)
    return sorted(str(c) for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, res), k))


def cell_lock_key(cell_id: str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock derived from an H3 cell id."""
    value = int(cell_id, 16)
    return value - (1 << 64) if value >= (1 << 63) else value
