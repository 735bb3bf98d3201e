"""A linear model over a report's words: the classifier's answer where its term tables have none.

The term tables know the phrases their authors thought of. This model has read a corpus (intake/learn/corpus:
the incident-type registry, ICD-10-CM, WordNet, Vietnamese and English caller phrasings, and every category a
call-taker confirmed) and scores every incident kind from what a text is made of:

  w:<word>        each word typed without diacritics ("ngat", "syncopal"), folded
  a:<word>        each word typed with diacritics, as typed: "cháy" is fire, "chạy" is running away, and
                  neither is the bare "chay" of an SMS, which may be either
  b:<word word>   each pair of neighbouring words, as known  ("kho tho", "khó thở", "gas odor")
  c3: .. c5:      3- to 5-letter pieces of each bare word, with its edges ("<syn", "ncop", "pal>"), and
  a3: .. a5:      of each accented word: a word never seen whole still resembles the ones that were
                  (hemorrhaging / hemorrhage, xỉu / xĩu)

The features present are a binary vector scaled to unit length, or shorter for a short text (`scale`;
features the model dropped or never saw count in the length, as they did in training); kind scores are
x·W + b, softmax over kinds.
Which words decided is kept: each word's share of the winning kind's score (its own features, half of each pair
it is in), so the evidence a call-taker sees names them.

Inference is numpy only and pure: a model is data (`TextModel.load` reads a .npz, `intake.learn.train` writes
one); nothing here trains or downloads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from intake.core.textnorm import fold, nfc

__all__ = ["MODEL_FILE", "Prediction", "TextModel", "default_model", "features", "set_default_model"]

#: The model shipped in the package (built by `intake classifier train`).
MODEL_FILE: Final = "textmodel.npz"
CHAR_NGRAMS: Final = (3, 4, 5)
#: The vector is scaled as if it had at least this many features: a text of one or two words is not blown up
#: to the length of a sentence, so a lone "tôi" or "hello" scores next to nothing instead of something sure.
MIN_FEATURES: Final = 1


def scale(n_features: int, min_features: int = MIN_FEATURES) -> float:
    return 1.0 / math.sqrt(max(n_features, min_features, 1))

_SEGMENT: Final = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")
_ASCII: Final = re.compile(r"[0-9a-z]+")


@lru_cache(maxsize=32768)
def _word_features(typed: str) -> tuple[str, tuple[str, ...]]:
    """A typed word (NFC, lower case): the form it is known by, and its own features.

    A word typed with diacritics is known by them ("cháy" fire, "chạy" run are two words): its features are
    its accented form and pieces. A word typed bare (SMS, English) is known by its folded form. The corpus
    has every Vietnamese text both ways, so the model learns both."""
    folded = "".join(_ASCII.findall(fold(typed)))
    if not folded:
        return "", ()
    accented = typed.replace("đ", "d") != folded
    key = typed if accented else folded
    prefix = "a" if accented else "c"
    out = [f"a:{typed}" if accented else f"w:{folded}"]
    padded = f"<{key}>"
    for n in CHAR_NGRAMS:
        if len(padded) > n:
            out.extend(f"{prefix}{n}:{padded[i:i + n]}" for i in range(len(padded) - n + 1))
    return key, tuple(out)


def _words(text: str) -> list[tuple[str, str]]:
    """(as typed, as known) for each word of the text; digits-only words are left out (house numbers)."""
    out = []
    for m in _SEGMENT.finditer(nfc(text).lower()):
        typed = m.group()
        key, _ = _word_features(typed)
        if key and not key.isdigit():
            out.append((typed, key))
    return out


def features(text: str) -> list[str]:
    """The distinct features of a text, in first-seen order."""
    words = _words(text)
    seen: dict[str, None] = {}
    for typed, _ in words:
        for f in _word_features(typed)[1]:
            seen[f] = None
    for (_, a), (_, b) in pairwise(words):
        seen[f"b:{a} {b}"] = None
    return list(seen)


@dataclass(frozen=True, slots=True)
class Prediction:
    probabilities: Mapping[str, float]  # kind → probability, all kinds
    top_words: Mapping[str, tuple[str, ...]]  # kind → the words that most raised it, in text order
    explainer: Callable[[str], tuple[str, ...]] | None = None  # the same, for any kind, from the same reading

    def words(self, kind: str) -> tuple[str, ...]:
        """The words that most raised `kind` (without reading the text again)."""
        if kind in self.top_words:
            return self.top_words[kind]
        return self.explainer(kind) if self.explainer is not None else ()

    def best(self, n: int = 3, at_least: float = 0.0) -> list[tuple[str, float]]:
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])
        return [(k, p) for k, p in ranked[:n] if p >= at_least]


@dataclass(slots=True)
class TextModel:
    kinds: tuple[str, ...]
    index: dict[str, int]  # feature → row of `weights`
    weights: npt.NDArray[np.float32]  # features × kinds
    bias: npt.NDArray[np.float32]  # kinds
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> TextModel:
        with np.load(path, allow_pickle=False) as data:
            names = [str(f) for f in data["features"]]
            kinds = tuple(str(k) for k in data["kinds"])
            weights = data["weights"].astype(np.float32)
            bias = data["bias"].astype(np.float32)
            meta = {str(k): str(v) for k, v in zip(data["meta_keys"], data["meta_values"], strict=True)}
        if weights.shape != (len(names), len(kinds)) or bias.shape != (len(kinds),):
            raise ValueError(f"{path}: weights {weights.shape} do not fit {len(names)} features × {len(kinds)} kinds")
        return cls(kinds, {f: i for i, f in enumerate(names)}, weights, bias, meta)

    def save(self, path: Path | str) -> None:
        names = sorted(self.index, key=self.index.__getitem__)
        keys = sorted(self.meta)
        np.savez_compressed(
            path, features=np.array(names), kinds=np.array(self.kinds), weights=self.weights.astype(np.float16),
            bias=self.bias.astype(np.float32), meta_keys=np.array(keys, dtype=str),
            meta_values=np.array([str(self.meta[k]) for k in keys], dtype=str))

    def predict(self, text: str, explain: Sequence[str] | int = 1) -> Prediction | None:
        """Kind probabilities of `text`, or None when none of its features is known to the model.

        `explain`: the kinds whose deciding words to name, or how many of the most likely ones."""
        words = _words(text)
        rows_of_word: list[list[int]] = []
        rows: dict[int, None] = {}
        present: set[str] = set()  # every feature, known or not: the vector is scaled as in training
        for typed, _ in words:
            own_features = _word_features(typed)[1]
            present.update(own_features)
            own = [self.index[f] for f in own_features if f in self.index]
            rows_of_word.append(own)
            rows.update(dict.fromkeys(own))
        pair_rows: list[int | None] = []
        for (_, a), (_, b) in pairwise(words):
            pair = f"b:{a} {b}"
            present.add(pair)
            r = self.index.get(pair)
            pair_rows.append(r)
            if r is not None:
                rows[r] = None
        if not rows:
            return None
        factor = scale(len(present), int(self.meta.get("min_features", MIN_FEATURES)))
        picked = self.weights[list(rows)]
        logits = picked.sum(axis=0) * factor + self.bias
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        probabilities = {k: float(v) for k, v in zip(self.kinds, p, strict=True)}
        def words_for(kind: str) -> tuple[str, ...]:
            j = self.kinds.index(kind)
            contrib = []
            for i, own in enumerate(rows_of_word):
                total = sum(float(self.weights[r, j]) for r in own)
                for side in (i - 1, i):
                    if 0 <= side < len(pair_rows) and pair_rows[side] is not None:
                        total += 0.5 * float(self.weights[pair_rows[side], j])
                contrib.append(total * factor)
            best = sorted(range(len(words)), key=lambda i: -contrib[i])[:3]
            return tuple(words[i][0] for i in sorted(i for i in best if contrib[i] > 0.05))

        if isinstance(explain, int):
            named = [self.kinds[j] for j in np.argsort(-p)[:explain]]
        else:
            named = [k for k in explain if k in self.kinds]
        top_words = {k: words_for(k) for k in named}
        return Prediction(probabilities, top_words, words_for)


_default: TextModel | None = None
_loaded = False


def default_model() -> TextModel | None:
    """The model in use: the one set at start-up (a retrained one), else the package's, else None."""
    global _default, _loaded
    if not _loaded:
        _loaded = True
        path = resources.files("intake.core").joinpath("data").joinpath(MODEL_FILE)
        if path.is_file():
            with resources.as_file(path) as real:
                _default = TextModel.load(real)
    return _default


def set_default_model(model: TextModel | None) -> None:
    """Use `model` from now on (the server at start-up, with a model `intake classifier train` installed)."""
    global _default, _loaded
    _default, _loaded = model, True
