"""Judgement through the real pipeline and the commands: types in matching, and learning from call-takers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from intake.config import Settings
from intake.core.model import Category, Outcome
from intake.core.textmodel import TextModel
from intake.learn.retrain import Outcome as Trained
from intake.learn.retrain import confirmed_examples, retrain
from intake.pipeline import Intake
from intake.store import Store
from tests.conftest import Clock
from tests.integration.test_ingest import HANG_BAC, app_report, offset

ROOT = Path(__file__).resolve().parents[2]


async def test_a_robbery_and_a_crash_at_one_corner_are_two_incidents(intake: Intake, clock: Clock) -> None:
    crash = await intake.ingest(app_report(clock, "c1", "tai nạn giao thông, xe máy đâm ô tô", at=HANG_BAC))
    clock.advance(minutes=3)
    robbery = await intake.ingest(app_report(clock, "r1", "cướp giật điện thoại", at=offset(*HANG_BAC, 20, 0)))
    assert crash.outcome == robbery.outcome == Outcome.CREATED
    assert robbery.incident_id != crash.incident_id


async def test_a_crash_hours_later_at_the_same_corner_is_a_new_incident(intake: Intake, clock: Clock) -> None:
    first = await intake.ingest(app_report(clock, "c1", "tai nạn giao thông ở ngã tư", at=HANG_BAC))
    clock.advance(hours=4)
    second = await intake.ingest(app_report(clock, "c2", "tai nạn giao thông ở ngã tư", at=offset(*HANG_BAC, 10, 0)))
    assert second.outcome == Outcome.CREATED and second.incident_id != first.incident_id


async def test_a_call_takers_decision_is_a_training_example(intake: Intake, clock: Clock, store: Store) -> None:
    result = await intake.ingest(app_report(clock, "a1", "ông ấy nằm im không nhúc nhích", at=HANG_BAC))
    await intake.ingest(app_report(clock, "a2", "có mùi lạ", at=offset(*HANG_BAC, 900, 0)))
    await intake.update_report(result.report_id, category=Category.MEDICAL, actor="lan")
    found = await confirmed_examples(store.url)
    assert [(ex.text, ex.label) for _, ex in found] == [("ông ấy nằm im không nhúc nhích", "agency:medical")]


def _tiny_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "en_small.tsv").write_text(
        "text\tkind\tsource\n" + "".join(f"{t}\t{k}\ttest\n" for t, k in [
            ("syncopal episode", "unconscious"), ("fainting spell", "unconscious"), ("gas odor", "gas_leak"),
            ("hello there", "none")]), encoding="utf-8")
    return folder


def test_retraining_installs_a_model_that_is_not_worse(tmp_path: Path) -> None:
    eval_file = tmp_path / "dev.tsv"
    eval_file.write_text("text\tagency\nsyncopal collapse\tmedical\nodor of gas\tfire\n", encoding="utf-8")
    out = tmp_path / "installed.npz"
    settings = Settings(classifier_model=str(out))
    outcome = retrain(settings, [eval_file], corpus_dir=_tiny_corpus(tmp_path / "corpus"), builtin=False)
    assert outcome.installed and out.is_file()
    assert TextModel.load(out).meta["examples"] == outcome.model.meta["examples"]


def test_retraining_never_installs_a_worse_model(tmp_path: Path) -> None:
    eval_file = tmp_path / "dev.tsv"
    eval_file.write_text("text\tagency\nsyncopal collapse\tmedical\nodor of gas\tfire\n", encoding="utf-8")
    out = tmp_path / "installed.npz"
    settings = Settings(classifier_model=str(out))
    corpus_dir = _tiny_corpus(tmp_path / "corpus")
    assert retrain(settings, [eval_file], corpus_dir=corpus_dir, builtin=False).installed
    before = out.read_bytes()
    # A corpus that teaches the opposite: the new model reads worse on the same evaluation, and is thrown away.
    (corpus_dir / "en_small.tsv").write_text(
        "text\tkind\tsource\nsyncopal collapse odor\tgas_leak\nodor of gas syncopal\tunconscious\n", encoding="utf-8")
    outcome = retrain(settings, [eval_file], corpus_dir=corpus_dir, builtin=False)
    assert not outcome.installed and out.read_bytes() == before
    assert Trained.micro(outcome.after) < Trained.micro(outcome.before)


def _intake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INTAKE_CLASSIFIER_MODEL": "/nonexistent/model.npz"}
    return subprocess.run([sys.executable, "-m", "intake.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_eval_classify_prints_the_figures_and_refuses_bad_files(tmp_path: Path) -> None:
    good = _intake("eval", "classify", "tests/eval/classify/en_dispatch_dev.tsv")
    assert good.returncode == 0, good.stderr
    assert "accuracy" in good.stdout and "expected \\ answered" in good.stdout and "unknown rate" in good.stdout
    bad = tmp_path / "bad.tsv"
    bad.write_text("cháy nhà\tarson\n", encoding="utf-8")
    refused = _intake("eval", "classify", str(bad))
    assert refused.returncode == 2 and "unknown agency 'arson'" in refused.stderr


@pytest.mark.slow
def test_eval_surge_then_dedup_prints_pairwise_and_bcubed(tmp_path: Path) -> None:
    surge = tmp_path / "s.jsonl"
    made = _intake("eval", "surge", "--seed", "3", "--events", "40", "--texts",
                   "tests/eval/classify/vi_callers_dev.tsv", "--out", str(surge))
    assert made.returncode == 0, made.stderr
    scored = _intake("eval", "dedup", str(surge))
    assert scored.returncode == 0, scored.stderr
    assert "pairwise  precision" in scored.stdout and "B-cubed" in scored.stdout


async def test_retraining_on_a_fresh_install_finds_no_decisions_and_no_error(tmp_path: Path) -> None:
    """A clean clone has no database yet: reading the decisions creates the schema and finds none."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    assert await confirmed_examples(url) == []


@pytest.mark.slow
def test_the_corpus_files_are_what_their_public_sources_give() -> None:
    """en_icd10.tsv and en_wordnet.tsv are rebuilt from simple-icd-10-cm and Debian's wordnet-base, byte for byte."""
    rebuilt = subprocess.run([sys.executable, "-m", "intake.learn.sources", "--check"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
