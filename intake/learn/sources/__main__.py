"""Rebuild the English corpus files from their public sources: `python -m intake.learn.sources`.

Why: the corpus is data that code makes, so that anyone can check it and make it again after a source or a
mapping changes. This writes intake/learn/corpus/en_icd10.tsv (ICD-10-CM, through the PyPI package
simple-icd-10-cm) and en_wordnet.tsv (WordNet 3.0, from Debian's wordnet-base), each a UTF-8 TSV with the header
text, kind, source, deduplicated and sorted, so that two runs on the same sources give the same bytes; and it
rewrites its own part of SOURCES.md there (between two markers), leaving the rest of that file alone.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

from intake.core.incident_types import INCIDENT_TYPES
from intake.learn.sources import icd10, wordnet

CORPUS: Final = Path(__file__).resolve().parent.parent / "corpus"
HEADER: Final = ("text", "kind", "source")
BEGIN: Final = "<!-- begin: python -m intake.learn.sources (generated, do not edit by hand) -->"
END: Final = "<!-- end: python -m intake.learn.sources -->"

Row = tuple[str, str, str]


def tsv(rows: Iterable[Row]) -> str:
    """`rows` as the corpus's TSV: header first, then the rows deduplicated and sorted, "\\n" line ends."""
    unique = sorted(set(rows))
    for row in unique:
        if any("\t" in field or "\n" in field or "\r" in field or not field for field in row):
            raise ValueError(f"a field is empty or holds a tab or a line break: {row!r}")
        if row[1] not in INCIDENT_TYPES:
            raise ValueError(f"unknown kind {row[1]!r} in {row!r}")
    return "".join("\t".join(row) + "\n" for row in [HEADER, *unique])


def _counts(rows: Sequence[Row]) -> str:
    counts = Counter(kind for _, kind, _ in rows)
    cells = [f"{kind} {counts[kind]}" for kind in sorted(counts)]
    return "; ".join(cells) + "."


def sources_section(icd_rows: Sequence[Row], wordnet_rows: Sequence[Row]) -> str:
    """The part of SOURCES.md that this command writes."""
    icd_version, wordnet_version = icd10.package_version(), wordnet.package_version() or "unknown"
    missing_icd = sorted(set(INCIDENT_TYPES) - {kind for _, kind, _ in icd_rows})
    missing_wordnet = sorted(set(INCIDENT_TYPES) - {kind for _, kind, _ in wordnet_rows})
    return f"""{BEGIN}
## en_icd10.tsv

- Source: ICD-10-CM, the US clinical modification of ICD-10 (CDC/NCHS and CMS), its tabular list as shipped inside
  the PyPI package `{icd10.PACKAGE}` {icd_version} (files {", ".join(icd10.data_files())} in its `data` folder).
- Licence: ICD-10-CM is a work of the US government and in the public domain in the United States (WHO holds the
  copyright of the underlying ICD-10, which permits the US modification); the package's code is MIT
  (Copyright (c) 2021-2026 Stefano Travasci). Only the classification's text is taken, none of the package's code.
- What: for every category and subcategory whose code falls in a mapped range, its description, its inclusion
  terms and its "includes" notes, lower-cased, without "NOS" and "not elsewhere classified". Left out: chapters and
  blocks, seventh-character codes (initial/subsequent encounter, sequela) and any line naming an encounter, a
  sequela, underdosing, an adverse effect, a history, remission, screening or a code. Codes that differ only in
  side (right, left, bilateral, unspecified), trimester or intent (accidental, self-harm, assault, undetermined)
  give one example: one without an intent, else an accidental one, and among those one picked by a checksum, so
  that sides alternate. A text that ranges of two kinds give is left out.
- Mapping: the table `RANGES` in intake/learn/sources/icd10.py, code range -> kind, the narrowest range winning
  (R55 syncope: unconscious; R56: seizure; S00-T14 injuries by body region: injury; T20-T32: burns; T36-T50 drug
  poisoning: overdose; T51-T65 toxic effects: poisoning, with T58 carbon monoxide, T59 gases and fumes:
  chemical_spill, T63 venomous animals: animal_bite; V01-V89: vehicle_accident; W00-W19: fall; W65-W74:
  drowning; X00-X08: structure_fire, wildfire, fire; X71-X83 self-harm: suicide_attempt, X80 jumping: jumper;
  X92-Y09 assault, with X93-X95 firearms: shooting, X99 sharp objects: stabbing; W54 dog and other animals:
  animal_bite; O: childbirth; I21-I24, I46-I49: cardiac; I60-I63, G45: stroke; the acute diabetic codes: illness;
  and so on, each row commented there). Each kind is capped at {icd10.CAP} examples, taken evenly over the
  classification's order.
- Source column: `icd10cm:<code>` (the code with its dot).
- Counts: {_counts(icd_rows)}
- Kinds with no example here: {", ".join(missing_icd) or "none"}.

## en_wordnet.tsv

- Source: Princeton WordNet 3.0, from the Debian package `{wordnet.DEBIAN_PACKAGE}` {wordnet_version} (files
  data.noun, data.verb, index.noun, index.verb under {wordnet.WORDNET_DIR}), parsed by
  intake/learn/sources/wordnet.py as wndb(5) describes.
- Licence: the WordNet 3.0 licence (Princeton University, "WordNet 3.0 Copyright 2006 by Princeton University.
  All rights reserved."): use, copying, modification and distribution for any purpose without fee, provided the
  copyright notice and the disclaimer appear on all copies; see /usr/share/doc/wordnet-base/copyright.
- What: for each chosen synset, and (unless marked ALONE) all its hyponyms transitively, not instance hyponyms:
  its lemmas (underscores read as spaces, Latin names of animal and plant species left out), its definition and
  each of its quoted example sentences, all lower-cased, each a separate example.
- Mapping: the table `SYNSETS` in intake/learn/sources/wordnet.py, synset offset -> kind, each row with the
  synset's first lemma (checked on load) and a comment quoting its gloss; senses were chosen by gloss. Rows with
  no kind prune a subtree (the cosmological "big bang" under explosion, fencing under fight, ...). A synset below
  two chosen ones takes the nearer one's kind; a text that two kinds give goes to the kind with the nearer synset,
  then the earlier lemma, and is left out on a tie. Each kind is capped at {wordnet.CAP} examples, taken evenly over
  the synset order.
- Source column: `wordnet:<offset>-<n|v>`, the synset that gave the text.
- Counts: {_counts(wordnet_rows)}
- Kinds with no example here: {", ".join(missing_wordnet) or "none"}.
{END}
"""


def merge_sources(current: str, section: str) -> str:
    """`current` SOURCES.md with this command's part replaced by `section` (appended if it has none yet)."""
    if BEGIN in current and END in current:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + section.rstrip("\n") + tail
    if not current.strip():
        return "# Corpus sources\n\n" + section
    return current.rstrip("\n") + "\n\n" + section


def build(out: Path, write: Callable[[Path, str], None]) -> dict[str, list[Row]]:
    """Make both files (and the SOURCES.md part) under `out` through `write`; return the rows by file name."""
    icd_rows, wordnet_rows = icd10.examples(), wordnet.examples()
    files = {"en_icd10.tsv": icd_rows, "en_wordnet.tsv": wordnet_rows}
    for name, rows in files.items():
        write(out / name, tsv(rows))
    sources = out / "SOURCES.md"
    current = sources.read_text(encoding="utf-8") if sources.exists() else ""
    write(sources, merge_sources(current, sources_section(icd_rows, wordnet_rows)))
    return files


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intake.learn.sources", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help=f"folder to write into (default {CORPUS})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is not up to date")
    args = parser.parse_args(argv)
    stale: list[Path] = []

    def check(path: Path, text: str) -> None:
        if not path.exists() or path.read_bytes() != text.encode("utf-8"):
            stale.append(path)

    files = build(args.out, check if args.check else _write)
    for name, rows in files.items():
        counts = Counter(kind for _, kind, _ in rows)
        print(f"{name}: {len(rows)} rows, {len(counts)} kinds")
    for path in stale:
        print(f"not up to date: {path}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
