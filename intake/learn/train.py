"""Fitting the text model (intake.core.textmodel) on the corpus: multinomial logistic regression, scikit-learn.

Each example becomes the binary vector of its features (textmodel.features) scaled to unit length, exactly as
inference builds it; classes are weighted so that a kind with 400 ICD-10 lines does not drown one with 40
phrasings. Weights too small to change a prediction are dropped (|w| < `prune`), so the shipped model stays a
few megabytes; the model records its corpus size and the options it was fitted with.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from intake.core.textmodel import MIN_FEATURES, TextModel, features, scale
from intake.learn.corpus import NONE_LABEL, Example

__all__ = ["FitOptions", "fit"]


@dataclass(frozen=True, slots=True)
class FitOptions:
    c: float = 20.0  # inverse regularisation strength
    none_weight: float = 0.5  # the everyday class's weight, against a kind's (balanced classes: 1)
    max_iter: int = 300
    prune: float = 0.3  # drop a feature whose weights are all below this (after fitting)
    min_count: int = 1  # features seen fewer times are left out


def _corpus_digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in sorted((e.text, e.label) for e in examples):
        h.update(f"{ex[0]}\t{ex[1]}\n".encode())
    return h.hexdigest()[:16]


DEFAULT_OPTIONS = FitOptions()


def fit(examples: Sequence[Example], options: FitOptions = DEFAULT_OPTIONS) -> TextModel:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    feats = [features(ex.text) for ex in examples]
    counts = Counter(f for fs in feats for f in fs)
    vocab = sorted(f for f, n in counts.items() if n >= options.min_count)
    index = {f: i for i, f in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for r, fs in enumerate(feats):
        present = [index[f] for f in fs if f in index]
        if not present:
            continue
        factor = scale(len(fs))  # as inference scales: every feature of the text counts
        rows.extend([r] * len(present))
        cols.extend(present)
        vals.extend([factor] * len(present))
    x = csr_matrix((vals, (rows, cols)), shape=(len(examples), len(vocab)), dtype=np.float64)
    labels = [ex.label for ex in examples]
    kinds = sorted(set(labels))
    y = np.array([kinds.index(label) for label in labels])
    counts_by_label = Counter(labels)
    balanced = {i: len(labels) / (len(kinds) * counts_by_label[k]) for i, k in enumerate(kinds)}
    if NONE_LABEL in kinds:
        balanced[kinds.index(NONE_LABEL)] *= options.none_weight
    model = LogisticRegression(C=options.c, max_iter=options.max_iter, class_weight=balanced, tol=1e-4)
    model.fit(x, y)
    w = model.coef_.T.astype(np.float32)  # features × kinds
    b = model.intercept_.astype(np.float32)
    if len(kinds) == 2:  # scikit-learn gives one column for two classes
        w = np.hstack([-w / 2, w / 2])
        b = np.array([-b[0] / 2, b[0] / 2], dtype=np.float32)
    keep = np.abs(w).max(axis=1) >= options.prune
    kept = [f for f, k in zip(vocab, keep, strict=True) if k]
    meta = {"examples": str(len(examples)), "features": str(len(kept)), "features_seen": str(len(vocab)),
            "c": str(options.c), "prune": str(options.prune), "none_weight": str(options.none_weight),
            "corpus_sha256": _corpus_digest(examples), "labels": str(len(kinds)),
            "min_features": str(MIN_FEATURES)}
    return TextModel(tuple(kinds), {f: i for i, f in enumerate(kept)}, w[keep], b, meta)
