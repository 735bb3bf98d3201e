"""The complaint types the issue "Judgement that holds on real reports" names as not recognised, in English
(they are common dispatch complaint names), each to the agency that leads at a Vietnamese centre."""

from __future__ import annotations

import pytest

from intake.core.classify import classify

NAMED = [
    ("cardiac emergency", "medical"), ("respiratory emergency", "medical"), ("fall victim", "medical"),
    ("abdominal pains", "medical"), ("syncopal episode", "medical"), ("hemorrhaging", "medical"),
    ("general weakness", "medical"), ("dizziness", "medical"), ("dehydration", "medical"),
    ("maternity", "medical"), ("lacerations", "medical"), ("altered mental status", "medical"),
    ("subject in pain", "medical"),
    ("disabled vehicle", "police"), ("road obstruction", "police"), ("hazardous road conditions", "police"),
    ("debris on the road", "police"),
    ("gas odor", "fire"), ("gas leak", "fire"), ("rescue from an elevator", "fire"), ("water rescue", "fire"),
    ("person stuck in elevator", "fire"),
]


@pytest.mark.parametrize(("text", "agency"), NAMED)
def test_a_named_complaint_goes_to_its_agency(text: str, agency: str) -> None:
    c = classify(text)
    assert c.category.value == agency, c.evidence
    assert any(e.source in ("text", "model") and e.category.value == agency for e in c.evidence)
