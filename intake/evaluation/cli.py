"""The judgement commands: `intake eval classify|dedup|surge` and `intake classifier train`."""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import sys
from pathlib import Path

from intake.config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("eval", help="measure the classifier and deduplication on evaluation sets")
    esub = s.add_subparsers(dest="what", required=True)
    ec = esub.add_parser("classify", help="agency accuracy on files of `text<TAB>agency[<TAB>kind]` lines")
    ec.add_argument("files", nargs="+", type=Path)
    ec.add_argument("--worst", type=int, default=15, help="how many wrong answers to list")
    ec.add_argument("--no-model", action="store_true", help="the term tables alone, without the text model")
    ec.add_argument("--json", action="store_true")
    ec.set_defaults(func=cmd_eval_classify)
    ed = esub.add_parser("dedup", help="pairwise and B-cubed precision / recall of matching on a JSONL surge")
    ed.add_argument("files", nargs="+", type=Path)
    ed.add_argument("--no-model", action="store_true", help="the term tables alone, without the text model")
    ed.add_argument("--fit", action="store_true",
                    help="search the matching policy's parameters on these (tuning) surges and print the best")
    ed.add_argument("--json", action="store_true")
    ed.set_defaults(func=cmd_eval_dedup)
    es = esub.add_parser("surge", help="simulate a day of reports of known events (JSONL for `eval dedup`)")
    es.add_argument("--seed", type=int, default=1)
    es.add_argument("--events", type=int, default=300)
    es.add_argument("--hours", type=float, default=6.0)
    es.add_argument("--texts", type=Path, action="append", default=[],
                    help="texts per kind to draw from (`text<TAB>agency<TAB>kind` files)")
    es.add_argument("--out", type=Path, help="default: standard output")
    es.set_defaults(func=cmd_eval_surge)

    s = sub.add_parser("classifier", help="the text model behind the classifier")
    csub = s.add_subparsers(dest="action", required=True)
    ct = csub.add_parser("train", help="refit on the corpus and the call-takers' decisions; install if not worse")
    ct.add_argument("--eval", type=Path, action="append", default=None,
                    help=f"evaluation file (repeatable; default: {_default_eval_glob()})")
    ct.add_argument("--output", type=Path, help="where to install (default: the classifier_model setting)")
    ct.add_argument("--ship", action="store_true",
                    help="install into the package (intake/core/data/textmodel.npz), the model installs start with")
    ct.add_argument("--corpus", type=Path, help="the corpus folder (default: intake/learn/corpus)")
    ct.add_argument("--no-store", action="store_true", help="the corpus alone, without the store's reports")
    ct.add_argument("--json", action="store_true")
    ct.set_defaults(func=cmd_classifier_train)


def _default_eval_glob() -> str:
    from intake.learn.retrain import DEFAULT_EVAL_GLOB

    return DEFAULT_EVAL_GLOB


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_eval_classify(args: argparse.Namespace, settings: Settings) -> int:
    from intake.core.classify import classify
    from intake.evaluation.classify import EvalFileError, dump, evaluate, print_report, read_cases
    from intake.learn.corpus import corpus
    from intake.learn.installed import installed_model

    model = None if args.no_model else installed_model(settings)
    training = [ex.text for ex in corpus(augment=False)]
    reports = []
    for path in args.files:
        try:
            cases = read_cases(path)
        except (OSError, EvalFileError) as exc:
            return _fail(str(exc))
        reports.append(evaluate(cases, str(path), worst=args.worst, threshold=settings.classify_threshold,
                                classifier=lambda t: classify(t, threshold=settings.classify_threshold, model=model),
                                training_texts=training))
    if args.json:
        dump(reports, sys.stdout)
    else:
        for r in reports:
            print_report(r, sys.stdout)
    return 0


def cmd_eval_dedup(args: argparse.Namespace, settings: Settings) -> int:
    from intake.evaluation.dedup import SEARCH, DedupFileError, fit, print_scores, read_surge, replay
    from intake.learn.installed import installed_model

    model = None if args.no_model else installed_model(settings)
    try:
        surges = [read_surge(path) for path in args.files]
    except (OSError, DedupFileError) as exc:
        return _fail(str(exc))
    if args.fit:
        policy, f1 = fit(surges, model=model, out=sys.stdout)
        print(f"best mean pairwise F1 {f1:.4f} with " + ", ".join(f"{k} = {getattr(policy, k)}" for k in SEARCH))
        return 0
    results = [(str(path), replay(surge, model=model, threshold=settings.classify_threshold))
               for path, surge in zip(args.files, surges, strict=True)]
    if args.json:
        json.dump([{"file": name, **r.as_dict()} for name, r in results], sys.stdout, indent=2)
        print()
    else:
        for name, r in results:
            print_scores(name, r, sys.stdout)
    return 0


def cmd_eval_surge(args: argparse.Namespace, settings: Settings) -> int:
    from intake.evaluation.surge import SurgeOptions, simulate, text_pool, write_jsonl

    try:
        pool = text_pool(args.texts)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    records = simulate(SurgeOptions(seed=args.seed, events=args.events, hours=args.hours), pool)
    if args.out:
        with args.out.open("w", encoding="utf-8") as f:
            write_jsonl(records, f)
    else:
        write_jsonl(records, sys.stdout)
    return 0


def cmd_classifier_train(args: argparse.Namespace, settings: Settings) -> int:
    from intake.learn.retrain import DEFAULT_EVAL_GLOB, confirmed_examples, retrain, summary

    files = args.eval if args.eval is not None else [Path(p) for p in sorted(glob.glob(DEFAULT_EVAL_GLOB))]
    if not files:
        return _fail(f"no evaluation files (none match {DEFAULT_EVAL_GLOB}; give --eval FILE)")
    store_examples = [] if args.no_store else asyncio.run(confirmed_examples(settings.database_url))
    output = args.output
    if args.ship:
        from intake.core.textmodel import MODEL_FILE

        output = Path(__file__).resolve().parents[1] / "core" / "data" / MODEL_FILE
    try:
        outcome = retrain(settings, files, output=output, store_examples=store_examples,
                          out=None if args.json else sys.stdout, corpus_dir=args.corpus)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        json.dump(summary(outcome), sys.stdout, indent=2, ensure_ascii=False)
        print()
    return 0 if outcome.installed else 1
