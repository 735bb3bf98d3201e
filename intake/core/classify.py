"""Which agency does a report need? A pure, explainable classifier.

Inputs: the report's text (Vietnamese with or without accents, SMS spellings, English) and three
priors: the number dialled (113 / 114 / 115), an alarm panel's event code (Contact ID, SIA) and
the category the reporter chose in the app. Output: a `Classification` whose `evidence` lists
every reason, including the ones that did not count (negated phrases).

Data (read once at import, from ``intake/core/data``):
  classify_terms.toml  phrases per incident kind, negators, SMS aliases, ambiguous folded words
  routing.toml         incident kind → primary agency + agencies also notified
  device_codes.toml    Contact ID / SIA event codes, AI camera detections → category, kind, event type

Text matching: the text is split into words and folded exactly as `textnorm.folded_words` does;
phrases are matched on whole folded words, without overlap: the reading that covers the most
words with the fewest phrases, then the heaviest, wins ("đâm xe" is a crash, its "đâm" is not
also a stabbing; "người chết đuối" is a drowning, not "người chết").
Folding merges distinct words ("cháy" fire / "chạy" run / "chảy" flow); for the folded words
listed as ambiguous, the word as typed must be the table's spelling or carry no diacritics at
all; typed bare, the phrase's (lower) `unaccented_weight` applies. A phrase is negated when a
negator of its language ("không", "chưa", "ko", "no", "not", ...) ends at most
`negation_window` words before it in the same clause (punctuation and "nhưng" / "but" end a
clause). A false-alarm phrase ("báo nhầm", "false alarm") negates the rest of its sentence and
alarm phrases anywhere. Negated evidence is listed with ``negated=True`` and does not count.

Scores. Each incident kind scores its strongest phrase fully and every further distinct phrase
a quarter: k = w_max + 0.25 × Σ other weights. Phrases of no kind (generic words: "công an",
"ambulance") form one such group per category. Per category c:

    scene_c = Σ scores of c's scene kinds and generic words   (a fire, a crash, a crime, ...)
    cond_c  = Σ scores of c's condition kinds                 (unconscious, bleeding, burns, ...)
    prior_c = hint 3.0 + device alarm 4.0 (restoral 1.5, trouble 1.0) + dialled 2.0
    lead_c  = scene_c + prior_c + cond_c, but without cond_c when the report names a scene
              (some scene kind scores >= 1): casualties follow the scene, they do not lead it

The winner W has the highest lead (ties: fire, police, medical). Then

    S_W        = lead_W (+ cond_W if left out of it)  (the winner's own conditions support it)
    rival      = Σ_{c ≠ W} lead_c × d_c,  d_c = 0.5 when c is an agency the winner's kinds notify
                 anyway (medical dialled for a crash: expected, half a rival), else 1
    share      = S_W / (S_W + rival)                  how one-sided the evidence is
    strength   = 1 − exp(−S_W / 2)                   how much evidence there is
    confidence = share × strength                     in 0..1

One decisive phrase (3.0) alone gives 0.78, a dialled 114 alone 0.63, a bare ambiguous word
(1.0) alone 0.39, "cháy nhà" dialled to 115 0.58.

Below `threshold` the category is UNKNOWN and `needs_review` is set; the evidence and kinds are
still returned, `also_notify` is then empty (nothing is routed without a person). `kinds` lists
the incident kinds scoring at least 1.0, strongest first; `also_notify` is every agency that the
kinds scoring at least 2.0 route to (primary or also), less the winner: another agency is only
called out on solid evidence, not on a bare ambiguous word ("ten cuop chay roi": the robber ran
away, or is something burning?).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Generic, Literal, TypeVar, cast

from intake.core import incident_types
from intake.core.incident_types import INCIDENT_TYPES, IncidentType, label_agency
from intake.core.model import AGENCIES, Category, Classification, Evidence
from intake.core.phone import dialled_line
from intake.core.textmodel import TextModel, default_model
from intake.core.textnorm import fold, nfc

__all__ = ["ROUTES", "THRESHOLD", "DeviceCode", "Route", "classify", "device_code_info"]

#: Default confidence below which a person must decide.
THRESHOLD: float = 0.5

HINT_WEIGHT: Final = 3.0
DIALLED_WEIGHT: Final = 2.0
DEVICE_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {"alarm": 4.0, "restoral": 1.5, "trouble": 1.0, "test": 0.0, "heartbeat": 0.0, "other": 0.0}
)
STRENGTH_SCALE: Final = 2.0  # τ in strength = 1 − exp(−S/τ)
COMPANION_DISCOUNT: Final = 0.5
KIND_MIN: Final = 1.0  # a kind is reported when its score reaches this
NOTIFY_MIN: Final = 2.0  # ... and its agencies are notified when it reaches this
MODEL_WEIGHT: Final = 5.0  # the text model's p for an agency counts as a phrase of weight MODEL_WEIGHT × p
MODEL_MIN_P: Final = 0.3  # an agency the model gives less is not evidence
#: Words that say nothing about what happened (folded): pronouns, kin, particles, greetings, prepositions.
_SMALL_TALK: Final = frozenset("""
toi tui em anh chi ong ba bo me con chau no ho minh chung ta ay oi alo a da vang u o nhe nha nhi voi va la thi
ma co khong ko k chua da dang se roi nua cung nay kia do day tai trong ngoai tren duoi tu den len xuong ra vao
cho cua thoi mau nhanh qua lam rat hello hi hey xin chao cam on the an is are was there here it this that i you
he she we they my your please help s ok okay oh yes no bi duoc dc gi j ai sao nhu nao lai di ve mot cai
""".split())

EventType = Literal["alarm", "restoral", "test", "trouble", "heartbeat", "other"]
_EVENT_TYPES: Final = frozenset(DEVICE_WEIGHTS)
_DIALLED: Final[Mapping[str, Category]] = MappingProxyType(
    {"113": Category.POLICE, "114": Category.FIRE, "115": Category.MEDICAL}
)


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What an alarm panel's event code means."""

    code: str  # Contact ID: qualifier + event, 4 digits ('1110', '3110'); SIA: two letters ('FA')
    scheme: str  # 'CID' | 'SIA' | 'CAM'
    category: Category | None  # None: the event says nothing about an emergency (tests, troubles)
    kind: str | None  # incident kind (routing.toml) or a device-side kind ('test', 'power', ...)
    event_type: EventType  # only 'alarm' opens an incident
    description: str


# ------------------------------------------------------------------------------ data loading ---


def _read_toml(name: str) -> dict[str, Any]:
    text = resources.files("intake.core").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


_agency = incident_types.agency

#: The routing table: incident kind → agencies (and its registry type, labels, matching parameters).
ROUTES: Final = INCIDENT_TYPES
Route = IncidentType


# ------------------------------------------------------------------------------ tokenising -----

_SEGMENT: Final = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")
_ASCII_WORD: Final = re.compile(r"[0-9a-z]+")
_CLAUSE_END: Final = frozenset('.,;:!?…()[]{}|/"“”–—\n\r')
_SENTENCE_END: Final = frozenset(".!?…\n\r")


@lru_cache(maxsize=16384)
def _fold_segment(seg: str) -> tuple[tuple[str, ...], bool | None]:
    """A typed segment's folded words and whether it was typed bare (no diacritics); None when
    it does not fold to exactly one a-z/0-9 word (letters folding cannot map to a-z)."""
    folded = fold(seg)
    if _ASCII_WORD.fullmatch(folded):
        return (folded,), seg.replace("đ", "d") == folded
    return tuple(_ASCII_WORD.findall(folded)), None


@dataclass(frozen=True, slots=True)
class _Tok:
    word: str  # folded
    orig: str  # as typed: NFC, lower case
    bare: bool  # typed without diacritics (đ aside)
    src: int  # index of the folded word of the text it comes from (aliases expand one into several)
    clause: int
    sentence: int


def _split(text: str) -> list[_Tok]:
    """The words of `text`, folded as textnorm.tokens folds them, with their spelling as typed."""
    low = nfc(text).lower()
    out: list[_Tok] = []
    clause = sentence = 0
    pos = 0
    for m in _SEGMENT.finditer(low):
        start = m.start()
        if out and (start - pos != 1 or low[pos] != " "):  # a lone space is the common gap
            gap = low[pos:start]
            if not _SENTENCE_END.isdisjoint(gap):
                sentence += 1
                clause += 1
            elif not _CLAUSE_END.isdisjoint(gap):
                clause += 1
        pos = m.end()
        seg = m.group()
        words, bare = _fold_segment(seg)
        if bare is not None:
            out.append(_Tok(words[0], seg, bare, len(out), clause, sentence))
        else:
            for part in words:
                out.append(_Tok(part, part, True, len(out), clause, sentence))
    return out


# --------------------------------------------------------------------------- phrase matching ---

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class _Phrase(Generic[P]):
    words: tuple[str, ...]  # folded
    accented: tuple[str, ...]  # as written in the table, NFC lower case
    ambiguous: tuple[int, ...]  # positions whose folded word is ambiguous
    payload: P


# first word → second word (None: one-word phrases) → phrases, longest first
_Index = dict[str, dict[str | None, tuple[_Phrase[P], ...]]]
_Match = tuple[int, int, P, bool]  # start, end (exclusive), payload, typed bare


def _accent(phrase: _Phrase[P], toks: Sequence[_Tok], i: int) -> bool | None:
    """None: an ambiguous word was typed as another word; True: typed bare; False: as written."""
    bare = False
    for j in phrase.ambiguous:
        tok = toks[i + j]
        if tok.orig == phrase.accented[j]:
            continue
        if tok.bare:
            bare = True
            continue
        return None
    return bare


def _scan(
    toks: Sequence[_Tok],
    words: tuple[str, ...],
    index: _Index[P],
    weigh: Callable[[P, bool], float | None],
) -> list[_Match[P]]:
    """Non-overlapping matches of the index's phrases: the segmentation that covers the most
    words, then with the fewest phrases (a long phrase beats its pieces), then the heaviest.

    So "người chết đuối" reads as "chết đuối" (drowned, 3.0) rather than "người chết" (a dead
    person, 2.0), and "bị đâm chém" stays one phrase instead of "bị đâm" + "chém".
    `weigh` gives a phrase's weight as found (typed bare or not), None to refuse it.
    """
    n = len(words)
    # best[i]: (words covered, −phrases, weight) of the best segmentation of words[i:];
    # take[i]: the phrase that segmentation starts with at i (None: word i is skipped)
    best: list[tuple[int, int, float]] = [(0, 0, 0.0)] * (n + 1)
    take: list[_Match[P] | None] = [None] * (n + 1)
    none: tuple[_Phrase[P], ...] = ()
    for i in range(n - 1, -1, -1):
        top: tuple[int, int, float] | None = None
        table = index.get(words[i])
        if table is None:
            candidates = none
        elif i + 1 < n and words[i + 1] in table:
            candidates = table[words[i + 1]] + table.get(None, none)
        else:
            candidates = table.get(None, none)
        for phrase in candidates:
            end = i + len(phrase.words)
            if end > n or words[i:end] != phrase.words:
                continue
            bare = _accent(phrase, toks, i)
            if bare is None:
                continue
            weight = weigh(phrase.payload, bare)
            if weight is None:
                continue
            covered, count, total = best[end]
            option = (covered + end - i, count - 1, total + weight)
            if top is None or option > top:  # equal: the table's first phrase stays
                top = option
                take[i] = (i, end, phrase.payload, bare)
        if top is None or top < best[i + 1]:  # equal: the phrase starting here (leftmost) wins
            best[i] = best[i + 1]
            take[i] = None
        else:
            best[i] = top
    out: list[_Match[P]] = []
    i = 0
    while i < n:
        hit = take[i]
        if hit is None:
            i += 1
        else:
            out.append(hit)
            i = hit[1]
    return out


class _IndexBuilder(Generic[P]):
    def __init__(self, ambiguous: frozenset[str], what: str) -> None:
        self._ambiguous = ambiguous
        self._what = what
        self._phrases: list[_Phrase[P]] = []
        self._seen: dict[tuple[str, ...], list[_Phrase[P]]] = {}

    def add(self, text: str, payload: P) -> None:
        toks = _split(text)
        if not toks:
            raise ValueError(f"{self._what}: phrase {text!r} has no words")
        words = tuple(t.word for t in toks)
        accented = tuple(t.orig for t in toks)
        ambiguous = tuple(j for j, w in enumerate(words) if w in self._ambiguous)
        phrase = _Phrase(words, accented, ambiguous, payload)
        for other in self._seen.get(words, ()):
            if all(accented[j] == other.accented[j] for j in ambiguous):
                raise ValueError(f"{self._what}: phrase {text!r} is listed twice")
        self._seen.setdefault(words, []).append(phrase)
        self._phrases.append(phrase)

    def build(self) -> _Index[P]:
        index: dict[str, dict[str | None, list[_Phrase[P]]]] = {}
        for phrase in self._phrases:
            second = phrase.words[1] if len(phrase.words) > 1 else None
            index.setdefault(phrase.words[0], {}).setdefault(second, []).append(phrase)
        # longest first; list.sort is stable, so equal lengths keep the table's order (which wins
        # a tie: the first phrase with the best score is kept)
        return {
            first: {second: tuple(sorted(ps, key=lambda p: -len(p.words))) for second, ps in table.items()}
            for first, table in index.items()
        }


# ------------------------------------------------------------------------------ term tables ----

Role = Literal["term", "neutral", "false_alarm"]


@dataclass(frozen=True, slots=True)
class _Term:
    category: Category  # UNKNOWN for neutral phrases and false alarms of no category
    kind: str | None
    weight: float
    unaccented_weight: float
    lang: str
    role: Role


@dataclass(frozen=True, slots=True)
class _Neg:
    role: Literal["negator", "neutral", "breaker"]
    lang: str
    strict: bool  # only counts typed with its accents


@dataclass(frozen=True, slots=True)
class _Tables:
    terms: _Index[_Term]
    negation: _Index[_Neg]
    aliases: Mapping[str, tuple[tuple[str, str], ...]]  # typed word → (folded, accented) words
    window: int
    same_kind_factor: float
    false_alarm_kinds: frozenset[str]


def _load_tables() -> _Tables:
    data = _read_toml("classify_terms.toml")
    ambiguous = frozenset(str(w) for w in data["ambiguous"]["tokens"])
    terms: _IndexBuilder[_Term] = _IndexBuilder(ambiguous, "classify_terms")
    for n, group in enumerate(data["group"]):
        where = f"classify_terms group {n + 1}"
        role: Role = "term"
        if group.get("neutral"):
            role = "neutral"
        elif group.get("false_alarm"):
            role = "false_alarm"
        kind = group.get("kind")
        if kind is not None:
            if kind not in ROUTES:
                raise ValueError(f"{where}: kind {kind!r} is not in routing.toml")
            category = ROUTES[kind].primary
        elif "category" in group:
            category = _agency(group["category"], where)
        elif role == "term":
            raise ValueError(f"{where}: a group needs a kind or a category")
        else:
            category = Category.UNKNOWN
        weight = float(group.get("weight", 0.0))
        unaccented = float(group.get("unaccented_weight", weight))
        if role == "false_alarm":
            kind = "false_alarm"
        for lang in ("vi", "en"):
            for text in group.get(lang, ()):
                terms.add(text, _Term(category, kind, weight, unaccented, lang, role))

    neg = data["negation"]
    negation: _IndexBuilder[_Neg] = _IndexBuilder(ambiguous, "classify_terms negation")
    lists: list[tuple[str, Literal["negator", "neutral", "breaker"], str, bool]] = [
        ("vi", "negator", "vi", False),
        ("vi_strict", "negator", "vi", True),
        ("en", "negator", "en", False),
        ("neutral_vi", "neutral", "vi", False),
        ("neutral_en", "neutral", "en", False),
        ("breakers_vi", "breaker", "vi", False),
        ("breakers_vi_strict", "breaker", "vi", True),
        ("breakers_en", "breaker", "en", False),
    ]
    for key, neg_role, lang, strict in lists:
        for text in neg.get(key, ()):
            negation.add(text, _Neg(neg_role, lang, strict))

    aliases: dict[str, tuple[tuple[str, str], ...]] = {}
    for typed, meant in data.get("aliases", {}).items():
        toks = _split(meant)
        aliases[nfc(typed).lower()] = tuple((t.word, t.orig) for t in toks)

    settings = data.get("settings", {})
    return _Tables(
        terms=terms.build(),
        negation=negation.build(),
        aliases=MappingProxyType(aliases),
        window=int(settings.get("negation_window", 3)),
        same_kind_factor=float(settings.get("same_kind_factor", 0.25)),
        false_alarm_kinds=frozenset(data.get("false_alarm", {}).get("negates_kinds", ())),
    )


_TABLES: Final = _load_tables()


# ------------------------------------------------------------------------------ device codes ---


@dataclass(frozen=True, slots=True)
class _DeviceRow:
    category: Category | None
    kind: str | None
    event_type: EventType
    description: str


def _device_row(row: Mapping[str, Any], where: str) -> _DeviceRow:
    event_type = str(row["type"])
    if event_type not in _EVENT_TYPES:
        raise ValueError(f"{where}: unknown event type {event_type!r}")
    category = _agency(row["category"], where) if "category" in row else None
    kind = row.get("kind")
    return _DeviceRow(
        category, None if kind is None else str(kind), cast(EventType, event_type), str(row["description"])
    )


_CidRanges = tuple[tuple[int, int, _DeviceRow], ...]


def _load_devices(
) -> tuple[Mapping[str, _DeviceRow], _CidRanges, Mapping[str, _DeviceRow], Mapping[str, _DeviceRow]]:
    data = _read_toml("device_codes.toml")
    cid = {str(code): _device_row(row, f"device_codes cid {code}") for code, row in data["cid"].items()}
    ranges = tuple(
        (int(r["from"]), int(r["to"]), _device_row(r, f"device_codes cid_ranges {r['from']}"))
        for r in data.get("cid_ranges", ())
    )
    sia = {str(c).upper(): _device_row(row, f"device_codes sia {c}") for c, row in data["sia"].items()}
    camera = {str(c).upper(): _device_row(row, f"device_codes camera {c}")
              for c, row in data.get("camera", {}).items()}
    return MappingProxyType(cid), ranges, MappingProxyType(sia), MappingProxyType(camera)


_CID, _CID_RANGES, _SIA, _CAMERA = _load_devices()
_CID_SCHEMES: Final = frozenset({"CID", "CONTACTID", "CONTACT-ID", "CONTACT_ID", "ADEMCO"})
_SIA_SCHEMES: Final = frozenset({"SIA", "DC09", "DC-09", "SIA-DC09", "SIA-DC-09", "SIA-DCS"})
_CAMERA_SCHEMES: Final = frozenset({"CAM", "CAMERA"})
_CID_BODY: Final = re.compile(r"([136ER])?(\d{3})(?:[\s\-/|].*)?")
_SIA_BODY: Final = re.compile(r"(?:[A-Z]{1,3}\d*/)*([A-Z]{2}|NULL)[\s\d]*")
_QUALIFIER: Final[Mapping[str, str]] = MappingProxyType({"E": "1", "R": "3"})


def device_code_info(code: str) -> DeviceCode | None:
    """The meaning of 'CID:1110' / 'CID:E110' / 'CID:110' / 'SIA:FA' / 'CAM:smoke'; None when unknown."""
    scheme, sep, body = code.partition(":")
    if not sep:
        return None
    scheme = scheme.strip().upper()
    body = body.strip().upper()
    if scheme in _CID_SCHEMES:
        m = _CID_BODY.fullmatch(body)
        if m is None:
            return None
        qualifier = _QUALIFIER.get(m.group(1) or "1", m.group(1) or "1")
        event = m.group(2)
        row = _CID.get(event)
        if row is None:
            number = int(event)
            row = next((r for lo, hi, r in _CID_RANGES if lo <= number <= hi), None)
            if row is None:
                return None
        event_type: EventType = row.event_type
        description = row.description
        if qualifier == "3":
            if event_type in ("alarm", "trouble"):
                event_type = "restoral"
                description = f"{description} (restore)"
            elif event_type == "other":
                description = f"{description} (close / arm)"
        elif qualifier == "6":
            description = f"{description} (previously reported, still present)"
        return DeviceCode(qualifier + event, "CID", row.category, row.kind, event_type, description)
    if scheme in _SIA_SCHEMES:
        m = _SIA_BODY.fullmatch(body)
        if m is None:
            return None
        row = _SIA.get(m.group(1))
        if row is None:
            return None
        return DeviceCode(m.group(1), "SIA", row.category, row.kind, row.event_type, row.description)
    if scheme in _CAMERA_SCHEMES:
        row = _CAMERA.get(body)
        if row is None:
            return None
        return DeviceCode(body, "CAM", row.category, row.kind, row.event_type, row.description)
    return None


# ------------------------------------------------------------------------------ classifying ----


@dataclass(slots=True)
class _Hit:
    start: int
    end: int
    term: _Term
    weight: float
    text: str
    negated: bool = False
    bare: bool = False  # an ambiguous word of it was typed without diacritics ("chay": fire, or running?)


def _canonical(raw: Sequence[_Tok]) -> list[_Tok]:
    """Expand SMS aliases ('ko' → 'không'); expansions count as typed with their accents."""
    aliases = _TABLES.aliases
    out: list[_Tok] = []
    for tok in raw:
        expansion = aliases.get(tok.orig)
        if expansion is None:
            out.append(tok)
        else:
            out.extend(_Tok(w, a, False, tok.src, tok.clause, tok.sentence) for w, a in expansion)
    return out


def _text_hits(text: str) -> tuple[list[_Hit], str]:
    """The phrases found (negated ones marked), and the words left for the text model: the text without
    negators, negated and neutral phrases, and phrases whose ambiguous word was typed bare. What the tables
    hold doubtful stays doubtful ("không có cháy", a bare "chay": fire, or running?). Nothing is left after
    a false alarm."""
    raw = _split(text)
    if not raw:
        return [], ""
    toks = _canonical(raw)
    words = tuple(t.word for t in toks)
    raw_words = [t.word for t in raw]

    def weigh_term(term: _Term, bare: bool) -> float | None:
        if term.role != "term":
            return 0.0
        weight = term.unaccented_weight if bare else term.weight
        return weight if weight > 0 else None

    hits: list[_Hit] = []
    dropped: set[int] = set()  # raw word positions the model does not see

    def drop(start: int, end: int) -> None:
        dropped.update(range(toks[start].src, toks[end - 1].src + 1))

    def left() -> str:
        return " ".join(t.orig for i, t in enumerate(raw) if i not in dropped)

    for start, end, term, bare in _scan(toks, words, _TABLES.terms, weigh_term):
        if term.role == "neutral":
            drop(start, end)
            continue
        phrase = " ".join(raw_words[toks[start].src : toks[end - 1].src + 1])
        weight = term.unaccented_weight if bare else term.weight
        hits.append(_Hit(start, end, term, weight, phrase, negated=term.role == "false_alarm", bare=bare))
    if not hits:
        return hits, left()

    # Negation: negators outside the matched phrases ("không thở được" is a phrase, not a negation).
    covered = bytearray(len(toks))
    for hit in hits:
        covered[hit.start : hit.end] = b"\x01" * (hit.end - hit.start)
    negs = _scan(toks, words, _TABLES.negation, lambda n, bare: None if bare and n.strict else 0.0)
    scope = [t.clause for t in toks]
    breaks = 0
    breaker_starts = {s for s, _, n, _ in negs if n.role == "breaker"}
    for i in range(len(toks)):
        breaks += i in breaker_starts
        scope[i] += breaks
    negators: list[tuple[int, str]] = []
    for start, end, n, _ in negs:
        if n.role != "negator" or covered[start]:
            continue
        drop(start, end)  # "không" alone says nothing about what happened
        while covered[end - 1]:  # "không có" before the phrase "có cháy": the negator is "không"
            end -= 1
        negators.append((end, n.lang))
    window = _TABLES.window
    false_alarms: list[_Hit] = []
    for hit in hits:
        s = hit.start
        negated = any(
            lang == hit.term.lang and end <= s and s - end <= window and scope[end - 1] == scope[s]
            for end, lang in negators
        )
        if hit.term.role == "false_alarm":
            if not negated:
                false_alarms.append(hit)
        elif negated:
            hit.negated = True
    for alarm in false_alarms:
        sentence = toks[alarm.start].sentence
        for hit in hits:
            if toks[hit.start].sentence == sentence or hit.term.kind in _TABLES.false_alarm_kinds:
                hit.negated = True
    if false_alarms:
        return hits, ""  # a false alarm, a test, a wrong number: nothing is left to read
    for hit in hits:
        if hit.negated or hit.bare:
            drop(hit.start, hit.end)  # negated, or a bare word the tables hold ambiguous: not the model's to guess
    return hits, left()


def _priors(
    dialled_number: str | None, device_event_code: str | None, category_hint: Category | None
) -> tuple[list[Evidence], list[tuple[str, float]]]:
    """Prior evidence, and the incident kinds a device alarm names (with their weight)."""
    evidence: list[Evidence] = []
    kinds: list[tuple[str, float]] = []
    if category_hint is not None and category_hint in AGENCIES:
        evidence.append(Evidence(f"hint {category_hint.value}", category_hint, HINT_WEIGHT, "hint"))
    if device_event_code:
        info = device_code_info(device_event_code)
        if info is not None:
            term = f"{info.scheme} {info.code}"
            weight = DEVICE_WEIGHTS[info.event_type]
            if info.category is not None and weight > 0:
                evidence.append(Evidence(term, info.category, weight, "device", kind=info.kind))
                if info.event_type == "alarm" and info.kind is not None and info.kind in ROUTES:
                    kinds.append((info.kind, weight))
            else:  # tests, heartbeats, troubles of no category: listed, weightless
                evidence.append(Evidence(term, Category.UNKNOWN, 0.0, "device", kind=info.kind))
    code = dialled_line(dialled_number)  # '114', '+84 114', '0114' → '114'; 112 gives no prior
    if code is not None and code in _DIALLED:
        evidence.append(Evidence(f"dialled {code}", _DIALLED[code], DIALLED_WEIGHT, "dialled"))
    return evidence, kinds


def classify(
    text: str,
    *,
    dialled_number: str | None = None,
    device_event_code: str | None = None,
    category_hint: Category | None = None,
    threshold: float = THRESHOLD,
    model: TextModel | None | Literal["default"] = "default",
) -> Classification:
    """Classify one report; see the module docstring for the scoring. `model`: the text model to consult
    (textmodel.default_model() unless given; None: the term tables alone)."""
    prior_evidence, device_kinds = _priors(dialled_number, device_event_code, category_hint)
    hits, left = _text_hits(text) if text else ([], "")
    rules = _score(prior_evidence, device_kinds, hits, [], threshold)
    if model == "default":
        model = default_model()
    if model is None or not _has_content(left):
        return rules
    if rules.category != Category.UNKNOWN and any(
            not h.negated and h.weight > 0 and h.term.category == rules.category for h in hits):
        return rules  # the term tables named it: their reading stands, negations and all
    said = {h.term.category for h in hits if not h.negated and h.weight > 0}
    if any(ev.weight > 0 and ev.category not in said for ev in prior_evidence) and said:
        return rules  # the words and the number dialled, the device or the reporter's choice disagree: a person
    model_evidence = _model_evidence(model, left)
    if not model_evidence:
        return rules
    return _score(prior_evidence, device_kinds, hits, model_evidence, threshold)


def _has_content(text: str) -> bool:
    """Whether a text has a word beyond pronouns, particles and greetings ("tôi", "ơi", "hello"): the model
    is not asked about small talk, where it can only guess."""
    return any(w not in _SMALL_TALK for w in fold(text).split())


def _score(prior_evidence: list[Evidence], device_kinds: list[tuple[str, float]], hits: list[_Hit],
           model_evidence: list[tuple[Evidence, float]], threshold: float) -> Classification:
    scene = dict.fromkeys(AGENCIES, 0.0)
    cond = dict.fromkeys(AGENCIES, 0.0)
    prior = dict.fromkeys(AGENCIES, 0.0)
    for ev in prior_evidence:
        if ev.category in prior:
            prior[ev.category] += ev.weight

    # Per (category, kind): distinct phrases, each at its best weight.
    groups: dict[tuple[Category, str | None], dict[str, float]] = {}
    for hit in hits:
        if hit.negated or hit.weight <= 0 or hit.term.category not in prior:
            continue
        phrases = groups.setdefault((hit.term.category, hit.term.kind), {})
        phrases[hit.text] = max(phrases.get(hit.text, 0.0), hit.weight)
    kind_scores: dict[str, float] = {}
    for (category, kind), phrases in groups.items():
        weights = sorted(phrases.values(), reverse=True)
        score = weights[0] + _TABLES.same_kind_factor * sum(weights[1:])
        (cond if kind is not None and ROUTES[kind].condition else scene)[category] += score
        if kind is not None:
            kind_scores[kind] = kind_scores.get(kind, 0.0) + score
    for kind, weight in device_kinds:
        kind_scores[kind] = kind_scores.get(kind, 0.0) + weight
    for ev, kind_weight in model_evidence:
        (cond if ev.kind is not None and ROUTES[ev.kind].condition else scene)[ev.category] += ev.weight
        if ev.kind is not None and kind_weight > 0:
            kind_scores[ev.kind] = kind_scores.get(ev.kind, 0.0) + kind_weight
    scene_led = any(s >= KIND_MIN and not ROUTES[k].condition for k, s in kind_scores.items())
    lead = {c: scene[c] + prior[c] + (0.0 if scene_led else cond[c]) for c in AGENCIES}

    evidence = _evidence(prior_evidence, hits) + tuple(ev for ev, _ in model_evidence)
    # sorted() is stable: equal scores keep the order the kinds were first seen in
    kinds = tuple(k for k, s in sorted(kind_scores.items(), key=lambda ks: -ks[1]) if s >= KIND_MIN)

    winner = max(AGENCIES, key=lambda c: (lead[c], -AGENCIES.index(c)))
    if lead[winner] <= 0:
        return Classification(Category.UNKNOWN, 0.0, evidence, needs_review=True, kinds=kinds)
    top = lead[winner] + (cond[winner] if scene_led else 0.0)
    companions = {a for k in kind_scores if ROUTES[k].primary == winner for a in ROUTES[k].also}
    rival = sum(s * (COMPANION_DISCOUNT if c in companions else 1.0) for c, s in lead.items() if c != winner)
    confidence = round((top / (top + rival)) * (1.0 - math.exp(-top / STRENGTH_SCALE)), 3)
    if confidence < threshold:
        return Classification(Category.UNKNOWN, confidence, evidence, needs_review=True, kinds=kinds)
    routed = {a for k in kinds if kind_scores[k] >= NOTIFY_MIN for a in (ROUTES[k].primary, *ROUTES[k].also)}
    also_notify = tuple(a for a in AGENCIES if a in routed and a != winner)
    return Classification(winner, confidence, evidence, kinds=kinds, also_notify=also_notify)


def _model_evidence(model: TextModel, text: str) -> list[tuple[Evidence, float]]:
    """The text model's reading, as evidence: for each agency its kinds (and agency-only labels) add up to
    at least MODEL_MIN_P, one item weighted MODEL_WEIGHT × that sum, named after the agency's likeliest kind,
    its term the words that raised that kind most. Beside each item, what that kind itself scores
    (MODEL_WEIGHT × its own p): several close kinds of one agency ("snatching" or "theft"?) still make a
    sure agency, but only a kind the model is sure of is reported as one. The model's "none" (an everyday
    text) is no evidence at all."""
    prediction = model.predict(text, explain=())
    if prediction is None:
        return []
    by_agency: dict[Category, list[tuple[str, float]]] = {}
    for label, p in prediction.probabilities.items():
        category = label_agency(label)
        if category is not None:
            by_agency.setdefault(category, []).append((label, p))
    chosen = []
    for category, labels in by_agency.items():
        total = sum(p for _, p in labels)
        if total >= MODEL_MIN_P:
            chosen.append((category, total, *max(labels, key=lambda lp: lp[1])))
    if not chosen:
        return []
    out = []
    for category, total, label, p in chosen:
        kind = label if label in ROUTES else None
        words = " ".join(prediction.words(label)) or "…"
        out.append((Evidence(words, category, round(MODEL_WEIGHT * total, 3), "model", kind=kind),
                    MODEL_WEIGHT * p if kind is not None else 0.0))
    return out


def _evidence(priors: list[Evidence], hits: list[_Hit]) -> tuple[Evidence, ...]:
    """Priors, then the phrases in text order; a phrase repeated the same way is listed once."""
    out = list(priors)
    seen: set[tuple[str, Category, str | None, bool]] = set()
    for hit in hits:
        key = (hit.text, hit.term.category, hit.term.kind, hit.negated)
        if key in seen:
            continue
        seen.add(key)
        out.append(Evidence(hit.text, hit.term.category, hit.weight, "text", hit.negated, hit.term.kind))
    return tuple(out)
