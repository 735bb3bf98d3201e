"""Splits raw/vi_callers_all.tsv into vi_callers_dev.tsv and vi_callers_test.tsv (run from this folder).

A text goes to dev (looked at while improving the classifier, and drawn from by the tuning surges) when the
SHA-256 of its text is 0 or 1 modulo 5, else to test (only ever printed; the held-out surges draw from it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    header, *lines = (here / "raw" / "vi_callers_all.tsv").read_text(encoding="utf-8").splitlines()
    out: dict[str, list[str]] = {"dev": [], "test": []}
    for line in lines:
        text = line.split("\t", 1)[0]
        split = "dev" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 5 in (0, 1) else "test"
        out[split].append(line)
    for split, rows in out.items():
        (here / f"vi_callers_{split}.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        print(split, len(rows))


if __name__ == "__main__":
    main()
