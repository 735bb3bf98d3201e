"""`intake classifier train`: refit the text model on the corpus plus what the call-takers decided.

Every report whose category a call-taker confirmed or set is a labelled example (its text, the agency). One in
five of them (by report id, so the same ones every time) is held out and joins the evaluation files (the dev
splits of tests/eval/classify by default) to judge the new model against the one in use. The new model is
installed only when it is at least as accurate there; otherwise it is thrown away and the command says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from intake.config import Settings
from intake.core.classify import classify
from intake.core.model import AGENCIES, Category
from intake.core.textmodel import TextModel
from intake.evaluation.classify import Case, ClassifyReport, evaluate, read_cases
from intake.learn.corpus import CORPUS_DIR, Example, agency_label, corpus, label_agency
from intake.learn.installed import installed_model, installed_path
from intake.learn.train import FitOptions, fit

__all__ = ["Outcome", "confirmed_examples", "retrain", "split_held_out"]

DEFAULT_EVAL_GLOB = "tests/eval/classify/*dev*.tsv"


async def confirmed_examples(database_url: str) -> list[tuple[int, Example]]:
    """(report id, example) for each report with words whose category a call-taker decided."""
    from intake.store import Store

    store = Store(database_url)
    rows: list[dict[str, Any]] = []
    try:
        await store.migrate()  # a fresh install has no reports yet, but has its schema once this runs
        async with store.read() as repo:
            while page := await repo.reports_with_words(rows[-1]["id"] if rows else 0):
                rows.extend(page)
    finally:
        await store.close()
    out = []
    for row in rows:
        report_id, text, category = row["id"], row["text"], row["category"]
        evidence = (row["classification"] or {}).get("evidence") or []
        if category in {a.value for a in AGENCIES} and any(e.get("source") == "calltaker" for e in evidence):
            out.append((int(report_id), Example(text, agency_label(Category(category)),
                                                f"store:report:{report_id}")))
    return out


def split_held_out(items: Sequence[tuple[int, Example]]) -> tuple[list[Example], list[Case]]:
    """Four in five for training, one in five (by a hash of the report id) for judging."""
    train, held = [], []
    for report_id, ex in items:
        if int(hashlib.sha256(f"report:{report_id}".encode()).hexdigest(), 16) % 5 == 0:
            agency = label_agency(ex.label)
            assert agency is not None  # confirmed_examples labels every example with an agency
            held.append(Case(ex.text, agency, None, report_id))
        else:
            train.append(ex)
    return train, held


@dataclass(frozen=True, slots=True)
class Outcome:
    installed: bool
    path: Path
    before: list[ClassifyReport]
    after: list[ClassifyReport]
    model: TextModel

    @staticmethod
    def micro(reports: Sequence[ClassifyReport]) -> float:
        cases = sum(r.cases for r in reports)
        return sum(r.correct for r in reports) / cases if cases else 0.0


def _judge(model: TextModel | None, sets: Sequence[tuple[str, list[Case]]], threshold: float,
           texts: Sequence[str]) -> list[ClassifyReport]:
    return [evaluate(cases, name, worst=0, threshold=threshold, training_texts=texts,
                     classifier=lambda text: classify(text, threshold=threshold, model=model))
            for name, cases in sets]


def retrain(settings: Settings, eval_files: Sequence[Path], *, output: Path | None = None,
            store_examples: Sequence[tuple[int, Example]] = (), options: FitOptions | None = None,
            out: TextIO | None = None, corpus_dir: Path | None = None, builtin: bool = True) -> Outcome:
    train_store, held = split_held_out(store_examples)
    examples = corpus(extra=train_store, directory=corpus_dir or CORPUS_DIR, builtin=builtin)
    sets: list[tuple[str, list[Case]]] = [(str(p), read_cases(p)) for p in eval_files]
    if held:
        sets.append(("held-out confirmed reports", held))
    texts = [ex.text for ex in examples]
    path = output or installed_path(settings)
    current: TextModel | None | Literal["default"] = (
        TextModel.load(path) if path.is_file() else installed_model(settings))
    if current == "default":
        from intake.core.textmodel import default_model
        current = default_model()
    model = fit(examples, options or FitOptions())
    model.meta["store_examples"] = str(len(train_store))
    before = _judge(current, sets, settings.classify_threshold, texts)
    after = _judge(model, sets, settings.classify_threshold, texts)
    better = Outcome.micro(after) >= Outcome.micro(before)
    if better:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    outcome = Outcome(better, path, before, after, model)
    if out is not None:
        print_outcome(outcome, out)
    return outcome


def print_outcome(o: Outcome, out: TextIO) -> None:
    m = o.model.meta
    out.write(f"trained on {m['examples']} examples ({m['store_examples']} confirmed by call-takers), "
              f"{m['labels']} labels, {m['features']} features kept of {m['features_seen']}\n")
    out.write(f"{'evaluation':<48} {'texts':>6} {'before':>8} {'after':>8}   unknown before/after\n")
    for b, a in zip(o.before, o.after, strict=True):
        out.write(f"{b.name[-48:]:<48} {b.cases:>6} {b.accuracy:>8.3f} {a.accuracy:>8.3f}   "
                  f"{b.unknown_rate:.3f} / {a.unknown_rate:.3f}\n")
    out.write(f"{'all':<48} {sum(r.cases for r in o.before):>6} {Outcome.micro(o.before):>8.3f} "
              f"{Outcome.micro(o.after):>8.3f}\n")
    if o.installed:
        out.write(f"installed {o.path}\n")
    else:
        out.write(f"NOT installed: the new model evaluates worse than the one in use ({o.path} unchanged)\n")


def summary(o: Outcome) -> dict[str, Any]:
    return {"installed": o.installed, "path": str(o.path), "meta": o.model.meta,
            "before": [r.as_dict() for r in o.before], "after": [r.as_dict() for r in o.after]}
