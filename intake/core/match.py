"""Deduplication: does a report belong to an incident we already have?

Each active incident near the report is scored; the score is a sum of
explainable parts, each kept as a `Reason` so a call-taker can see why:

  place     0.50 × geo      geo = 1 within the category's radius (+ the two
                            locations' combined accuracy), falling to 0 at
                            twice the radius
  time      0.30 × recency  1 within `fresh`, falling to 0 at `stale`
  category  0.20 × compat   same 1, one side unknown 0.7, different: never attached
  reporter  +0.45           the same phone / chat already reported this incident
  text      +0.15 × Jaccard of the two texts' folded words (stop words left out)

Place is a gate: two located reports too far apart (geo = 0) score 0 (a same
reporter who moved at most reaches review), and without a location on one side
a stranger's report counts half, so time and category alone never attach it.

score >= attach → attach; review <= score < attach → a new incident flagged
for a person ("possible duplicate of #n"); below → a new incident. A report of
another category at the same place opens its own incident, linked to the
nearby one with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from intake.core.geo import distance_m
from intake.core.model import Category, IncidentView, Location, LocationSource, Outcome

STOP_WORDS = frozenset(
    "o tai co la va cua cho toi em anh chi oi di den nha so pho duong ngo ngach phuong quan "
    "the a an is at in on of to and i my there please help giup voi dang bi".split()
)


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    radius_m: dict[Category, float] = field(
        default_factory=lambda: {
            Category.FIRE: 500.0,  # smoke is seen and reported from far away
            Category.POLICE: 300.0,
            Category.MEDICAL: 200.0,  # two casualties 300 m apart are two patients
            Category.UNKNOWN: 300.0,
        }
    )
    fresh: timedelta = timedelta(minutes=30)
    stale: timedelta = timedelta(hours=6)
    attach: float = 0.80
    review: float = 0.50
    w_place: float = 0.50
    w_time: float = 0.30
    w_category: float = 0.20
    same_reporter: float = 0.45
    w_text: float = 0.15
    unknown_category: float = 0.7


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


def beyond_reach(a: Location, b: Location, incident_category: Category, policy: MatchPolicy = DEFAULT_POLICY
                 ) -> bool:
    """True when two places are too far apart to ever score on place (a cheap pre-filter for `score`)."""
    radius = policy.radius_m.get(incident_category, policy.radius_m[Category.UNKNOWN])
    return distance_m(a.lat, a.lon, b.lat, b.lon) - math.hypot(a.accuracy_m, b.accuracy_m) >= 2 * radius


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

    # Category
    if subject.category == incident.category:
        cat = 1.0
        reasons.append(Reason("category", policy.w_category, f"same category: {subject.category}"))
    elif Category.UNKNOWN in (subject.category, incident.category):
        cat = policy.unknown_category
        reasons.append(
            Reason("category", policy.w_category * cat, f"category {subject.category} vs {incident.category}")
        )
    else:
        cat = 0.0
        compatible = False
        reasons.append(
            Reason("other_category", 0.0, f"incident is {incident.category}, report is {subject.category}")
        )
    total += policy.w_category * cat

    # Place
    dist: float | None = None
    geo = 0.0
    if subject.location is not None and incident.location is not None:
        a, b = subject.location, incident.location
        dist = distance_m(a.lat, a.lon, b.lat, b.lon)
        sigma = math.hypot(a.accuracy_m, b.accuracy_m)
        radius = policy.radius_m.get(incident.category, policy.radius_m[Category.UNKNOWN])
        geo = _ramp(max(0.0, dist - sigma), radius, 2 * radius)
        reasons.append(
            Reason(
                "distance",
                policy.w_place * geo,
                f"{dist:.0f} m apart (combined accuracy {sigma:.0f} m, radius {radius:.0f} m)",
            )
        )
    else:
        reasons.append(Reason("no_location", 0.0, "no location on one side: place not compared"))
    total += policy.w_place * geo

    # Time
    gap = abs(subject.received_at - incident.last_report_at)
    recency = _ramp(gap.total_seconds(), policy.fresh.total_seconds(), policy.stale.total_seconds())
    total += policy.w_time * recency
    reasons.append(Reason("time", policy.w_time * recency, f"{_human_gap(gap)} from its last report"))

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
    elif dist is None and not same_reporter:
        # Nothing ties a stranger without a location to it but time and category: never enough alone.
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
    """Another category's incident at (nearly) the same place: shown as linked."""
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
