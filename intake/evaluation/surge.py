"""A simulated surge: hours of reports of known events, for `intake eval dedup`.

What a real surge has, and deduplication must get right (each a parameter below):
- many events at once across the city (central Hà Nội, about 10 × 10 km), in the agency mix of a real call
  load (AGENCY_MIX);
- several events at one place at different times: a third of the street events (crashes, road hazards,
  snatchings, fights, disorder) happen at one of a few dozen busy corners, so a crash at
  06:10 and another at 10:20 share a corner, and so may a robbery and a crash;
- a storm: a line of fallen trees, floods and sparking wires along one road, 80–300 m apart, within the hour;
- reporters 0–10 minutes apart (each after the one before, three minutes on average), so the reports of a big
  fire come for most of an hour and those of a crash for a few minutes, on several doors (calls, SMS, Zalo,
  Telegram, the app, the building's fire panel), some calling twice;
- events that last (fires, floods, collapses, missing people) reported again 30–120 minutes on by someone
  passing by, in three of ten;
- at scenes that call for an ambulance (a crash, a fire, a fight), a quarter of the reporters describe the
  casualty instead ("có người bị thương chảy máu nhiều"), as bystanders do: the casualty is an event of its
  own (event "<scene>+casualty"), as the project's design has it (each agency dispatches its own incident,
  linked to the scene's);
- GPS error of 10–120 m, a fifth of fire reporters calling from where they see the smoke (100–400 m away),
  and reports without a fix (calls without AML): two in three of those name their ward, which is what the
  server's address reader makes of it (the ward's centre, its radius as the accuracy), the rest say nothing
  of where they are;
- each event is closed by dispatch some time after its last report (a fire after one to three hours, a crash
  after twenty to forty minutes), which `eval dedup` replays.

The words of each report are drawn from files of `text<TAB>agency<TAB>kind` lines (an evaluation split: the
tuning surges draw from dev texts, the held-out surges from test texts), so a report is classified from real
words, and a misclassified report is as it would be in production. Times are a fixed day; a seed fixes the rest.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from intake.core.gazetteer import Gazetteer
from intake.core.gazetteer import load as load_gazetteer
from intake.core.incident_types import INCIDENT_TYPES

__all__ = ["SurgeOptions", "simulate", "text_pool", "write_jsonl"]

START = datetime(2026, 6, 15, 6, 0, tzinfo=UTC)
#: Shares of the events by lead agency: Montgomery County's 663,522 calls (tests/eval/classify/raw), EMS 49 %,
#: Traffic 36 %, Fire 15 %.
AGENCY_MIX = {"medical": 0.49, "police": 0.36, "fire": 0.15}
SOUTH, NORTH, WEST, EAST = 20.985, 21.075, 105.785, 105.875  # central Hà Nội
M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True, slots=True)
class SurgeOptions:
    seed: int = 1
    events: int = 300
    hours: float = 6.0
    corners: int = 30  # busy corners shared by several events
    at_corner: float = 0.35  # share of street events at one of them
    storm: bool = True
    no_location: float = 0.15  # share of reports without a fix
    says_ward: float = 0.67  # ... of which name their ward
    repeat_caller: float = 0.1  # share of reporters who report twice
    far_smoke: float = 0.2  # share of fire reporters who see it from a distance


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    agency: str
    kind: str


def text_pool(paths: Sequence[Path]) -> dict[str, list[Text]]:
    """kind → texts, from files of `text, agency, kind` (header optional)."""
    pool: dict[str, list[Text]] = {}
    for path in paths:
        with path.open(encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
                if not row or row[0].startswith("#") or (n == 1 and row[0] == "text"):
                    continue
                if len(row) < 3 or row[2] not in INCIDENT_TYPES:
                    raise ValueError(f"{path.name}:{n}: want text<TAB>agency<TAB>kind with a known kind")
                pool.setdefault(row[2], []).append(Text(row[0], row[1], row[2]))
    if not pool:
        raise ValueError("no texts to draw reports from (give --texts FILE)")
    return pool


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat)))


# How many people report one event (1 + a Poisson draw of this mean), by kind family; others: 0.6.
_REPORTERS = {"fire": 3.5, "collision": 1.5, "violence": 1.0, "robbery": 0.8, "rescue": 1.5, "water": 1.2,
              "hazmat": 1.5, "gas": 0.8, "flood": 1.5, "fallen_tree": 0.8, "patient": 0.4}
# How long after its last report dispatch closes an event (minutes, uniform), by family; others: 20–60.
_HANDLING = {"fire": (60, 180), "collision": (20, 40), "patient": (15, 30), "flood": (120, 300),
             "rescue": (60, 180), "fallen_tree": (60, 180)}
_DOORS = (("call", 0.55), ("sms", 0.15), ("zalo", 0.12), ("telegram", 0.1), ("app", 0.08))
_STORM_KINDS = ("fallen_tree", "flood", "electrical_hazard")
# What a bystander at a scene may describe instead of the scene, by the scene's family.
_CASUALTIES = {"fire": ("burns", "breathing_difficulty", "unconscious"), "explosion": ("burns", "injury"),
               "collision": ("injury", "bleeding", "unconscious"), "violence": ("bleeding", "injury"),
               "rescue": ("injury", "unconscious"), "water": ("unconscious", "breathing_difficulty")}
CASUALTY_SHARE = 0.25
# Events that last (a fire burns for hours, a flood stays): a share of them is reported again 30–120 min on.
_LASTING = frozenset({"fire", "flood", "rescue", "hazmat", "missing", "water"})
LATE_SHARE = 0.3
# Families of events that happen in the street, and so again and again at the same busy corners.
_STREET = frozenset({"collision", "road", "robbery", "theft", "violence", "disturbance", "suspicious"})


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulate(options: SurgeOptions, pool: dict[str, list[Text]]) -> list[dict[str, Any]]:
    rng = random.Random(options.seed)
    kinds = sorted(pool)
    # The agencies' shares of a real call load (AGENCY_MIX), split over their kinds by how many texts each has.
    per_agency: dict[str, int] = {}
    for k in kinds:
        per_agency[INCIDENT_TYPES[k].primary.value] = per_agency.get(INCIDENT_TYPES[k].primary.value, 0) + len(pool[k])
    weights = [AGENCY_MIX.get(INCIDENT_TYPES[k].primary.value, 0.0) * len(pool[k])
               / per_agency[INCIDENT_TYPES[k].primary.value] for k in kinds]
    corners = [(rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)) for _ in range(options.corners)]
    span = options.hours * 3600
    events: list[tuple[str, str, float, float, float]] = []  # id, kind, start s, lat, lon
    for i in range(options.events):
        kind = rng.choices(kinds, weights)[0]
        street = INCIDENT_TYPES[kind].family in _STREET
        lat, lon = (rng.choice(corners) if street and rng.random() < options.at_corner
                    else (rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)))
        events.append((f"e{i + 1}", kind, rng.uniform(0, span), lat, lon))
    storm_kinds = [k for k in _STORM_KINDS if k in pool]
    if options.storm and storm_kinds:
        t0 = rng.uniform(0, max(0.0, span - 3600))
        lat, lon = rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)
        bearing = rng.uniform(0, math.pi)
        along = 0.0
        for j in range(rng.randint(8, 15)):
            along += rng.uniform(80, 300)
            p = _offset(lat, lon, along * math.cos(bearing), along * math.sin(bearing))
            events.append((f"s{j + 1}", rng.choice(storm_kinds), t0 + rng.uniform(0, 3600), *p))

    records: list[dict[str, Any]] = []
    phone = 0
    for event_id, kind, start, lat, lon in events:
        family = INCIDENT_TYPES[kind].family
        n = 1 + _poisson(rng, _REPORTERS.get(family, 0.6))
        texts = rng.sample(pool[kind], min(n, len(pool[kind])))
        last = start
        fire = INCIDENT_TYPES[kind].primary.value == "fire" and family == "fire"
        casualty = False
        at_last = start
        for r in range(n):
            phone += 1
            at = (start + rng.uniform(0, 60)) if r == 0 else at_last + min(600.0, rng.expovariate(1 / 180))
            at_last = at
            text = texts[r % len(texts)]
            victims = [k for k in _CASUALTIES.get(family, ()) if k in pool]
            of = event_id
            if r > 0 and victims and rng.random() < CASUALTY_SHARE:
                text = rng.choice(pool[rng.choice(victims)])
                of, casualty = f"{event_id}+casualty", True
            rep = _report(rng, options, of, text, at, lat, lon, f"+8490{phone:07d}", fire)
            records.append(rep)
            last = max(last, at)
            if rng.random() < options.repeat_caller:
                again = at + rng.uniform(120, 480)
                records.append(_report(rng, options, event_id, rng.choice(pool[kind]), again, lat, lon,
                                       f"+8490{phone:07d}", fire))
                last = max(last, again)
        if family in _LASTING and rng.random() < LATE_SHARE:
            # Still burning, still flooded: someone who comes by later reports it again.
            for _ in range(rng.randint(1, 2)):
                phone += 1
                late = start + 60 * rng.uniform(30, 120)
                records.append(_report(rng, options, event_id, rng.choice(pool[kind]), late, lat, lon,
                                       f"+8490{phone:07d}", fire))
                last = max(last, late)
        if fire and kind == "structure_fire" and rng.random() < 0.3:
            records.append({"report": 0, "event": event_id, "at": _stamp(start + rng.uniform(0, 90)),
                            "channel": "device", "reporter": f"device:panel-{event_id}", "text": "",
                            "device_event_code": "CID:1110", "lat": lat, "lon": lon, "accuracy_m": 10.0,
                            "kind": kind, "agency": "fire"})
        low, high = _HANDLING.get(family, (20, 60))
        closed = _stamp(last + 60 * rng.uniform(low, high))
        records.append({"close": event_id, "at": closed})
        if casualty:
            records.append({"close": f"{event_id}+casualty", "at": closed})
    records.sort(key=lambda r: (r["at"], "close" in r))
    count = 0
    for rec in records:
        if "report" in rec:
            count += 1
            rec["report"] = count
    header = {"surge": {**asdict(options), "kinds": len(kinds), "texts": sum(len(v) for v in pool.values()),
                        "events": len(events)}}
    return [header, *records]


def _report(rng: random.Random, o: SurgeOptions, event_id: str, text: Text, at: float, lat: float, lon: float,
            phone: str, fire: bool) -> dict[str, Any]:
    door = rng.choices([d for d, _ in _DOORS], [w for _, w in _DOORS])[0]
    rep: dict[str, Any] = {"report": 0, "event": event_id, "at": _stamp(at), "channel": door,
                           "reporter": phone if door in ("call", "sms") else f"{door}:{phone[-7:]}",
                           "text": text.text, "kind": text.kind, "agency": text.agency}
    if door == "call":
        rep["dialled"] = "112"
    if rng.random() < o.no_location:
        if rng.random() < o.says_ward:
            ward = _gazetteer().nearest_ward(lat, lon)
            if ward is not None:
                rep["lat"], rep["lon"], rep["accuracy_m"] = ward.lat, ward.lon, ward.radius_m
                rep["location_source"] = "address"
    else:
        accuracy = rng.uniform(10, 120)
        north, east = rng.gauss(0, accuracy / 2), rng.gauss(0, accuracy / 2)
        if fire and rng.random() < o.far_smoke:
            d, a = rng.uniform(100, 400), rng.uniform(0, 2 * math.pi)
            north, east = north + d * math.cos(a), east + d * math.sin(a)
        rep["lat"], rep["lon"] = _offset(lat, lon, north, east)
        rep["accuracy_m"] = round(accuracy, 1)
    return rep


@lru_cache(maxsize=1)
def _gazetteer() -> Gazetteer:
    return load_gazetteer()


def _stamp(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


def write_jsonl(records: Iterable[dict[str, Any]], out: TextIO) -> None:
    for r in records:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
