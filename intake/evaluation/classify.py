"""`intake eval classify FILE`: how often the classifier names the agency that must lead.

The file is one report a line: `text<TAB>agency[<TAB>kind]`; lines starting with '#' are skipped, and a header
line naming the columns (`text`, `agency`, optionally `kind`, in any order, among others) says where they are.
Each text goes through the same `classify()` the server uses, with no prior (no number
dialled, no device, no hint): the words alone. Printed:

  accuracy      share of texts whose category is the expected agency (an unknown answer counts as wrong)
  unknown rate  share of texts left to a person (confidence below the threshold)
  per agency    precision and recall
  confusion     expected (rows) × answered (columns, unknown included)
  kinds         where the file names kinds: share whose expected kind is among the kinds found
  worst texts   wrong answers, the most confident first, then unknowns

Texts that are also in the training corpus word for word (a standard complaint name is often a registry or
term-table phrase: "ALLERGIC REACTION") are counted and scored apart as well: `unseen accuracy` is the share
correct among the texts the model never read.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from intake.core.classify import THRESHOLD, classify
from intake.core.model import AGENCIES, Category, Classification
from intake.core.textnorm import folded_words

__all__ = ["Case", "ClassifyReport", "EvalFileError", "evaluate", "read_cases"]

COLUMNS = [a.value for a in AGENCIES] + [Category.UNKNOWN.value]


class EvalFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    agency: Category
    kind: str | None = None
    line: int = 0


@dataclass(slots=True)
class ClassifyReport:
    name: str
    cases: int = 0
    correct: int = 0
    unknown: int = 0
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    kind_cases: int = 0
    kind_found: int = 0
    seen: int = 0  # texts also in the training corpus
    seen_correct: int = 0
    worst: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0

    @property
    def unseen_accuracy(self) -> float | None:
        unseen = self.cases - self.seen
        return (self.correct - self.seen_correct) / unseen if unseen else None

    @property
    def unknown_rate(self) -> float:
        return self.unknown / self.cases if self.cases else 0.0

    def precision(self, agency: str) -> float:
        answered = sum(row[agency] for row in self.confusion.values())
        return self.confusion.get(agency, Counter())[agency] / answered if answered else 0.0

    def recall(self, agency: str) -> float:
        row = self.confusion.get(agency, Counter())
        return row[agency] / sum(row.values()) if row else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name, "cases": self.cases, "accuracy": round(self.accuracy, 4),
            "unknown_rate": round(self.unknown_rate, 4), "seen_in_training": self.seen,
            "unseen_accuracy": None if self.unseen_accuracy is None else round(self.unseen_accuracy, 4),
            "per_agency": {a: {"precision": round(self.precision(a), 4), "recall": round(self.recall(a), 4),
                               "cases": sum(self.confusion.get(a, Counter()).values())}
                           for a in COLUMNS[:-1]},
            "confusion": {a: {b: self.confusion.get(a, Counter())[b] for b in COLUMNS} for a in COLUMNS[:-1]},
            "kind_accuracy": round(self.kind_found / self.kind_cases, 4) if self.kind_cases else None,
            "worst": self.worst,
        }


def read_cases(path: Path) -> list[Case]:
    """The cases of a file; with a header line, its columns are found by name (text, agency, kind)."""
    cases = []
    columns = {"text": 0, "agency": 1, "kind": 2}
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or not row[0].strip() or row[0].startswith("#"):
                continue
            if n == 1 and "text" in row and "agency" in row:
                columns = {name: row.index(name) for name in ("text", "agency", "kind") if name in row}
                continue
            if len(row) <= max(columns["text"], columns["agency"]):
                raise EvalFileError(f"{path.name}:{n}: want text<TAB>agency, got {len(row)} field(s)")
            value = row[columns["agency"]].strip()
            try:
                agency = Category(value)
            except ValueError:
                raise EvalFileError(f"{path.name}:{n}: unknown agency {value!r}") from None
            if agency not in AGENCIES:
                raise EvalFileError(f"{path.name}:{n}: the expected answer must be an agency, not {agency.value}")
            k = columns.get("kind")
            kind = row[k].strip() if k is not None and k < len(row) and row[k].strip() else None
            cases.append(Case(row[columns["text"]].strip(), agency, kind, n))
    if not cases:
        raise EvalFileError(f"{path.name}: no cases")
    return cases


def overlap(cases: Iterable[Case], training_texts: Iterable[str]) -> list[Case]:
    """The cases whose text (folded) is also a training text."""
    seen = {folded_words(t) for t in training_texts}
    return [c for c in cases if folded_words(c.text) in seen]


def evaluate(cases: Sequence[Case], name: str = "", worst: int = 15,
             classifier: Callable[[str], Classification] | None = None,
             threshold: float = THRESHOLD, training_texts: Iterable[str] = ()) -> ClassifyReport:
    run = classifier or (lambda text: classify(text, threshold=threshold))
    report = ClassifyReport(name)
    seen = {id(c) for c in overlap(cases, training_texts)}
    wrong: list[tuple[float, dict[str, Any]]] = []
    for case in cases:
        c = run(case.text)
        report.cases += 1
        answered = c.category.value
        report.confusion.setdefault(case.agency.value, Counter())[answered] += 1
        if id(case) in seen:
            report.seen += 1
            report.seen_correct += c.category == case.agency
        if c.category == case.agency:
            report.correct += 1
        else:
            terms = [f"{e.term}→{e.category.value}" for e in c.evidence if not e.negated and e.weight > 0][:4]
            wrong.append((c.confidence if c.category != Category.UNKNOWN else -1.0 + c.confidence, {
                "line": case.line, "text": case.text, "expected": case.agency.value, "answered": answered,
                "confidence": c.confidence, "evidence": terms}))
        if c.category == Category.UNKNOWN:
            report.unknown += 1
        if case.kind:
            report.kind_cases += 1
            report.kind_found += case.kind in c.kinds
    wrong.sort(key=lambda w: -w[0])
    report.worst = [w for _, w in wrong[:worst]]
    return report


def print_report(report: ClassifyReport, out: TextIO) -> None:
    d = report.as_dict()
    out.write(f"{report.name}: {report.cases} texts\n")
    out.write(f"  accuracy {d['accuracy']:.3f}   unknown rate {d['unknown_rate']:.3f}")
    if d["kind_accuracy"] is not None:
        out.write(f"   kind found {d['kind_accuracy']:.3f}")
    if report.seen:
        unseen = d["unseen_accuracy"]
        out.write(f"\n  {report.seen} texts are also training texts; accuracy on the {report.cases - report.seen} "
                  f"unseen: {'-' if unseen is None else f'{unseen:.3f}'}")
    out.write("\n  agency    precision  recall  texts\n")
    for a, v in d["per_agency"].items():
        out.write(f"  {a:<9} {v['precision']:>9.3f}  {v['recall']:>6.3f}  {v['cases']:>5}\n")
    out.write("  expected \\ answered " + " ".join(f"{b:>8}" for b in COLUMNS) + "\n")
    for a, row in d["confusion"].items():
        out.write(f"  {a:<20}" + " ".join(f"{row[b]:>8}" for b in COLUMNS) + "\n")
    if report.worst:
        out.write("  worst:\n")
        for w in report.worst:
            out.write(f"    {w['line']:>4} {w['expected']}→{w['answered']} ({w['confidence']:.2f}) {w['text'][:90]}"
                      f"  [{'; '.join(w['evidence'])}]\n")


def dump(reports: Sequence[ClassifyReport], out: TextIO) -> None:
    json.dump([r.as_dict() for r in reports], out, ensure_ascii=False, indent=2)
    out.write("\n")
