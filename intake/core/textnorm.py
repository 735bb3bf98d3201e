"""Vietnamese-aware text folding.

People type Vietnamese with and without accents ("cháy nhà" / "chay nha"),
speech recognisers emit either, and SMS gateways strip them. Matching is done
on the folded form: NFC, lower case, diacritics removed, đ → d.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[0-9a-z]+")
# đ/Đ are letters of their own, not a d with a combining mark: NFD leaves them alone.
_SPECIAL = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d"})


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Lower case, no diacritics, đ → d; whitespace kept as it is."""
    decomposed = unicodedata.normalize("NFD", text.translate(_SPECIAL).lower())
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped)


def tokens(text: str) -> list[str]:
    """The folded words of a text, in order (letters and digits only)."""
    return _WORD.findall(fold(text))


def folded_words(text: str) -> str:
    """The folded words joined by one space: the form phrase tables are matched against."""
    return " ".join(tokens(text))
