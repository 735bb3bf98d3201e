"""The training corpus of the text model: public vocabularies, our own phrasings, and the call-takers' decisions.

Sources, each a list of (text, label) with where it came from (intake/learn/corpus/SOURCES.md says more):
- the incident types themselves (intake/core/incident_types): each kind's registry description (NENA / APCO),
  its English and Vietnamese labels;
- the classifier's term tables (intake/core/data/classify_terms.toml): each phrase of a kind, in its language;
- the TSV files of intake/learn/corpus/ (`text, kind, source`): ICD-10-CM descriptions and WordNet hyponyms
  mapped to kinds (built by `python -m intake.learn.sources`), Vietnamese and English caller phrasings;
- reports whose category a call-taker confirmed or set (`intake classifier train` reads them from the store),
  labelled with the agency only (`agency:fire`): a person decides the agency, not the kind;
- everyday texts that report nothing (label `none`: "xe chạy nhanh", "ăn chay", "wrong number"), with short
  pieces of them and the greetings and places every call has, so that the model learns what is not an
  emergency as well, and that a word or two of small talk is not one.

Vietnamese texts are also given as SMS would carry them: without diacritics, and with the common abbreviations
("ko", "ng", "dc"), so the model learns "nguoi bi ngat" from "người bị ngất"; and as a caller says them, inside
the words every call has ("alo anh ơi ... ở ngõ 5 đường Láng, nhanh giúp em"), so that a long call full of
fillers and addresses is not mistaken for the everyday texts of `none`.

Nothing here is an evaluation set: tests/eval/ is kept out of training, and `intake eval` refuses a file that
shares texts with the corpus.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from intake.core.incident_types import AGENCY_PREFIX, INCIDENT_TYPES, NONE_LABEL, label_agency
from intake.core.model import AGENCIES, Category
from intake.core.textnorm import fold, folded_words, nfc

__all__ = ["AGENCY_LABELS", "NONE_LABEL", "Example", "agency_label", "corpus", "label_agency"]

CORPUS_DIR: Final = Path(__file__).with_name("corpus")
#: Labels for examples that name only an agency (a call-taker's decision).
AGENCY_LABELS: Final = tuple(f"{AGENCY_PREFIX}{a.value}" for a in AGENCIES)

# Common SMS abbreviations of Vietnamese words (folded word → its short form).
_SHORT: Final = {"khong": "ko", "nguoi": "ng", "duoc": "dc", "benh vien": "bv", "cap cuu": "cc", "gi": "j",
                 "roi": "r", "biet": "bit", "voi": "vs", "truoc": "trc"}
_SHORT_RE: Final = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SHORT), key=len, reverse=True)) + r")\b")
_VI_LETTERS: Final = re.compile(r"[ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]")


# The words around a report that say nothing about what happened (a greeting, a plea, a place).
_OPENINGS: Final = ("alo", "alo anh ơi", "dạ em báo", "ơi các anh ơi", "cho tôi báo", "dạ alo tổng đài ơi",
                    "chị ơi", "anh ơi cứu với", "em ở", "tôi gọi báo là")
_CLOSINGS: Final = ("ở số 12 ngõ 34 phố huế", "ở ngõ 5 đường láng", "gần chợ hôm", "nhanh giúp em với",
                    "anh ơi", "đến nhanh lên", "ở phường kim liên", "tầng 3 chung cư", "rồi", "ạ",
                    "ở đầu ngõ nhà tôi", "các anh đến ngay đi")


def _fragments(text: str) -> list[str]:
    """Two short pieces (one to three words) of an everyday text: "tôi", "bố tôi", "đến mau" say nothing
    alone, and the model must learn that as well as what a whole sentence says."""
    words = text.split()
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    out = []
    for n in (1 + h % 3, 1 + (h // 7) % 3):
        if len(words) > n:
            start = (h // 11) % (len(words) - n + 1)
            out.append(" ".join(words[start:start + n]))
            h //= 13
    return out


def _in_a_call(text: str) -> str:
    """The text as a caller says it: one opening and one closing, chosen by the text (the same every time)."""
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return f"{_OPENINGS[h % len(_OPENINGS)]} {text} {_CLOSINGS[(h // 97) % len(_CLOSINGS)]}"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str  # a kind of INCIDENT_TYPES, or agency:<category>
    source: str  # where it came from: "registry:FSTRU", "terms", "icd10cm:R55", "store:report:12", ...
    lang: str = ""  # 'vi' | 'en' | '' (not known)


def agency_label(category: Category) -> str:
    return f"{AGENCY_PREFIX}{category.value}"


def is_vietnamese(text: str) -> bool:
    return bool(_VI_LETTERS.search(nfc(text).lower()))


def sms_forms(text: str) -> list[str]:
    """How a Vietnamese text also arrives: without diacritics, and abbreviated."""
    bare = folded_words(text)
    short = _SHORT_RE.sub(lambda m: _SHORT[m.group()], bare)
    return [t for t in dict.fromkeys((bare, short)) if t and t != nfc(text).lower()]


def _carriers() -> Iterator[Example]:
    for text in (*_OPENINGS, *_CLOSINGS):
        yield Example(text, NONE_LABEL, "carrier", "vi")


def _types() -> Iterator[Example]:
    for kind, t in INCIDENT_TYPES.items():
        for text in t.registry_text.split("; "):
            yield Example(text, kind, f"registry:{t.registry}", "en")
        yield Example(t.label_en, kind, "labels", "en")
        yield Example(t.label, kind, "labels", "vi")


def _terms() -> Iterator[Example]:
    text = resources.files("intake.core").joinpath("data/classify_terms.toml").read_text(encoding="utf-8")
    for group in tomllib.loads(text).get("group", []):
        kind = group.get("kind")
        if kind not in INCIDENT_TYPES or group.get("neutral") or group.get("false_alarm"):
            continue
        if float(group.get("weight", 0)) < 1.0:
            continue  # context words ("đường", "xe") say little alone
        for lang in ("vi", "en"):
            for phrase in group.get(lang, []):
                yield Example(phrase, kind, "terms", lang)


def read_tsv(path: Path) -> Iterator[Example]:
    """A corpus file: header `text, kind, source`; the kind must be known."""
    with path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
            kind = (row.get("kind") or "").strip()
            text = (row.get("text") or "").strip()
            if not text:
                continue
            if kind not in INCIDENT_TYPES and kind not in AGENCY_LABELS and kind != NONE_LABEL:
                raise ValueError(f"{path.name}:{n}: unknown kind {kind!r}")
            lang = "vi" if path.name.startswith("vi_") else "en" if path.name.startswith("en_") else ""
            yield Example(text, kind, (row.get("source") or path.stem).strip(), lang)


def corpus(extra: Iterable[Example] = (), directory: Path = CORPUS_DIR, augment: bool = True,
           builtin: bool = True) -> list[Example]:
    """Every example, deduplicated on (folded text, label), with the SMS forms of Vietnamese texts.
    `builtin=False`: only the folder's files and `extra` (the registry, tables and carriers left out)."""
    base: list[Example] = [*_types(), *_terms(), *_carriers()] if builtin else []
    for path in sorted(directory.glob("*.tsv")):
        base.extend(read_tsv(path))
    base.extend(extra)
    out: dict[tuple[str, str], Example] = {}
    for ex in base:
        out.setdefault((fold(ex.text).strip(), ex.label), ex)
        if augment and (ex.lang == "vi" or is_vietnamese(ex.text)):
            for form in sms_forms(ex.text):
                out.setdefault((form, ex.label), Example(form, ex.label, ex.source + "+sms", "vi"))
            if ex.label != NONE_LABEL:
                call = _in_a_call(ex.text)
                out.setdefault((fold(call), ex.label), Example(call, ex.label, ex.source + "+call", "vi"))
        if augment and ex.label == NONE_LABEL:
            for piece in _fragments(ex.text):
                out.setdefault((fold(piece), ex.label), Example(piece, ex.label, ex.source + "+piece", ex.lang))
    return list(out.values())


def write_tsv(examples: Iterable[Example], path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["text", "kind", "source"])
    for ex in examples:
        w.writerow([ex.text, ex.label, ex.source])
    path.write_text(buf.getvalue(), encoding="utf-8")
