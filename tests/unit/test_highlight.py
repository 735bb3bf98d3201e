"""Spans of a report's text for the console to highlight: evidence words and the address, in the original text."""

from __future__ import annotations

from intake.core.classify import classify
from intake.core.highlight import highlights
from intake.pipeline import classification_data


def marks(text: str) -> list[tuple[str, str]]:
    evidence = classification_data(classify(text))["evidence"]
    return [(s.kind, text[s.start:s.end]) for s in highlights(text, evidence)]


def test_evidence_and_the_address_are_found_in_the_text_as_written() -> None:
    text = "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm, có người bị kẹt"
    assert marks(text) == [("evidence", "Cháy nhà"), ("address", "số 12 phố Hàng Bạc, quận Hoàn Kiếm"),
                           ("evidence", "bị kẹt")]


def test_text_without_accents_is_marked_too() -> None:
    assert ("evidence", "chay nha") in marks("chay nha o ngo 5")


def test_a_negated_term_is_marked_as_negated() -> None:
    assert ("negated", "bị thương") in marks("cháy bếp nhưng không có ai bị thương")


def test_spans_never_overlap_and_nothing_is_marked_in_an_empty_text() -> None:
    text = "cháy nhà cháy nhà"
    spans = highlights(text, [{"source": "text", "term": "chay nha", "category": "fire"},
                              {"source": "text", "term": "nha chay", "category": "fire"}])
    assert [(s.start, s.end) for s in spans] == [(0, 8), (9, 17)]
    assert highlights("", [{"source": "text", "term": "chay"}]) == []
