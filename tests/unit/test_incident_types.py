"""The kinds are the registry's incident types: every one maps to a published value, with labels and agencies."""

from __future__ import annotations

import csv
from importlib import resources

from intake.core.incident_types import CATEGORY_REGISTRY, INCIDENT_TYPES, REGISTRY, registry_code
from intake.core.model import AGENCIES, Category


def test_the_vendored_registry_is_the_standards_table() -> None:
    text = resources.files("intake.core").joinpath("data/eido_incident_types.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 247  # NENA-STA-021.1b-2022 Table 32, as published (FVEH and MAYDAY twice)
    assert REGISTRY["NONEMERG"] == "The Incident is not an emergency."
    assert REGISTRY["NCRELEV"] == "Rescue - Elevator" and REGISTRY["DISVEH"] == "Disabled Vehicle"
    assert "Fire Vehicle" in REGISTRY["FVEH"] and len(REGISTRY) == 245
    assert all(r["reference"] in ("APCO 2.103.2-2019", "This document") for r in rows)


def test_every_kind_is_a_registry_type_with_labels_and_agencies() -> None:
    assert len(INCIDENT_TYPES) >= 60
    for kind, t in INCIDENT_TYPES.items():
        assert t.kind == kind and t.registry in REGISTRY, kind
        assert t.label and t.label_en and t.label != t.label_en, kind
        assert t.primary in AGENCIES and t.primary not in t.also, kind
        assert t.family and t.attach_min > 0 and t.radius_m > 0, kind


def test_rescue_is_fire_and_rescue_and_crashes_are_police() -> None:
    for kind in ("trapped", "drowning", "building_collapse", "flood", "landslide", "fallen_tree"):
        assert INCIDENT_TYPES[kind].primary == Category.FIRE, kind
    assert INCIDENT_TYPES["vehicle_accident"].primary == Category.POLICE
    assert Category.MEDICAL in INCIDENT_TYPES["vehicle_accident"].also


def test_without_a_known_kind_the_category_names_the_type() -> None:
    assert registry_code(["no_such_kind", "stroke"], Category.MEDICAL) == "STROKE"
    assert registry_code([], Category.UNKNOWN) == "TROUBLE"
    assert set(CATEGORY_REGISTRY.values()) <= set(REGISTRY)
