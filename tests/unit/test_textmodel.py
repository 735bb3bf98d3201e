"""The text model: features as documented, a fitted model that reads unseen words, saved and loaded as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.core.classify import classify
from intake.core.model import Category
from intake.core.textmodel import TextModel, features
from intake.learn.corpus import Example, corpus, sms_forms
from intake.learn.train import FitOptions, fit


def test_accented_and_bare_words_are_different_features() -> None:
    f = features("Xe chạy, nhà cháy, chay")
    assert "a:chạy" in f and "a:cháy" in f and "w:chay" in f
    assert "b:xe chạy" in f and "b:cháy chay" in f
    assert not any(x.startswith("w:") and "ạ" in x for x in f)


def test_house_numbers_are_not_features() -> None:
    assert not any("12" in x for x in features("số 12"))


@pytest.fixture(scope="module")
def tiny() -> TextModel:
    examples = [
        *(Example(t, "unconscious", "test") for t in ("syncope", "syncopal collapse", "fainted and collapsed",
                                                       "ngất xỉu", "bất tỉnh nhân sự")),
        *(Example(t, "gas_leak", "test") for t in ("gas leak", "smell of gas", "odor of gas", "rò rỉ khí gas")),
        *(Example(t, "robbery", "test") for t in ("robbery", "armed robbery", "cướp giật túi", "bị cướp xe")),
        *(Example(t, "none", "test") for t in ("hello there", "thank you", "xin chào", "cảm ơn anh")),
    ]
    return fit(examples, FitOptions(prune=0.0))


def test_a_word_never_seen_whole_resembles_the_ones_that_were(tiny: TextModel) -> None:
    p = tiny.predict("syncopal episode")
    assert p is not None and p.best(1)[0][0] == "unconscious"
    assert "syncopal" in p.top_words["unconscious"]


def test_a_text_of_unknown_words_has_no_reading(tiny: TextModel) -> None:
    assert tiny.predict("zzz qqq") is None


def test_a_saved_model_reads_the_same(tiny: TextModel, tmp_path: Path) -> None:
    tiny.save(tmp_path / "m.npz")
    again = TextModel.load(tmp_path / "m.npz")
    a, b = tiny.predict("odor of gas"), again.predict("odor of gas")
    assert a is not None and b is not None
    assert a.best(1)[0][0] == b.best(1)[0][0] == "gas_leak"
    assert abs(a.probabilities["gas_leak"] - b.probabilities["gas_leak"]) < 1e-2  # float16 weights
    assert again.meta["examples"] == "17"


def test_where_the_tables_know_nothing_the_model_decides_and_names_the_words(tiny: TextModel) -> None:
    assert classify("syncopal episode", model=None).category == Category.UNKNOWN
    c = classify("syncopal episode", model=tiny)
    assert c.category == Category.MEDICAL
    [ev] = [e for e in c.evidence if e.source == "model"]
    assert ev.kind == "unconscious" and "syncopal" in ev.term


def test_what_the_tables_decided_stands(tiny: TextModel) -> None:
    assert classify("cháy nhà ở Hàng Bạc", model=tiny) == classify("cháy nhà ở Hàng Bạc", model=None)


def test_negated_words_never_reach_the_model(tiny: TextModel) -> None:
    c = classify("không có ai bị cướp", model=tiny)
    assert all(e.source != "model" for e in c.evidence)
    assert c.category == Category.UNKNOWN


def test_small_talk_is_not_read() -> None:
    model = TextModel(("robbery",), {"w:toi": 0}, __import__("numpy").ones((1, 1), dtype="float32"),
                      __import__("numpy").zeros(1, dtype="float32"))
    assert classify("tôi ơi", model=model).evidence == ()


def test_vietnamese_examples_also_arrive_as_sms() -> None:
    assert sms_forms("Người bị ngất không thở được") == ["nguoi bi ngat khong tho duoc", "ng bi ngat ko tho dc"]


def test_the_corpus_has_every_kind_and_the_everyday_class() -> None:
    from intake.core.incident_types import INCIDENT_TYPES

    labels = {ex.label for ex in corpus(augment=False)}
    assert set(INCIDENT_TYPES) <= labels and "none" in labels


def test_the_shipped_model_knows_every_kind() -> None:
    from intake.core.incident_types import INCIDENT_TYPES
    from intake.core.textmodel import default_model

    model = default_model()
    assert model is not None, "intake/core/data/textmodel.npz is missing: run `intake classifier train --ship`"
    assert set(INCIDENT_TYPES) <= set(model.kinds)
