"""Where in a report's text the evidence and the address are: spans for the console to highlight.

The classifier and the address finder work on folded text ("chay nha"); a call-taker reads the
original ("Cháy nhà"). Folding keeps one character for one character (NFC Vietnamese letters and
đ fold to one letter each), so word offsets found on the folded form are offsets in the original.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from intake.core import address
from intake.core.textnorm import fold

_WORD = re.compile(r"[0-9a-z]+")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str  # 'evidence' | 'negated' | 'address'
    category: str | None = None
    term: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "kind": self.kind, "category": self.category,
                "term": self.term}


def _fold_aligned(text: str) -> str:
    """The folded text with exactly one character per character of `text` (NFC)."""
    out = []
    for ch in text:
        f = fold(ch)
        out.append(f if len(f) == 1 else (f[:1] or " "))
    return "".join(out)


def _words(folded: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(folded)]


def highlights(text: str, evidence: list[dict[str, Any]]) -> list[Span]:
    """Spans of `text` (NFC) for each text evidence term and for the address found, in order, not overlapping."""
    text = unicodedata.normalize("NFC", text or "")
    if not text:
        return []
    words = _words(_fold_aligned(text))
    folded_seq = [w for w, _, _ in words]
    spans: list[Span] = []
    for ev in evidence:
        if ev.get("source") != "text" or not ev.get("term"):
            continue
        term = str(ev["term"]).split()
        n = len(term)
        for i in range(len(folded_seq) - n + 1):
            if folded_seq[i:i + n] == term:
                spans.append(Span(words[i][1], words[i + n - 1][2], "negated" if ev.get("negated") else "evidence",
                                  ev.get("category"), ev["term"]))
    found = address.find_address(text)
    if found is not None:
        spans.append(Span(found.start, found.end, "address", None, found.text))
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    out: list[Span] = []
    for s in spans:
        if out and s.start < out[-1].end:
            continue  # the first (longest) span at a place wins; the console draws no nested marks
        out.append(s)
    return out
