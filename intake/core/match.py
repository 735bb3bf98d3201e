"""Deduplication: does a report belong to an incident we already have?

Each active incident near the report is scored; the score is a sum of
explainable parts, each kept as a `Reason` so a call-taker can see why:

  place     0.50 × geo      geo = 1 within the incident type's radius (+ the two
                            locations' combined accuracy × sigma_factor), falling
                            to 0 at twice the radius; a vague place (combined
                            accuracy beyond vague_scale × radius: a ward named in
                            a call) counts in proportion
  time      0.30 × recency  1 within the type's window after the incident's last
                            report, falling to 0 at window_tail × window
  type      0.20 × compat   see below; incompatible: never attached
  reporter  +0.60           the same phone / chat already reported this incident
  text      +0.15 × Jaccard of the two texts' folded words (stop words left out)

Type. Reports and incidents carry incident kinds (intake/core/incident_types, each
with a family, a window and a radius from routing.toml). Two scenes are one event
only when their families meet: a fire alarm and the fire, a fight and the stabbing
in it (compat 1 for the same kind, `same_family` for another kind of the family);
a robbery and a crash at one corner, a fallen tree and a broken-down car, are not,
whatever their agencies. Two patients described by different states (a "patient"
kind: bleeding, unconscious) may be one person (`other_patient`). Without scenes
on both sides the categories decide, as before kinds existed: the same category 1,
one side unknown `unknown_category`, different ones never: the burnt man at a fire
is a 115 incident of his own, linked to the fire (each agency dispatches its own).

Window and radius are the incident's scene kinds' (the largest) times the fitted
`window_scale` / `radius_scale`, else its category's (as before kinds existed): a fire takes reports
for hours, a crash for tens of minutes.
Place and time are gates: too far apart (geo = 0) or too late (recency = 0) scores 0 (the same reporter at most reaches
review: a caller who fled the building, a caller ringing again about a closed
crash). Without a location on one side a stranger's report counts half, so time
and type alone never attach it.

score >= attach → attach; review <= score < attach → a new incident flagged
for a person ("possible duplicate of #n"); below → a new incident. A report of
another type at the same place opens its own incident, linked to the nearby one
with the reason.

The numbers of `MatchPolicy` come from data: `intake eval dedup --fit` searches
them on simulated surges kept for tuning (intake/evaluation/surge.py) and the
defaults below are what it found (README: "Deduplication").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from intake.core.geo import distance_m
from intake.core.incident_types import INCIDENT_TYPES
from intake.core.model import Category, IncidentView, Location, LocationSource, Outcome

STOP_WORDS = frozenset(
    "o tai co la va cua cho toi em anh chi oi di den nha so pho duong ngo ngach phuong quan "
    "the a an is at in on of to and i my there please help giup voi dang bi".split()
)


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """The numbers of matching. attach, window_scale, window_tail, sigma_factor, vague_scale, unknown_category,
    w_text, same_family and other_patient are what `intake eval dedup --fit tests/eval/dedup/tune_*.jsonl`
    found (2026-12-04: mean pairwise F1 0.792 on those three surges); the radii and windows per kind are
    routing.toml's, the category ones the values the project's matching tests pin. same_reporter was raised
    by hand from 0.45 to 0.60 so that a caller ringing again without a location still reaches the fitted
    attach threshold (their incident is what they are calling about)."""

    # Used when an incident has no scene kind: by its category.
    radius_m: dict[Category, float] = field(
        default_factory=lambda: {
            Category.FIRE: 500.0,  # smoke is seen and reported from far away
            Category.POLICE: 300.0,
            Category.MEDICAL: 200.0,  # two casualties 300 m apart are two patients
            Category.UNKNOWN: 300.0,
        }
    )
    window_min: dict[Category, float] = field(
        default_factory=lambda: {
            Category.FIRE: 180.0, Category.POLICE: 60.0, Category.MEDICAL: 30.0, Category.UNKNOWN: 60.0,
        }
    )
    window_scale: float = 0.5  # × every kind's window (routing.toml attach_min)
    radius_scale: float = 1.0  # × every kind's radius (routing.toml radius_m)
    window_tail: float = 2.0  # recency falls from 1 at the window to 0 at window_tail × window
    sigma_factor: float = 0.5  # how much of the combined location accuracy is forgiven
    vague_scale: float = 4.0  # place counts fully while the combined accuracy is within vague_scale × radius
    attach: float = 0.95
    review: float = 0.50
    w_place: float = 0.50
    w_time: float = 0.30
    w_category: float = 0.20
    same_reporter: float = 0.6
    w_text: float = 0.15
    unknown_category: float = 0.7
    same_family: float = 1.0
    other_patient: float = 1.0  # two patient reports naming different states

    @property
    def stale(self) -> timedelta:
        """How far back an incident can still take a report: the longest window, with its tail."""
        longest = max([t.attach_min for t in INCIDENT_TYPES.values()] + list(self.window_min.values()))
        return timedelta(minutes=longest * self.window_scale * self.window_tail)

    def window(self, category: Category, kinds: Sequence[str]) -> timedelta:
        scenes = _scenes(kinds)
        if scenes:
            return timedelta(minutes=max(INCIDENT_TYPES[k].attach_min for k in scenes) * self.window_scale)
        return timedelta(minutes=self.window_min.get(category, self.window_min[Category.UNKNOWN]))

    def radius(self, category: Category, kinds: Sequence[str]) -> float:
        scenes = _scenes(kinds)
        if scenes:
            return max(INCIDENT_TYPES[k].radius_m for k in scenes) * self.radius_scale
        return self.radius_m.get(category, self.radius_m[Category.UNKNOWN])


def _scenes(kinds: Sequence[str]) -> list[str]:
    return [k for k in kinds if k in INCIDENT_TYPES and not INCIDENT_TYPES[k].condition]


def _patients(kinds: Sequence[str]) -> list[str]:
    return [k for k in kinds if k in INCIDENT_TYPES and INCIDENT_TYPES[k].condition]


DEFAULT_POLICY = MatchPolicy()


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # 'distance', 'time', 'category', 'reporter', 'text', 'no_location', 'other_category', ...
    points: float
    detail: str
    incident_id: int | None = None  # the incident a 'review' or 'related' reason points at

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "points": round(self.points, 3), "detail": self.detail}
        if self.incident_id is not None:
            out["incident_id"] = self.incident_id
        return out


@dataclass(frozen=True, slots=True)
class Subject:
    """The report being matched, as matching sees it."""

    category: Category
    location: Location | None
    received_at: datetime
    reporter_key: str | None
    text_tokens: frozenset[str]
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scored:
    incident_id: int
    score: float
    compatible: bool  # False: another category; never attached, at most linked
    reasons: tuple[Reason, ...]
    distance_m: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome  # CREATED, ATTACHED or REVIEW
    incident_id: int | None  # the incident to attach to (ATTACHED) or to review against (REVIEW)
    score: float
    reasons: tuple[Reason, ...]
    related_incident_id: int | None = None  # another category's incident at the same place
    candidates: tuple[Scored, ...] = ()

    def reasons_data(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.reasons]


def text_tokens(folded_words: list[str]) -> frozenset[str]:
    return frozenset(w for w in folded_words if len(w) > 1 and w not in STOP_WORDS and not w.isdigit())


def beyond_reach(a: Location, b: Location, incident_category: Category, policy: MatchPolicy = DEFAULT_POLICY,
                 kinds: Sequence[str] = ()) -> bool:
    """True when two places are too far apart to ever score on place (a cheap pre-filter for `score`)."""
    radius = policy.radius(incident_category, kinds)
    sigma = policy.sigma_factor * math.hypot(a.accuracy_m, b.accuracy_m)
    return distance_m(a.lat, a.lon, b.lat, b.lon) - sigma >= 2 * radius


def type_compat(subject: Subject, incident: IncidentView, policy: MatchPolicy = DEFAULT_POLICY
                ) -> tuple[float, Reason]:
    """How compatible the report's type is with the incident's: 0 means never the same event."""
    s_scenes, i_scenes = _scenes(subject.kinds), _scenes(incident.kinds)
    if s_scenes and i_scenes:
        if set(s_scenes) & set(i_scenes):
            same = sorted(set(s_scenes) & set(i_scenes))[0]
            return 1.0, Reason("category", policy.w_category, f"same incident type: {same}")
        families = {INCIDENT_TYPES[k].family for k in s_scenes} & {INCIDENT_TYPES[k].family for k in i_scenes}
        if families:
            return policy.same_family, Reason("category", policy.w_category * policy.same_family,
                                              f"{s_scenes[0]} and {i_scenes[0]} can be one event")
        return 0.0, Reason("other_category", 0.0, f"incident is {i_scenes[0]}, report is {s_scenes[0]}")
    s_patients, i_patients = _patients(subject.kinds), _patients(incident.kinds)
    if not (s_scenes or i_scenes) and s_patients and i_patients and not set(s_patients) & set(i_patients):
        # Two patients described differently: one person's fainting and breathlessness, or two people.
        return policy.other_patient, Reason("category", policy.w_category * policy.other_patient,
                                            f"{s_patients[0]} and {i_patients[0]}: maybe one patient")
    if subject.category == incident.category:
        return 1.0, Reason("category", policy.w_category, f"same category: {subject.category}")
    if Category.UNKNOWN in (subject.category, incident.category):
        return policy.unknown_category, Reason(
            "category", policy.w_category * policy.unknown_category,
            f"category {subject.category} vs {incident.category}")
    return 0.0, Reason("other_category", 0.0, f"incident is {incident.category}, report is {subject.category}")


def _ramp(value: float, full: float, zero: float) -> float:
    """1 up to `full`, linear down to 0 at `zero`."""
    if value <= full:
        return 1.0
    if value >= zero:
        return 0.0
    return 1.0 - (value - full) / (zero - full)


def score(subject: Subject, incident: IncidentView, policy: MatchPolicy = DEFAULT_POLICY) -> Scored:
    reasons: list[Reason] = []
    total = 0.0
    compatible = True

    # Type
    cat, reason = type_compat(subject, incident, policy)
    compatible = cat > 0
    reasons.append(reason)
    total += policy.w_category * cat

    # Place
    dist: float | None = None
    geo = geo_counted = 0.0
    if subject.location is not None and incident.location is not None:
        a, b = subject.location, incident.location
        dist = distance_m(a.lat, a.lon, b.lat, b.lon)
        sigma = math.hypot(a.accuracy_m, b.accuracy_m)
        radius = policy.radius(incident.category, incident.kinds)
        geo = _ramp(max(0.0, dist - policy.sigma_factor * sigma), radius, 2 * radius)
        # A vague place (a ward named in a call, a cell) fits many events: it counts for less.
        vague = min(1.0, policy.vague_scale * radius / sigma) if sigma > 0 else 1.0
        reasons.append(
            Reason(
                "distance",
                policy.w_place * geo * vague,
                f"{dist:.0f} m apart (combined accuracy {sigma:.0f} m, radius {radius:.0f} m)",
            )
        )
        geo_counted = geo * vague
    else:
        geo_counted = 0.0
        reasons.append(Reason("no_location", 0.0, "no location on one side: place not compared"))
    total += policy.w_place * geo_counted

    # Time
    gap = abs(subject.received_at - incident.last_report_at)
    window = policy.window(incident.category, incident.kinds).total_seconds()
    recency = _ramp(gap.total_seconds(), window, policy.window_tail * window)
    total += policy.w_time * recency
    reasons.append(Reason("time", policy.w_time * recency,
                          f"{_human_gap(gap)} from its last report (window {_human_gap(timedelta(seconds=window))})"))

    # Same reporter
    if subject.reporter_key and subject.reporter_key in incident.reporter_keys:
        total += policy.same_reporter
        reasons.append(Reason("reporter", policy.same_reporter, "the same reporter already reported it"))

    # Text
    if subject.text_tokens and incident.text_tokens:
        common = subject.text_tokens & incident.text_tokens
        jaccard = len(common) / len(subject.text_tokens | incident.text_tokens)
        if jaccard > 0:
            total += policy.w_text * jaccard
            shown = ", ".join(sorted(common)[:6])
            reasons.append(Reason("text", policy.w_text * jaccard, f"{jaccard:.0%} of words shared ({shown})"))

    same_reporter = bool(subject.reporter_key and subject.reporter_key in incident.reporter_keys)
    if not compatible:
        total = 0.0
    elif dist is not None and geo == 0.0:
        # Too far apart to be one event; a reporter who moved (fled the building) is for a person to judge.
        total = min(total, policy.review) if same_reporter else 0.0
        reasons.append(Reason("too_far", 0.0, "too far apart to be the same event"))
    elif recency == 0.0:
        # Over: the same reporter saying it again is for a person to judge, anyone else is a new event.
        total = min(total, policy.review) if same_reporter else 0.0
        reasons.append(Reason("too_late", 0.0, "too long after its last report to be the same event"))
    elif dist is None and not same_reporter:
        # Nothing ties a stranger without a location to it but time and type: never enough alone.
        total *= 0.5
    return Scored(incident.id, min(1.0, total), compatible, tuple(reasons), dist)


def decide(
    subject: Subject, candidates: list[IncidentView], policy: MatchPolicy = DEFAULT_POLICY
) -> Decision:
    scored = sorted(
        (score(subject, c, policy) for c in candidates),
        key=lambda s: (-s.score, s.distance_m if s.distance_m is not None else math.inf, s.incident_id),
    )
    best = next((s for s in scored if s.compatible), None)
    related = _related(scored, policy)
    top = tuple(scored[:5])
    if best is not None and best.score >= policy.attach:
        return Decision(Outcome.ATTACHED, best.incident_id, best.score, best.reasons, candidates=top)
    if best is not None and best.score >= policy.review:
        reasons = (
            Reason("review", 0.0, f"possible duplicate (score {best.score:.2f})", best.incident_id),
            *best.reasons,
        )
        return Decision(
            Outcome.REVIEW, best.incident_id, best.score, reasons, related.incident_id if related else None, top
        )
    reasons_new: list[Reason] = [Reason("new", 0.0, "no active incident matches")]
    if related is not None:
        reasons_new.append(
            Reason("related", 0.0, "same place as an incident of another category", related.incident_id)
        )
    return Decision(
        Outcome.CREATED,
        None,
        best.score if best else 0.0,
        tuple(reasons_new),
        related.incident_id if related else None,
        top,
    )


def _related(scored: list[Scored], policy: MatchPolicy) -> Scored | None:
    """Another type's incident at (nearly) the same place: shown as linked."""
    for s in scored:
        if not s.compatible and s.distance_m is not None and s.distance_m <= policy.radius_m[Category.UNKNOWN]:
            return s
    return None


def _human_gap(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


# Location precedence ---------------------------------------------------------

def improves(current: Location | None, new: Location | None) -> bool:
    """Whether an incident should move to `new`: only for a strictly better fix (no churn on ties)."""
    best = better_location(current, new)
    if best is None or best is current:
        return False
    return current is None or best.source == LocationSource.CALLTAKER or best.accuracy_m < current.accuracy_m


def better_location(current: Location | None, new: Location | None) -> Location | None:
    """The location an incident (or report) should show.

    A location a call-taker confirmed is never replaced by an automatic fix;
    otherwise the more accurate one wins, and the newer one on a tie.
    """
    if new is None:
        return current
    if current is None:
        return new
    if current.source == LocationSource.CALLTAKER and new.source != LocationSource.CALLTAKER:
        return current
    if new.source == LocationSource.CALLTAKER:
        return new
    if new.accuracy_m < current.accuracy_m:
        return new
    same_accuracy = new.accuracy_m == current.accuracy_m
    newer = current.observed_at is None or (new.observed_at is not None and new.observed_at >= current.observed_at)
    return new if same_accuracy and newer else current
