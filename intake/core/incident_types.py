"""The incident types: the classifier's kinds, each one a type of the standard registry.

A kind ("structure_fire", "vehicle_accident", "cardiac") is what the classifier concludes and what matching
compares. Each is a value of NENA's "EIDO-IncidentType-Common" registry (NENA-STA-021.1b-2022 §3.2, the codes of
APCO ANS 2.103.2-2019; vendored in data/eido_incident_types.csv, provenance in data/SOURCES.md), so an export says
FSTRU where it used to say "Fire", and a centre abroad understands it. Each has a Vietnamese and an English
label, the agency that leads at a Vietnamese centre (113 police, 114 fire and rescue, 115 medical) and the
agencies also notified, and what matching needs: its family, how long its incidents take new reports, how far
apart its reports may be (data/routing.toml says what each means).

Pure: the two data files are read once, at import.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

from intake.core.model import AGENCIES, Category

__all__ = ["AGENCY_PREFIX", "CATEGORY_REGISTRY", "INCIDENT_TYPES", "NONE_LABEL", "REGISTRY", "IncidentType",
           "label_agency", "registry_code"]


@dataclass(frozen=True, slots=True)
class IncidentType:
    kind: str
    primary: Category
    also: tuple[Category, ...]
    label: str  # Vietnamese, what a call-taker sees
    condition: bool = False  # a patient's state (bleeding), not a scene (a crash): see routing.toml
    label_en: str = ""
    registry: str = "TROUBLE"  # EIDO-IncidentType-Common value
    family: str = ""
    attach_min: float = 60.0
    radius_m: float = 300.0

    @property
    def registry_text(self) -> str:
        return REGISTRY[self.registry]

    def label_in(self, lang: str) -> str:
        return self.label_en if lang.lower().startswith("en") and self.label_en else self.label


def _data(name: str) -> str:
    return resources.files("intake.core").joinpath("data").joinpath(name).read_text(encoding="utf-8")


def _load_registry() -> Mapping[str, str]:
    out: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(_data("eido_incident_types.csv"))):
        value, text = row["value"], row["description"]
        # The standard's table lists FVEH and MAYDAY twice, with two descriptions: keep both.
        out[value] = f"{out[value]}; {text}" if value in out else text
    return MappingProxyType(out)


#: EIDO-IncidentType-Common: value → literal description.
REGISTRY: Final = _load_registry()

#: The registry value of an incident whose kind is not known, by its category.
CATEGORY_REGISTRY: Final[Mapping[Category, str]] = MappingProxyType({
    Category.FIRE: "FUNK",  # Fire Unknown
    Category.POLICE: "SUSP",  # Suspicious Incident, Circumstances, Unknown Problems
    Category.MEDICAL: "SICK",  # Sick Person Non-Specific, General Illness
    Category.UNKNOWN: "TROUBLE",  # Unknown Type Trouble
})


def agency(value: object, where: str) -> Category:
    """`value` as an agency; ValueError naming `where` otherwise."""
    try:
        category = Category(str(value))
    except ValueError:
        raise ValueError(f"{where}: unknown category {value!r}") from None
    if category not in AGENCIES:
        raise ValueError(f"{where}: {value!r} is not an agency")
    return category


def _positive(row: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = float(row.get(key, default))
    if not value > 0:
        raise ValueError(f"{where}: {key} must be > 0")
    return value


def _load_types() -> Mapping[str, IncidentType]:
    types: dict[str, IncidentType] = {}
    for kind, row in tomllib.loads(_data("routing.toml"))["kinds"].items():
        where = f"routing {kind}"
        primary = agency(row["primary"], where)
        also = tuple(agency(a, where) for a in row.get("also", ()))
        if primary in also or len(set(also)) != len(also):
            raise ValueError(f"{where}: 'also' repeats an agency")
        role = row.get("role", "scene")
        if role not in ("scene", "condition"):
            raise ValueError(f"{where}: unknown role {role!r}")
        code = str(row.get("registry", ""))
        if code not in REGISTRY:
            raise ValueError(f"{where}: {code!r} is not in the EIDO-IncidentType-Common registry")
        types[kind] = IncidentType(
            kind, primary, also, str(row.get("label", kind)), role == "condition",
            label_en=str(row.get("label_en", "")) or kind.replace("_", " "),
            registry=code,
            family=str(row.get("family", kind)),
            attach_min=_positive(row, "attach_min", 60.0, where),
            radius_m=_positive(row, "radius_m", 300.0, where),
        )
    return MappingProxyType(types)


#: kind → its type.
INCIDENT_TYPES: Final = _load_types()


def registry_code(kinds: Iterable[str], category: Category) -> str:
    """The registry value for an incident: its first known kind's, else its category's."""
    for kind in kinds:
        t = INCIDENT_TYPES.get(kind)
        if t is not None:
            return t.registry
    return CATEGORY_REGISTRY[category]


#: Labels of the text model beside the kinds: an agency alone (a call-taker decided the agency, not the kind),
#: and the everyday texts that report nothing.
AGENCY_PREFIX: Final = "agency:"
NONE_LABEL: Final = "none"


def label_agency(label: str) -> Category | None:
    """The agency a label of the text model routes to: a kind's primary, the agency an `agency:` label names;
    None for `none` and for labels that are neither."""
    if label.startswith(AGENCY_PREFIX):
        return Category(label[len(AGENCY_PREFIX):])
    t = INCIDENT_TYPES.get(label)
    return t.primary if t is not None else None
