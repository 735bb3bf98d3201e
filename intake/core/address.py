"""Find a Vietnamese address in free text and resolve it to a ward, offline.

Reports name places the way people speak: "số 12 phố Hàng Bạc, quận Hoàn Kiếm"
(the pre-July-2025 three-level form, with a district), "12 Hàng Bạc, phường
Hoàn Kiếm, Hà Nội" (the 2025 two-level form), "ngõ 45 ngách 12 Hào Nam", "hẻm
12 đường Lê Lợi, P. Bến Thành, TP.HCM", or an SMS with the accents stripped,
"so 5 ngo 10 pho Ton Duc Thang, Dong Da".

`find_address` scans the folded text (see `textnorm.fold`) for a chain of
address parts: house number, alleys (ngõ / ngách / hẻm / kiệt), street or
intersection, ward, district, province. Ward, district and province names are
only accepted when the gazetteer knows them, which keeps ordinary words out.
It returns the parts as written and the span of the original text.

`resolve` turns the parts into a place with a centroid and an accuracy radius,
using the `vietnamadminunits` parsers (LEGACY when a district is given,
FROM_2025 otherwise) and the bundled gazetteer. There is no street-level
geocoding offline: the best fix is a ward's centroid (an old ward's when the
old form names one, as those are smaller).

Never calls `vietnamadminunits.convert_address`: for divided wards it geocodes
over the network. The legacy -> 2025 mapping comes from the gazetteer instead.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intake.core import gazetteer
from intake.core.gazetteer import (
    Gazetteer,
    LegacyDistrict,
    LegacyProvince,
    LegacyWard,
    Province,
    Ward,
    name_key,
)
from intake.core.model import Location, LocationSource
from intake.core.textnorm import fold, nfc

MIN_WARD_ACCURACY_M = 150.0
MIN_DISTRICT_ACCURACY_M = 1000.0

# ---------------------------------------------------------------------------------------------
# Public results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """An address found in a text: its parts as written, and where it is in the text."""

    text: str  # the original text of the span, text[start:end]
    start: int
    end: int
    form: str  # 'legacy' (a district is given) | '2025' (ward + province, no district) | 'partial'
    house_number: str | None = None  # '12', '12A', '12/3'
    alleys: tuple[str, ...] = ()  # ('ngõ 45', 'ngách 12'): canonical type + number or name as written
    street: str | None = None  # 'Hàng Bạc' (without 'phố'), as written
    street_type: str | None = None  # 'phố' | 'đường' | 'đại lộ' | 'quốc lộ' | 'tỉnh lộ' | 'ngã tư' | ...
    cross_street: str | None = None  # the second street of an intersection
    ward: str | None = None  # 'Ô Chợ Dừa', '12' (without 'phường'), as written
    ward_type: str | None = None  # 'phường' | 'xã' | 'thị trấn' | 'đặc khu'; None when not written
    district: str | None = None
    district_type: str | None = None  # 'quận' | 'huyện' | 'thị xã' | 'thành phố'
    province: str | None = None  # 'Hà Nội', 'HCM', 'Sài Gòn', as written
    province_type: str | None = None  # 'tỉnh' | 'thành phố'


@dataclass(frozen=True, slots=True)
class ResolvedPlace:
    """Where an address is, as precisely as the gazetteer allows (a ward at best)."""

    lat: float
    lon: float
    accuracy_m: float
    level: str  # 'ward' | 'district' | 'province'
    label: str  # '12 Phố Hàng Bạc, Phường Hoàn Kiếm, Thành phố Hà Nội'
    ward: str | None = None  # 2025 ward: 'Phường Hoàn Kiếm'
    ward_code: str | None = None  # 2025 ward code
    province: str | None = None  # 2025 province: 'Thành phố Hà Nội'
    province_code: str | None = None  # 2025 province code
    legacy_ward: str | None = None  # 'Phường Hàng Bạc' when the fix is an old ward
    legacy_ward_code: str | None = None
    legacy_district: str | None = None  # 'Quận Hoàn Kiếm' when the text used the old form
    legacy_district_code: str | None = None


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")


class _Tok:
    """One token: a run of letters, a run of digits, or one other character."""

    __slots__ = ("digits", "end", "f", "glued", "o", "start", "upper", "word")

    def __init__(self, f: str, o: str, start: int, end: int, glued: bool) -> None:
        self.f = f  # folded
        self.o = o  # original (NFC)
        self.start = start  # offsets in the original text
        self.end = end
        self.glued = glued  # touches the previous token (no space between)
        self.word = f[0].isalnum()
        self.digits = f.isdigit()
        self.upper = o[:1].isupper()


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    return fold(ch)


def _tokenize(text: str) -> list[_Tok]:
    folded = fold(text)
    index: Sequence[int]
    same = len(folded) == len(text)
    if same:
        # folding never adds characters, it only drops combining marks: same length, same offsets
        index = range(len(text))
    else:  # decomposed input (NFD): map each folded character back to its original one
        parts: list[str] = []
        idx: list[int] = []
        for i, ch in enumerate(text):
            fc = _fold_char(ch)
            parts.append(fc)
            idx.extend([i] * len(fc))
        folded = "".join(parts)
        index = idx
    out: list[_Tok] = []
    for m in _TOKEN.finditer(folded):
        s = index[m.start()]
        e = index[m.end() - 1] + 1
        glued = m.start() > 0 and not folded[m.start() - 1].isspace()
        out.append(_Tok(m.group(), text[s:e] if same else nfc(text[s:e]), s, e, glued))
    return out


# ---------------------------------------------------------------------------------------------
# Keywords
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kw:
    canonical: str  # 'phường'
    words: tuple[str, ...]  # folded words: ('thi', 'tran')
    forms: tuple[str, ...]  # accepted accented forms of each word: ('thị', 'trấn'); '' = any
    dot: str = "opt"  # abbreviation dot after the last word: 'opt' | 'req' | 'no'
    orig: tuple[str, ...] = ()  # when set, the original first word must be one of these (lower case)


def _full(canonical: str, dot: str = "no") -> _Kw:
    return _Kw(canonical, tuple(fold(canonical).split()), tuple(canonical.split()), dot)


def _abbr(canonical: str, folded: str, dot: str = "opt", orig: tuple[str, ...] = ()) -> _Kw:
    return _Kw(canonical, tuple(folded.split()), ("",) * len(folded.split()), dot, orig)


_HOUSE_KW = (_full("số nhà"), _full("nhà số"), _full("số"), _abbr("số nhà", "sn"))
_ALLEY_KW = (_full("ngõ"), _full("ngách"), _full("hẻm"), _full("kiệt"))
_STREET_KW = (
    _full("phố"),
    _full("đường"),
    _full("đại lộ"),
    _full("quốc lộ"),
    _full("tỉnh lộ"),
    _abbr("quốc lộ", "ql"),
    _abbr("đường", "dg", orig=("đg",)),
    _abbr("đường", "d", dot="req", orig=("đ",)),
)
_CROSS_KW = (
    _full("ngã tư"),
    _full("ngã ba"),
    _full("ngã năm"),
    _full("ngã sáu"),
    _full("ngã bảy"),
    _full("nút giao"),
    _full("giao lộ"),
)
_WARD_KW = (
    _full("phường"),
    _full("xã"),
    _full("thị trấn"),
    _full("đặc khu"),
    _abbr("phường", "p"),
    _abbr("xã", "x", dot="req"),
    _abbr("thị trấn", "tt"),
)
_DISTRICT_KW = (
    _full("quận"),
    _full("huyện"),
    _full("thị xã"),
    _full("thành phố"),
    _abbr("quận", "q"),
    _abbr("huyện", "h", dot="req"),
    _abbr("thị xã", "tx"),
    _abbr("thành phố", "tp"),
    _abbr("thành phố", "t p"),
)
_PROVINCE_KW = (_full("tỉnh"), _full("thành phố"), _abbr("thành phố", "tp"), _abbr("thành phố", "t p"))

_KW_FIRST = frozenset(
    kw.words[0]
    for group in (_HOUSE_KW, _ALLEY_KW, _STREET_KW, _CROSS_KW, _WARD_KW, _DISTRICT_KW, _PROVINCE_KW)
    for kw in group
)

# Words that end a street name written in lower case ("... pho hang bac co nguoi nga").
_STOP: dict[str, tuple[str, ...]] = {
    w: tuple(forms.split())
    for w, forms in {
        "thi": "thì",
        "co": "có",
        "bi": "bị",
        "dang": "đang",
        "roi": "rồi",
        "nhe": "nhé",
        "nha": "nhà nha",
        "a": "ạ à",
        "oi": "ơi",
        "la": "là",
        "khong": "không",
        "ko": "ko",
        "can": "cần",
        "gap": "gấp",
        "xin": "xin",
        "giup": "giúp",
        "cuu": "cứu",
        "chay": "cháy",
        "no": "nổ",
        "o": "ở",
        "tai": "tại",
        "gan": "gần",
        "canh": "cạnh",
        "truoc": "trước",
        "sau": "sau",
        "cua": "của",
        "tren": "trên",
        "duoi": "dưới",
        "trong": "trong",
        "ngoai": "ngoài",
        "khi": "khi",
        "luc": "lúc",
        "vao": "vào",
        "ra": "ra",
        "di": "đi",
        "den": "đến",
        "ve": "về",
        "tu": "từ",
        "voi": "với",
        "va": "và",
        "cho": "cho",
        "nay": "này",
        "do": "đó",
        "kia": "kia",
        "day": "đây",
        "ma": "mà",
        "thuoc": "thuộc",
        "xe": "xe",
        "nguoi": "người",
        "vu": "vụ",
        "giao": "giao",
        "x": "x",
    }.items()
}
# Lower-case words that, right after 'phố' / 'đường', make a common noun rather than a street:
# 'phố cổ' (the old quarter), 'đường cao tốc', 'đường sắt', 'đường huyết', 'đường hô hấp', 'đường ống'.
_NOT_STREET: dict[str, dict[str, tuple[str, ...]]] = {
    kw: {w: tuple(forms.split()) for w, forms in words.items()}
    for kw, words in {
        "phố": {
            "co": "cổ",
            "bo": "bộ",
            "phuong": "phường",
            "xa": "xá",
            "huyen": "huyện",
            "nui": "núi",
            "thi": "thị",
        },
        "đường": {
            "cao": "cao",
            "sat": "sắt",
            "day": "dây",
            "ham": "hầm",
            "ray": "ray",
            "pho": "phố",
            "lang": "làng",
            "mon": "mòn",
            "huyet": "huyết",
            "ruot": "ruột",
            "tieu": "tiêu",
            "ho": "hô",
            "tho": "thở",
            "mau": "máu",
            "ong": "ống",
            "nuoc": "nước",
            "ga": "ga",
            "dien": "điện",
            "truyen": "truyền",
            "bang": "băng",
            "bo": "bộ",
            "thuy": "thủy thuỷ",
            "tau": "tàu",
            "vong": "vòng",
            "nho": "nhỏ",
            "lon": "lớn",
            "chinh": "chính",
            "dat": "đất",
            "tat": "tắt",
            "xa": "xa",
            "dai": "dài",
            "hep": "hẹp",
            "cu": "cũ",
            "moi": "mới",
            "kinh": "kính",
            "may": "may",
        },
    }.items()
}
_CROSS_SEP = {"-", "–", "—", "/", "&", "x", "+"}
_CROSS_SEP_WORDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("giao", "voi"): ("giao", "với"),
    ("giao", "cat"): ("giao", "cắt"),
    ("giao",): ("giao",),
    ("voi",): ("với",),
    ("va",): ("và",),
}
_SEPARATORS = {",", "-", "–", "—", ";", "(", ")", "."}
_AT_WORDS: dict[str, tuple[str, ...]] = {"o": ("ở",), "tai": ("tại",)}

_RANK = {"ward": 1, "district": 2, "province": 3}
_MAX_NAME_TOKENS = 8
_MAX_STREET_WORDS = 6
_MAX_STREET_WORDS_LOWER = 4
_MAX_STREET_SCAN = 8
_MAX_HOUSE_DIGITS = 5


def _form_ok(tok: _Tok, forms: Iterable[str]) -> bool:
    """The word is written without accents, or with the accents of one of `forms`."""
    o = tok.o.lower()
    if o == tok.f or o.replace("đ", "d") == tok.f:
        return True
    return o in forms


# ---------------------------------------------------------------------------------------------
# Scanner
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    kind: str  # 'house' | 'alley' | 'street' | 'cross' | 'admin'
    s: int  # token range [s, e)
    e: int
    value: str = ""
    type: str | None = None
    typed: bool = True
    levels: frozenset[str] = frozenset()
    cross: str | None = None
    level: str | None = None  # admin: the level assigned
    cut: bool = False  # street: ended by a district / province name without a comma
    strong: bool = True  # admin: unlikely to be an ordinary word ('xa lam' is 'very far', 'Xã Lâm' a commune)


class _Scanner:
    def __init__(self, text: str, gz: Gazetteer) -> None:
        self.text = text
        self.gz = gz
        self.toks = _tokenize(text)
        self.n = len(self.toks)
        has_upper = any(c.isupper() for c in text)
        has_lower = any(c.islower() for c in text)
        self.cased = has_upper and has_lower  # capitals carry information (not an all-caps or all-lower SMS)

    # -- small helpers --------------------------------------------------------------------------

    def _span(self, s: int, e: int) -> str:
        return self.text[self.toks[s].start : self.toks[e - 1].end]

    def _is(self, i: int, f: str) -> bool:
        return i < self.n and self.toks[i].f == f

    def _kw(self, i: int, kws: Sequence[_Kw]) -> tuple[_Kw, int] | None:
        """Match the longest keyword at token i; returns it and the index after it."""
        if i >= self.n or self.toks[i].f not in _KW_FIRST:
            return None
        best: tuple[_Kw, int] | None = None
        for kw in kws:
            if kw.words[0] != self.toks[i].f:
                continue
            j = i
            ok = True
            for w, form in zip(kw.words, kw.forms, strict=True):
                if j > i and form == "" and self._is(j, "."):  # 't.p'
                    j += 1
                if not self._is(j, w):
                    ok = False
                    break
                tok = self.toks[j]
                if form and not _form_ok(tok, (form,)):
                    ok = False
                    break
                j += 1
            if not ok:
                continue
            if kw.orig and self.toks[i].o.lower() not in kw.orig:
                continue
            if kw.dot == "req":
                if not self._is(j, ".") or not self.toks[j].glued:
                    continue
                j += 1
            elif kw.dot == "opt" and self._is(j, ".") and self.toks[j].glued:
                j += 1
            if best is None or j > best[1]:
                best = (kw, j)
        return best

    def _stop(self, i: int) -> bool:
        tok = self.toks[i]
        forms = _STOP.get(tok.f)
        if forms is None or (self.cased and tok.upper):
            return False
        return _form_ok(tok, forms)

    def _number(self, i: int) -> int | None:
        """A house / alley number at i: 12, 12A, 12/3, 12B/5A. Returns the index after it."""
        if i >= self.n or not self.toks[i].digits or len(self.toks[i].f) > _MAX_HOUSE_DIGITS:
            return None
        j = i + 1
        while True:
            if j < self.n and self.toks[j].glued and self.toks[j].f.isalpha() and len(self.toks[j].f) == 1:
                j += 1  # 12A
            if (
                j + 1 < self.n
                and self.toks[j].f == "/"
                and self.toks[j].glued
                and self.toks[j + 1].glued
                and self.toks[j + 1].digits
                and len(self.toks[j + 1].f) <= _MAX_HOUSE_DIGITS
            ):
                j += 2
                continue
            return j

    def _admin_name(
        self, i: int, allowed: frozenset[str], *, bare: bool
    ) -> tuple[int, frozenset[str]] | None:
        """The longest gazetteer name at i whose levels intersect `allowed`."""
        words: list[str] = []
        j = i
        best: tuple[int, frozenset[str]] | None = None
        while j < self.n and len(words) < _MAX_NAME_TOKENS:
            tok = self.toks[j]
            if not tok.word:
                # names may contain an apostrophe or a hyphen ("Bà Rịa - Vũng Tàu", "Ea H'Leo")
                if words and tok.f in {"'", "’", "-", "–"} and j + 1 < self.n and self.toks[j + 1].word:
                    j += 1
                    continue
                break
            words.append(tok.f)
            j += 1
            key = "".join(words)
            if key.isdigit():
                if bare:
                    continue
                key = str(int(key))
            levels = self.gz.kinds(key) & allowed
            if levels:
                best = (j, levels)
        if best is None:
            return None
        if bare and self.cased:
            first = self.toks[i]
            if not first.upper:
                return None
        return best

    # -- components -----------------------------------------------------------------------------

    def _street_name(self, i: int, *, highway: bool = False) -> tuple[int, bool] | None:
        """The extent of a street name starting at i (after a street keyword, a number or an alley).

        Returns the index after it, and whether it was cut short before a district or province
        name that ended it without a comma ('12 Hàng Bạc Hoàn Kiếm Hà Nội').
        """
        if i >= self.n:
            return None
        first = self.toks[i]
        if not first.word:
            return None
        if highway:  # quốc lộ 1A, QL5
            j = self._number(i)
            return None if j is None else (j, False)
        if self._is(i, "so") and _form_ok(first, ("số",)):  # đường số 7
            j = self._number(i + 1)
            return None if j is None else (j, False)
        if self._stop(i) or self._boundary(i):
            return None
        capital_mode = self.cased and first.upper
        if first.digits:
            # 'Đường 3 Tháng 2': a leading number must be followed by a capitalised word
            if not (self.cased and i + 1 < self.n and self.toks[i + 1].upper):
                return None
            capital_mode = True
        j = i + 1
        while j < self.n and j - i < _MAX_STREET_SCAN:
            tok = self.toks[j]
            if not tok.word or self._boundary(j):
                break
            if capital_mode:
                if tok.digits:
                    nxt = self.toks[j + 1] if j + 1 < self.n else None
                    inner = nxt is not None and nxt.word and nxt.upper  # 'Đường 3 Tháng 2'
                    last = (nxt is None or not nxt.word) and self.toks[j - 1].upper  # '... Tháng 2,'
                    if not (inner or last):
                        break
                elif not tok.upper:
                    break
            elif tok.digits or self._stop(j):
                break
            j += 1
        # peel district / province names off the end: 'Hàng Bạc Hoàn Kiếm Hà Nội' -> 'Hàng Bạc'
        end = j
        while True:
            tail = next((k for k in range(i + 1, end) if self._tail_name(k, end)), None)
            if tail is None:
                break
            end = tail
        if end < j:
            return end, True
        limit = _MAX_STREET_WORDS if capital_mode else _MAX_STREET_WORDS_LOWER
        return min(j, i + limit), False

    def _tail_name(self, k: int, end: int) -> bool:
        """Tokens [k, end) are a district or province name (two words at least, or an all-caps alias)."""
        words = [t for t in self.toks[k:end] if t.word]
        if len(words) != end - k:
            return False
        if len(words) < 2 and not (words and words[0].o.isupper() and len(words[0].o) >= 2):
            return False
        if self.cased and not words[0].upper:
            return False
        return bool(self.gz.kinds("".join(t.f for t in words)) & {"district", "province"})

    def _boundary(self, i: int) -> bool:
        """A keyword that starts another part of the address begins at i."""
        if self._kw(i, _ALLEY_KW) and self._number(self._kw_end(i, _ALLEY_KW)) is not None:
            return True
        if self._kw(i, _HOUSE_KW) and self._number(self._kw_end(i, _HOUSE_KW)) is not None:
            return True
        return self._typed_admin(i) is not None

    def _kw_end(self, i: int, kws: Sequence[_Kw]) -> int:
        m = self._kw(i, kws)
        return m[1] if m else i

    def _typed_admin(self, i: int) -> _Part | None:
        best: _Part | None = None
        for kws, allowed in (
            (_WARD_KW, frozenset({"ward"})),
            (_DISTRICT_KW, frozenset({"district"})),
            (_PROVINCE_KW, frozenset({"province"})),
        ):
            m = self._kw(i, kws)
            if not m:
                continue
            kw, j = m
            if kw.canonical == "thành phố":
                allowed = frozenset({"district", "province"})
            got = self._admin_name(j, allowed, bare=False)
            if not got:
                continue
            e, levels = got
            if len(levels) > 1 and not self._city_province(j, e):
                # 'thành phố Hải Dương' is the provincial capital, a district ('tỉnh Hải Dương' the province)
                levels = frozenset({"district"})
            part = _Part("admin", i, e, self._span(j, e), kw.canonical, True, levels)
            kw_tok, name_tok = self.toks[i], self.toks[j]
            part.strong = (
                kw_tok.o != kw_tok.f  # accents or capitals on the keyword: 'xã', 'Q'
                or (kw.dot != "no" and self._is(j - 1, "."))  # 'p.', 'q.'
                or (self.cased and name_tok.upper)
                or sum(t.word for t in self.toks[j:e]) >= 2
            )
            if best is None or part.e > best.e:
                best = part
        return best

    def _city_province(self, s: int, e: int) -> bool:
        """Tokens [s, e) name a centrally governed city (Hà Nội, Huế, Đà Nẵng...), not a 'tỉnh'."""
        name = " ".join(t.f for t in self.toks[s:e] if t.word)
        return any(p.name.startswith("Thành phố") for p in self.gz.find_legacy_provinces(name))

    def _bare_admin(self, i: int) -> _Part | None:
        got = self._admin_name(i, frozenset(_RANK), bare=True)
        if not got:
            return None
        e, levels = got
        return _Part("admin", i, e, self._span(i, e), None, False, levels)

    def _house(self, i: int, *, bare_ok: bool) -> _Part | None:
        m = self._kw(i, _HOUSE_KW)
        if m:
            j = m[1]
            if self._is(j, ":"):
                j += 1
            e = self._number(j)
            if e is not None:
                return _Part("house", i, e, self._span(j, e), "số")
        if bare_ok and not (i > 0 and self.toks[i - 1].f == "km"):  # 'Km 12 quốc lộ 1A' is no house
            e = self._number(i)
            if e is not None:
                return _Part("house", i, e, self._span(i, e), None, typed=False)
        return None

    def _alley(self, i: int) -> _Part | None:
        m = self._kw(i, _ALLEY_KW)
        if not m:
            return None
        kw, j = m
        if self._is(j, "so") and _form_ok(self.toks[j], ("số",)):
            j += 1
        e = self._number(j)
        if e is not None:
            return _Part("alley", i, e, f"{kw.canonical} {self._span(j, e)}", kw.canonical)
        # a named alley ('ngõ Văn Chương'): capitalised words only
        if self.cased and j < self.n and self.toks[j].upper and self.toks[j].word and not self._boundary(j):
            e = j + 1
            while e < self.n and e - j < 3 and self.toks[e].word and self.toks[e].upper:
                if self._boundary(e):
                    break
                e += 1
            return _Part("alley", i, e, f"{kw.canonical} {self._span(j, e)}", kw.canonical)
        return None

    def _street(self, i: int) -> _Part | None:
        m = self._kw(i, _STREET_KW)
        if not m:
            return None
        kw, j = m
        if self._common_noun(kw, j):
            return None
        got = self._street_name(j, highway=kw.canonical in {"quốc lộ", "tỉnh lộ"})
        if got is None:
            return None
        e, cut = got
        return _Part("street", i, e, self._span(j, e), kw.canonical, cut=cut)

    def _common_noun(self, kw: _Kw, j: int) -> bool:
        """'phố cổ', 'đường cao tốc', 'đường thở': the keyword starts a common noun, not a street."""
        not_street = _NOT_STREET.get(kw.canonical, {})
        if j >= self.n or self.toks[j].f not in not_street or (self.cased and self.toks[j].upper):
            return False
        return _form_ok(self.toks[j], not_street[self.toks[j].f])

    def _bare_street(self, i: int) -> _Part | None:
        if i >= self.n or self.toks[i].digits or self._kw(i, _STREET_KW):
            return None
        got = self._street_name(i)
        if got is None:
            return None
        e, cut = got
        return _Part("street", i, e, self._span(i, e), None, typed=False, cut=cut)

    def _cross(self, i: int) -> _Part | None:
        m = self._kw(i, _CROSS_KW)
        if not m:
            return None
        kw, j = m
        sm = self._kw(j, _STREET_KW)
        if sm:
            j = sm[1]
        got = self._street_name(j)
        if got is None:
            return None
        e = got[0]
        part = _Part("cross", i, e, self._span(j, e), kw.canonical, cut=got[1])
        # the second street: '- Liễu Giai', 'x Liễu Giai', 'giao với Liễu Giai', 'và phố Liễu Giai'
        k = e
        if k < self.n and self.toks[k].f in _CROSS_SEP:
            k += 1
        else:
            for words, forms in _CROSS_SEP_WORDS.items():
                if all(
                    self._is(k + n, w) and _form_ok(self.toks[k + n], (f,))
                    for n, (w, f) in enumerate(zip(words, forms, strict=True))
                ):
                    k += len(words)
                    break
        if k > e:
            sm = self._kw(k, _STREET_KW)
            if sm:
                k = sm[1]
            got2 = None if part.cut else self._street_name(k)
            if got2 is not None:
                part.cross = self._span(k, got2[0])
                part.e, part.cut = got2
        return part

    # -- chains ---------------------------------------------------------------------------------

    def _component(self, i: int, parts: list[_Part], *, after_sep: bool) -> _Part | None:
        if i >= self.n:
            return None
        kinds = {p.kind for p in parts}
        has_admin = "admin" in kinds
        has_street = bool(kinds & {"street", "cross"})
        if not has_admin:
            if not has_street and not kinds & {"house", "alley"}:
                p = self._cross(i)
                if p:
                    return p
            if "house" not in kinds:
                p = self._house(i, bare_ok=not parts)
                if p:
                    return p
            if not has_street:
                p = self._alley(i)
                if p:
                    return p
                p = self._street(i)
                if p:
                    return p
        p = self._typed_admin(i)
        if p:
            return p
        if parts and (after_sep or parts[-1].cut or parts[-1].kind == "admin"):
            p = self._bare_admin(i)  # '..., Đống Đa': a known name after a comma is an admin unit
            if p:
                return p
        if not has_admin and not has_street and parts and parts[-1].kind in {"house", "alley"}:
            return self._bare_street(i)
        return None

    def _chain(self, i: int) -> list[_Part] | None:
        parts: list[_Part] = []
        first = self._component(i, parts, after_sep=False)
        if first is None and i > 0 and self._at_word(i - 1):
            first = self._bare_admin(i)  # 'tai nạn ở Cầu Giấy'
            if first is not None and not self.cased and first.e - first.s < 2:
                first = None
        if first is None:
            return None
        parts.append(first)
        j = first.e
        while j < self.n:
            k = j
            seps: set[str] = set()
            while k < self.n and self.toks[k].f in _SEPARATORS:
                seps.add(self.toks[k].f)
                k += 1
            if self._is(k, "thuoc") and _form_ok(self.toks[k], ("thuộc",)):
                k += 1
            nxt = self._component(k, parts, after_sep=bool(seps - {"."}))
            if nxt is None or ("." in seps and not nxt.typed):
                break
            parts.append(nxt)
            j = nxt.e
        if parts[0].kind == "house" and not parts[0].typed and (len(parts) == 1 or parts[1].kind == "admin"):
            parts = parts[1:]  # 'thôn 2, xã Tân Lập': a bare number is a house number only before a street
        return parts or None

    def _at_word(self, i: int) -> bool:
        forms = _AT_WORDS.get(self.toks[i].f)
        return forms is not None and _form_ok(self.toks[i], forms)

    def scan(self) -> list[list[_Part]]:
        chains: list[list[_Part]] = []
        i = 0
        while i < self.n:
            tok = self.toks[i]
            # a chain starts with a keyword, a number, or a place name right after 'ở' / 'tại'
            starts = tok.f in _KW_FIRST or tok.digits or (i > 0 and self._at_word(i - 1))
            chain = self._chain(i) if starts else None
            if chain:
                chain = _assign_levels(chain)
            if chain and _acceptable(chain):
                chains.append(chain)
                i = chain[-1].e
            elif chain:
                i = chain[-1].e  # 'thành phố Hà Nội' alone: do not read 'phố Hà Nội' inside it
            else:
                i += 1
        return chains


def _assign_levels(chain: list[_Part]) -> list[_Part]:
    """Give each admin part one level, ascending left to right (ward < district < province).

    Right to left, each part takes the highest of its possible levels below the next one's:
    'Hoàn Kiếm, Hà Nội' -> district, province; 'Ô Chợ Dừa, Đống Đa' -> ward, district.
    When that is impossible ('phường X, phường Y') the chain ends before the part that does not fit.
    """
    for end in range(len(chain), 0, -1):
        prefix = chain[:end]
        ceiling = 4
        for p in reversed(prefix):
            if p.kind != "admin":
                continue
            options = [lv for lv in p.levels if _RANK[lv] < ceiling]
            if not options:
                break
            p.level = max(options, key=_RANK.__getitem__)
            ceiling = _RANK[p.level]
        else:
            return prefix
    return []


def _acceptable(chain: list[_Part]) -> bool:
    if len(chain) == 1 and chain[0].kind == "admin" and not chain[0].strong:
        return False
    kinds = {p.kind for p in chain}
    levels = {p.level for p in chain if p.kind == "admin"}
    if not (kinds & {"street", "cross", "alley"} or levels & {"ward", "district"}):
        return False  # a house number alone, a province alone
    if kinds <= {"house", "street"} and not levels:
        # '12 Hàng Bạc' needs 'số' ('số 12 Hàng Bạc') or a street keyword ('12 phố Hàng Bạc') to stand alone
        return any(p.typed for p in chain)
    return True


_WEIGHT = {"house": 1, "alley": 1, "street": 2, "cross": 2}
_ADMIN_WEIGHT = {"ward": 3, "district": 3, "province": 1}


def _score(chain: list[_Part]) -> int:
    return sum(_ADMIN_WEIGHT[p.level or "province"] if p.kind == "admin" else _WEIGHT[p.kind] for p in chain)


def _to_match(sc: _Scanner, chain: list[_Part]) -> AddressMatch:
    start = sc.toks[chain[0].s].start
    end = sc.toks[chain[-1].e - 1].end
    fields: dict[str, str | None] = {}
    alleys: list[str] = []
    for p in chain:
        if p.kind == "house":
            fields["house_number"] = p.value
        elif p.kind == "alley":
            alleys.append(p.value)
        elif p.kind in {"street", "cross"}:
            fields["street"] = p.value
            fields["street_type"] = p.type
            fields["cross_street"] = p.cross
        elif p.level is not None:
            fields[p.level] = p.value
            fields[f"{p.level}_type"] = p.type
    has = {p.level for p in chain if p.kind == "admin"}
    if "district" in has:
        form = "legacy"
    elif {"ward", "province"} <= has:
        form = "2025"
    else:
        form = "partial"
    return AddressMatch(
        text=sc.text[start:end],
        start=start,
        end=end,
        form=form,
        house_number=fields.get("house_number"),
        alleys=tuple(alleys),
        street=fields.get("street"),
        street_type=fields.get("street_type"),
        cross_street=fields.get("cross_street"),
        ward=fields.get("ward"),
        ward_type=fields.get("ward_type"),
        district=fields.get("district"),
        district_type=fields.get("district_type"),
        province=fields.get("province"),
        province_type=fields.get("province_type"),
    )


def find_address(text: str) -> AddressMatch | None:
    """The most complete address in `text`, or None when there is none.

    Accents are optional (matching is done on folded text); the span and the parts are
    those of the original text.
    """
    if not text or not text.strip():
        return None
    sc = _Scanner(text, gazetteer.load())
    best: list[_Part] | None = None
    best_score = 0
    for chain in sc.scan():
        score = _score(chain)
        if score > best_score:
            best, best_score = chain, score
    return _to_match(sc, best) if best else None


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _parse(address: str, mode: str, level: int) -> tuple[str | None, str | None, str | None]:
    """(province_code, district_code, ward_code) from a vietnamadminunits parser (offline)."""
    # ~0.5 s to import: lazily, on the first resolution. (The ignore is for when mypy runs without the
    # project's override for this untyped package.)
    from vietnamadminunits import parse_address  # type: ignore[import-untyped, unused-ignore]

    try:
        unit = parse_address(address, mode=mode, keep_street=False, level=level)
    except Exception:  # a third-party parser must not take intake down
        return None, None, None
    return unit.province_code, unit.district_code, unit.ward_code


def _title(text: str) -> str:
    """A name as written; capitalised word by word when it was typed all in lower (or upper) case."""
    if text != text.lower() and text != text.upper():
        return text
    return " ".join(w.capitalize() if w.isalpha() else w for w in text.split())


def _phrase(unit_type: str | None, name: str) -> str:
    return f"{unit_type.capitalize()} {name}" if unit_type else name


def _same_type(unit_type: str, written: str | None) -> bool:
    return written is None or unit_type.lower() == written


def _prefer_type(units: list[LegacyWard], written: str | None) -> list[LegacyWard]:
    typed = [u for u in units if _same_type(u.type, written)]
    return typed or units


@dataclass(frozen=True, slots=True)
class _Fix:
    level: str
    lat: float
    lon: float
    radius_m: float
    ward: Ward | None = None
    legacy_ward: LegacyWard | None = None
    legacy_district: LegacyDistrict | None = None
    province: Province | None = None
    admin_label: str = ""


def _ward_fix(gz: Gazetteer, ward: Ward) -> _Fix:
    province = gz.province(ward.province_code)
    return _Fix("ward", ward.lat, ward.lon, ward.radius_m, ward=ward, province=province)


def _legacy_ward_fix(gz: Gazetteer, lw: LegacyWard, ward: Ward | None = None) -> _Fix:
    if ward is None and lw.ward_code:
        ward = gz.ward(lw.ward_code)
    province = gz.province(ward.province_code) if ward else None
    lat, lon, radius = lw.lat, lw.lon, lw.radius_m
    if ward is not None and len(lw.ward_codes) == 1 and ward.radius_m < radius:
        # the old ward lies wholly in the new one, whose disc is tighter
        # (a rural commune's bounding box is loose)
        lat, lon, radius = ward.lat, ward.lon, ward.radius_m
    return _Fix(
        "ward",
        lat,
        lon,
        radius,
        ward=ward,
        legacy_ward=lw,
        legacy_district=gz.legacy_district(lw.district_code),
        province=province,
    )


def _street_names(m: AddressMatch) -> list[str]:
    """The street, the cross street and named alleys ('ngõ Văn Chương' -> 'Văn Chương')."""
    names = [x for x in (m.street, m.cross_street) if x]
    for alley in m.alleys:
        _, _, name = alley.partition(" ")
        if name and not name[:1].isdigit():
            names.append(name)
    return names


def _street_ward(gz: Gazetteer, m: AddressMatch, district_code: str) -> LegacyWard | None:
    """An old ward of the district named like the street (Hàng Bạc is both in Hoàn Kiếm)."""
    for street in _street_names(m):
        if street:
            found = gz.find_legacy_wards(street, district_code=district_code)
            if found:
                return found[0]
    return None


def _resolve_legacy(
    gz: Gazetteer, m: AddressMatch, olds: list[LegacyProvince], explicit: bool
) -> _Fix | None:
    assert m.district is not None
    dphrase = _phrase(m.district_type, m.district)
    wphrase = _phrase(m.ward_type, m.ward) if m.ward else None
    candidates: list[LegacyProvince | None] = list(olds)
    if not explicit or not olds:
        candidates.append(None)  # nationwide: the parser then only accepts a district name that is unique
    for lp in candidates:
        address = ", ".join(x for x in (wphrase, dphrase, lp.name if lp else None) if x)
        _, dcode, wcode = _parse(address, "LEGACY", 3)
        district = gz.legacy_district(dcode) if dcode else None
        named = gz.find_legacy_districts(m.district, lp.code if lp else None)
        typed = [d for d in named if _same_type(d.type, m.district_type)] or named
        if district is None or district.code not in {d.code for d in named}:
            # the parser found nothing, or something else than what was written: trust the gazetteer
            district = typed[0] if len(typed) == 1 or (typed and lp is not None) else None
            wcode = None
        if district is None:
            continue
        if m.ward:
            same = gz.find_legacy_wards(m.ward, district_code=district.code)
            lw = gz.legacy_ward(wcode) if wcode else None
            if lw is None or lw.code not in {w.code for w in same}:
                lw = _prefer_type(same, m.ward_type)[0] if same else None
            if lw is not None:
                return _legacy_ward_fix(gz, lw)
            # the 2025 ward named so, if it covers part of this district ('phường Hoàn Kiếm, quận Hoàn Kiếm')
            for w in gz.find_wards(m.ward):
                if any(old.district_code == district.code for old in gz.legacy_wards_of(w.code)):
                    return dataclasses.replace(_ward_fix(gz, w), legacy_district=district)
        lw = _street_ward(gz, m, district.code)
        if lw is not None:
            return _legacy_ward_fix(gz, lw)
        zone = gz.ward(district.ward_codes[0]) if district.ward_codes else None
        if zone is not None:  # an island district without wards that became a special zone
            return dataclasses.replace(_ward_fix(gz, zone), legacy_district=district)
        lprov = gz.legacy_province(district.province_code)
        province = gz.province(lprov.province_code) if lprov and lprov.province_code else None
        return _Fix(
            "district",
            district.lat,
            district.lon,
            district.radius_m,
            legacy_district=district,
            province=province,
            admin_label=", ".join(x for x in (district.name, lprov.name if lprov else None) if x),
        )
    return None


def _resolve_ward(
    gz: Gazetteer, m: AddressMatch, news: list[Province], olds: list[LegacyProvince], explicit: bool
) -> _Fix | None:
    assert m.ward is not None
    wphrase = _phrase(m.ward_type, m.ward)
    candidates: list[Province | None] = list(news)
    if not explicit or not news:
        candidates.append(None)
    for p in candidates:
        address = f"{wphrase}, {p.name}" if p else wphrase
        _, _, wcode = _parse(address, "FROM_2025", 2)
        named = gz.find_wards(m.ward, p.code if p else None)
        ward = gz.ward(wcode) if wcode else None
        if ward is None or ward.code not in {w.code for w in named}:
            ward = named[0] if len(named) == 1 else None
        if ward is not None:
            # an old ward named like the street, inside this new ward, is a smaller area
            for street in _street_names(m):
                for lw in gz.find_legacy_wards(street):
                    if ward.code in lw.ward_codes:
                        return _legacy_ward_fix(gz, lw, ward)
            return _ward_fix(gz, ward)
        # an old ward without its district ('phường Hàng Bạc, Hà Nội')
        scope: list[str | None] = [None]
        if p is not None:
            scope = [lp.code for lp in olds] or [
                lp.code for lp in gz.legacy_provinces() if lp.province_code == p.code
            ]
        found: list[LegacyWard] = []
        for code in scope:
            found += gz.find_legacy_wards(m.ward, province_code=code)
        found = _prefer_type(found, m.ward_type)
        if len(found) == 1:
            return _legacy_ward_fix(gz, found[0])
        if found and len({lw.ward_code for lw in found}) == 1:
            w = gz.ward(found[0].ward_code or "")
            if w is not None:
                return _ward_fix(gz, w)
    return None


def _province_fix(gz: Gazetteer, m: AddressMatch, news: list[Province]) -> _Fix | None:
    if not m.province:
        return None
    direct = [p for p in news if name_key(m.province) in {name_key(p.short), name_key(p.name)}]
    olds = gz.find_legacy_provinces(m.province)
    if news and (direct or not olds):
        p = news[0]
        return _Fix("province", p.lat, p.lon, p.radius_m, province=p)
    if olds:  # a province that no longer exists: its own centre ('Hải Dương')
        lp = olds[0]
        p2 = gz.province(lp.province_code) if lp.province_code else None
        return _Fix("province", lp.lat, lp.lon, lp.radius_m, province=p2, admin_label=lp.name)
    return None


def _street_label(m: AddressMatch) -> str:
    bits: list[str] = []
    if m.house_number:
        bits.append(m.house_number)
    bits += [a[:1].upper() + a[1:] for a in m.alleys]
    if m.street:
        street = _title(m.street)
        if m.cross_street:
            street = f"{street} - {_title(m.cross_street)}"
        bits.append(f"{m.street_type.capitalize()} {street}" if m.street_type else street)
    return " ".join(bits)


def resolve(match: AddressMatch, *, default_province: str | None = "Hà Nội") -> ResolvedPlace | None:
    """Resolve an address to a ward (2025, and the old one when the old form names it) with a radius.

    Without a ward or a district nothing below the province is known: the result is None,
    or a province-level place when the text names the province itself. `default_province`
    (the province the centre serves) is assumed when the text names none.
    """
    gz = gazetteer.load()
    explicit = match.province is not None
    pname = match.province or default_province
    news = gz.find_provinces(pname) if pname else []
    olds = gz.find_legacy_provinces(pname) if pname else []
    for p in news:  # 'Hải Phòng' also covers the old Hải Dương, merged into it
        olds += [lp for lp in gz.legacy_provinces() if lp.province_code == p.code and lp not in olds]

    fix: _Fix | None = None
    if match.district:
        fix = _resolve_legacy(gz, match, olds, explicit)
    if fix is None and match.ward:
        fix = _resolve_ward(gz, match, news, olds, explicit)
    if fix is None and explicit:
        fix = _province_fix(gz, match, news)
    if fix is None:
        return None

    if fix.level == "ward":
        accuracy = max(MIN_WARD_ACCURACY_M, fix.radius_m)
    elif fix.level == "district":
        accuracy = max(MIN_DISTRICT_ACCURACY_M, fix.radius_m)
    else:
        accuracy = fix.radius_m
    province = fix.province
    if fix.admin_label:
        admin = fix.admin_label
    elif fix.ward is not None:
        admin = ", ".join(x for x in (fix.ward.name, fix.ward.province) if x)
    else:
        admin = province.name if province else ""
    label = ", ".join(x for x in (_street_label(match), admin) if x)
    return ResolvedPlace(
        lat=fix.lat,
        lon=fix.lon,
        accuracy_m=float(round(accuracy)),
        level=fix.level,
        label=label,
        ward=fix.ward.name if fix.ward else None,
        ward_code=fix.ward.code if fix.ward else None,
        province=province.name if province else None,
        province_code=province.code if province else None,
        legacy_ward=fix.legacy_ward.name if fix.legacy_ward else None,
        legacy_ward_code=fix.legacy_ward.code if fix.legacy_ward else None,
        legacy_district=fix.legacy_district.name if fix.legacy_district else None,
        legacy_district_code=fix.legacy_district.code if fix.legacy_district else None,
    )


def locate_text(
    text: str, *, default_province: str | None = "Hà Nội"
) -> tuple[AddressMatch, Location] | None:
    """Find an address in `text` and resolve it: the match and a `Location` (source ADDRESS)."""
    match = find_address(text)
    if match is None:
        return None
    place = resolve(match, default_province=default_province)
    if place is None:
        return None
    location = Location(
        lat=place.lat,
        lon=place.lon,
        accuracy_m=place.accuracy_m,
        source=LocationSource.ADDRESS,
        label=place.label,
        ward_code=place.ward_code,
    )
    return match, location
