"""`intake eval dedup FILE.jsonl`: how well matching groups the reports of one event, and only those.

The file is a surge (intake/evaluation/surge.py writes one): a header line, then, in time order, reports with
their true event (`{"report", "event", "at", "channel", "reporter", "text", "lat", "lon", "accuracy_m",
"dialled", "device_event_code"}`) and closings (`{"close": event, "at"}`: dispatch closed the incident that
took the event's first report).

Each report is classified by the server's `classify()` and matched by the server's `match.decide()` against the
incidents still open, held in memory exactly as the pipeline keeps them (`absorb` mirrors Intake._absorb:
newest report time, better location, kinds, reporters, words). Not replayed: the address in a text (the
simulated coordinates are the truth; a street named in a drawn text is not where the event is) and the
call-takers' merges and splits. A REVIEW outcome counts as a new incident, as it is until a person merges it.

Printed: pairwise precision / recall / F1 over pairs of reports (a pair is right when both are in one incident
and one event), B-cubed precision / recall / F1 (per report, the share of its incident that is its event, and of
its event that is in its incident), and the counts of events, incidents, reviews and unknown classifications;
then the two F1s again had a call-taker merged each "possible duplicate" that is one into the incident it was shown
beside, and refused the others (what the console offers): the system and a careful call-taker together.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from intake.core import match
from intake.core.classify import classify
from intake.core.match import DEFAULT_POLICY, MatchPolicy, Subject
from intake.core.model import Category, Classification, IncidentStatus, IncidentView, Location, LocationSource, Outcome
from intake.core.textmodel import TextModel
from intake.core.textnorm import tokens

__all__ = ["DedupFileError", "Scores", "Surge", "fit", "read_surge", "replay"]

MAX_TOKENS = 200  # as the pipeline keeps an incident's words


class DedupFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SurgeReport:
    n: int
    event: str
    at: datetime
    channel: str
    reporter: str | None
    text: str
    location: Location | None
    dialled: str | None
    device_event_code: str | None


@dataclass(frozen=True, slots=True)
class Surge:
    header: dict[str, Any]
    items: list[SurgeReport | tuple[str, datetime]]  # reports and (event closed, at), in time order

    @property
    def reports(self) -> list[SurgeReport]:
        return [r for r in self.items if isinstance(r, SurgeReport)]


def read_surge(path: Path) -> Surge:
    header: dict[str, Any] = {}
    items: list[SurgeReport | tuple[str, datetime]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                if "surge" in r:
                    header = r["surge"]
                elif "close" in r:
                    items.append((str(r["close"]), datetime.fromisoformat(r["at"])))
                else:
                    loc = None
                    if r.get("lat") is not None and r.get("lon") is not None:
                        source = (LocationSource(r["location_source"]) if r.get("location_source")
                                  else LocationSource.FACILITY if r.get("channel") == "device" else LocationSource.GPS)
                        loc = Location(float(r["lat"]), float(r["lon"]), float(r.get("accuracy_m") or 50.0), source)
                    items.append(SurgeReport(int(r["report"]), str(r["event"]), datetime.fromisoformat(r["at"]),
                                             str(r.get("channel") or ""), r.get("reporter"), str(r.get("text") or ""),
                                             loc, r.get("dialled"), r.get("device_event_code")))
            except (KeyError, TypeError, ValueError) as exc:
                raise DedupFileError(f"{path.name}:{n}: {exc}") from None
    items.sort(key=lambda i: (i.at, 0) if isinstance(i, SurgeReport) else (i[1], 1))
    if not any(isinstance(i, SurgeReport) for i in items):
        raise DedupFileError(f"{path.name}: no reports")
    return Surge(header, items)


@dataclass(slots=True)
class Scores:
    reports: int = 0
    events: int = 0
    incidents: int = 0
    reviews: int = 0
    unknown: int = 0
    pair_precision: float = 0.0
    pair_recall: float = 0.0
    bcubed_precision: float = 0.0
    bcubed_recall: float = 0.0
    merged_apart: list[tuple[str, str]] = field(default_factory=list)  # (event, event) put in one incident
    reviewed: Scores | None = None  # the same, had a call-taker merged the right "possible duplicates"

    @staticmethod
    def _f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def pair_f1(self) -> float:
        return self._f1(self.pair_precision, self.pair_recall)

    @property
    def bcubed_f1(self) -> float:
        return self._f1(self.bcubed_precision, self.bcubed_recall)

    def as_dict(self) -> dict[str, Any]:
        return {"reports": self.reports, "events": self.events, "incidents": self.incidents,
                "reviews": self.reviews, "unknown": self.unknown,
                "pairwise": {"precision": round(self.pair_precision, 4), "recall": round(self.pair_recall, 4),
                             "f1": round(self.pair_f1, 4)},
                "bcubed": {"precision": round(self.bcubed_precision, 4), "recall": round(self.bcubed_recall, 4),
                           "f1": round(self.bcubed_f1, 4)},
                "wrongly_merged_events": [list(p) for p in self.merged_apart[:20]],
                **({"with_reviews_merged": {"pairwise_f1": round(self.reviewed.pair_f1, 4),
                                            "bcubed_f1": round(self.reviewed.bcubed_f1, 4)}}
                   if self.reviewed is not None else {})}


def score_clusters(truth: Sequence[str], predicted: Sequence[int]) -> Scores:
    s = Scores(reports=len(truth), events=len(set(truth)), incidents=len(set(predicted)))
    pairs_same_pred: Counter[tuple[int, str]] = Counter(zip(predicted, truth, strict=True))
    by_pred = Counter(predicted)
    by_true = Counter(truth)
    tp = sum(n * (n - 1) / 2 for n in pairs_same_pred.values())
    pred_pairs = sum(n * (n - 1) / 2 for n in by_pred.values())
    true_pairs = sum(n * (n - 1) / 2 for n in by_true.values())
    s.pair_precision = tp / pred_pairs if pred_pairs else 1.0
    s.pair_recall = tp / true_pairs if true_pairs else 1.0
    s.bcubed_precision = sum(pairs_same_pred[(p, t)] / by_pred[p] for p, t in zip(predicted, truth, strict=True)
                             ) / len(truth)
    s.bcubed_recall = sum(pairs_same_pred[(p, t)] / by_true[t] for p, t in zip(predicted, truth, strict=True)
                          ) / len(truth)
    members: dict[int, set[str]] = defaultdict(set)
    for p, t in zip(predicted, truth, strict=True):
        members[p].add(t)
    s.merged_apart = [tuple(sorted(ev))[:2] for ev in members.values() if len(ev) > 1]  # type: ignore[misc]
    return s


@dataclass(slots=True)
class _Incident:
    view: IncidentView
    status: IncidentStatus = IncidentStatus.OPEN


def _absorb(view: IncidentView, subject: Subject, c: Classification) -> IncidentView:
    """What an incident takes from a report that joins it (as Intake._absorb)."""
    location = view.location
    if subject.location is not None and match.improves(location, subject.location):
        location = subject.location
    category = view.category
    if category == Category.UNKNOWN and c.category != Category.UNKNOWN:
        category = c.category
    keys = view.reporter_keys | ({subject.reporter_key} if subject.reporter_key else set())
    words = view.text_tokens if len(view.text_tokens) >= MAX_TOKENS else frozenset(
        sorted(view.text_tokens | subject.text_tokens)[:MAX_TOKENS])
    kinds = view.kinds + tuple(k for k in c.kinds if k not in view.kinds)
    return replace(view, category=category, location=location, report_count=view.report_count + 1,
                   last_report_at=max(view.last_report_at, subject.received_at), reporter_keys=frozenset(keys),
                   text_tokens=words, kinds=kinds)


def classify_all(surge: Surge, model: TextModel | None | Literal["default"] = "default",
                 threshold: float = 0.5) -> dict[int, Classification]:
    return {r.n: classify(r.text, dialled_number=r.dialled, device_event_code=r.device_event_code,
                          threshold=threshold, model=model) for r in surge.reports}


def replay(surge: Surge, policy: MatchPolicy = DEFAULT_POLICY, model: TextModel | None | Literal["default"] = "default",
           threshold: float = 0.5, classified: dict[int, Classification] | None = None) -> Scores:
    classes = classified if classified is not None else classify_all(surge, model, threshold)
    incidents: dict[int, _Incident] = {}
    first_of_event: dict[str, int] = {}
    truth: list[str] = []
    predicted: list[int] = []
    reviews = unknown = 0
    review_of: dict[int, int] = {}  # incident → the incident a person was asked to merge it into
    stale = policy.stale
    for item in surge.items:
        if not isinstance(item, SurgeReport):
            event, _ = item
            if event in first_of_event:
                incidents[first_of_event[event]].status = IncidentStatus.CLOSED
            continue
        c = classes[item.n]
        unknown += c.category == Category.UNKNOWN
        subject = Subject(c.category, item.location, item.at, item.reporter,
                          match.text_tokens(tokens(item.text)), c.kinds)
        candidates = []
        for inc in incidents.values():
            v = inc.view
            if inc.status != IncidentStatus.OPEN or v.last_report_at < item.at - stale:
                continue
            if (item.location is not None and v.location is not None and item.reporter not in v.reporter_keys
                    and match.beyond_reach(item.location, v.location, v.category, policy, v.kinds)):
                continue
            candidates.append(v)
        decision = match.decide(subject, candidates, policy)
        if decision.outcome == Outcome.ATTACHED and decision.incident_id is not None:
            target = incidents[decision.incident_id]
            target.view = _absorb(target.view, subject, c)
            incident_id = decision.incident_id
        else:
            reviews += decision.outcome == Outcome.REVIEW
            incident_id = len(incidents) + 1
            if decision.outcome == Outcome.REVIEW and decision.incident_id is not None:
                review_of[incident_id] = decision.incident_id
            incidents[incident_id] = _Incident(IncidentView(
                incident_id, c.category, IncidentStatus.OPEN, item.location, item.at, item.at, 1,
                frozenset({item.reporter} if item.reporter else ()), subject.text_tokens, c.kinds))
        first_of_event.setdefault(item.event, incident_id)
        truth.append(item.event)
        predicted.append(incident_id)
    scores = score_clusters(truth, predicted)
    scores.reviews, scores.unknown = reviews, unknown

    # A call-taker shown "possible duplicate of #n" merges it when it is one (the report that opened it and
    # the first report of #n are of one event) and refuses it otherwise.
    first_event: dict[int, str] = {}
    for p, t in zip(predicted, truth, strict=True):
        first_event.setdefault(p, t)

    def root(i: int) -> int:
        while i in review_of and first_event.get(i) == first_event.get(review_of[i]):
            i = review_of[i]
        return i

    scores.reviewed = score_clusters(truth, [root(p) for p in predicted])
    return scores


# --- fitting the policy -------------------------------------------------------------------------------

#: The parameters `fit` searches, and the values it tries for each. The radii are not searched: they are each
#: kind's own (routing.toml), and the category's for incidents of no kind, which the project's matching tests
#: pin (two house fires 900 m apart are a possible duplicate, not two strangers).
SEARCH: dict[str, tuple[float, ...]] = {
    "attach": (0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    "window_scale": (0.25, 0.375, 0.5, 0.75, 1.0, 1.5),
    "window_tail": (1.0, 1.25, 1.5, 2.0),
    "sigma_factor": (0.0, 0.5, 1.0, 1.5),
    "vague_scale": (0.5, 1.0, 2.0, 4.0),
    "unknown_category": (0.3, 0.5, 0.7),
    "w_text": (0.0, 0.15, 0.3),
    "same_family": (0.6, 0.85, 1.0),
    "other_patient": (0.0, 0.3, 0.6, 1.0),
}


def fit(surges: Sequence[Surge], start: MatchPolicy = DEFAULT_POLICY, rounds: int = 2,
        model: TextModel | None | Literal["default"] = "default", out: TextIO | None = None
        ) -> tuple[MatchPolicy, float]:
    """Coordinate ascent on the mean pairwise F1 over `surges` (which must not be the ones reported)."""
    classified = [classify_all(s, model) for s in surges]

    def objective(policy: MatchPolicy) -> float:
        return sum(replay(s, policy, classified=c).pair_f1 for s, c in zip(surges, classified, strict=True)
                   ) / len(surges)

    best, best_score = start, objective(start)
    for round_ in range(rounds):
        for name, values in SEARCH.items():
            for value in values:
                trial = replace(best, **{name: value})  # type: ignore[arg-type]
                f1 = objective(trial)
                if f1 > best_score + 1e-9:
                    best, best_score = trial, f1
            if out is not None:
                out.write(f"round {round_ + 1} {name:<14} = {getattr(best, name):<6} "
                          f"mean pairwise F1 {best_score:.4f}\n")
    return best, best_score


def print_scores(name: str, s: Scores, out: TextIO) -> None:
    out.write(f"{name}: {s.reports} reports of {s.events} events → {s.incidents} incidents "
              f"({s.reviews} flagged for review), {s.unknown} reports unclassified\n")
    out.write(f"  pairwise  precision {s.pair_precision:.3f}  recall {s.pair_recall:.3f}  F1 {s.pair_f1:.3f}\n")
    out.write(f"  B-cubed   precision {s.bcubed_precision:.3f}  recall {s.bcubed_recall:.3f}  F1 {s.bcubed_f1:.3f}\n")
    if s.reviewed is not None:
        out.write(f"  had a call-taker merged the right ones of the {s.reviews} possible duplicates: pairwise F1 "
                  f"{s.reviewed.pair_f1:.3f}, B-cubed F1 {s.reviewed.bcubed_f1:.3f}\n")
    if s.merged_apart:
        out.write(f"  {len(s.merged_apart)} incidents hold reports of more than one event, e.g. "
                  + ", ".join("+".join(p) for p in s.merged_apart[:8]) + "\n")
