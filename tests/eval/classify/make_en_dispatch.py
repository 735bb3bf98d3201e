"""Builds en_dispatch_dev.tsv and en_dispatch_test.tsv from raw/montco_titles.tsv (run from this folder).

Montgomery County (PA) 911 titles are "<category>: <complaint>", the category being the county's dispatch
category: EMS, Fire or Traffic. For a Vietnamese centre these are 115 medical, 114 fire and rescue, 113 police
(traffic police lead at road incidents). Rules, fixed before any result was seen:
- one line per complaint; a complaint recorded under several categories takes the one it was recorded under
  most often (VEHICLE ACCIDENT: Traffic 148,372, EMS 25,513, Fire 10,864 → police);
- complaints that are not something a resident reports are left out (ADMINISTRATIVE below: transfers,
  stand-bys, special services, patrols and details);
- complaints recorded fewer than MIN_CALLS times in the whole dataset (663,522 calls) are left out: at that
  rate a title is as likely a coding slip as a practice (BOMB THREAT filed under EMS twice). This rule and
  FOOT PATROL / PUMP DETAIL were added after the first run on the dev split showed them; nothing else was;
- a complaint goes to the dev split (looked at while improving the classifier) when the SHA-256 of its text
  is 0 or 1 modulo 5, else to the test split (only ever printed, never looked into to improve anything).
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

AGENCY = {"EMS": "medical", "Fire": "fire", "Traffic": "police"}
ADMINISTRATIVE = {
    "TRANSFERRED CALL", "STANDBY FOR ANOTHER CO", "S/B AT HELICOPTER LANDING", "POLICE INFORMATION",
    "PUBLIC SERVICE", "EMS SPECIAL SERVICE", "FIRE SPECIAL SERVICE", "FIRE POLICE NEEDED", "FOOT PATROL",
    "PUMP DETAIL",
}
MIN_CALLS = 20


def main() -> None:
    here = Path(__file__).parent
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    with (here / "raw" / "montco_titles.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            counts[row["complaint"]][row["source_type"]] = int(row["count"])
    splits: dict[str, list[tuple[str, str, int]]] = {"dev": [], "test": []}
    for complaint, by in sorted(counts.items()):
        if complaint in ADMINISTRATIVE or sum(by.values()) < MIN_CALLS:
            continue
        category = max(by, key=lambda c: (by[c], c))
        split = "dev" if int(hashlib.sha256(complaint.encode()).hexdigest(), 16) % 5 in (0, 1) else "test"
        splits[split].append((complaint, AGENCY[category], sum(by.values())))
    for split, rows in splits.items():
        with (here / f"en_dispatch_{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("text\tagency\tcalls\n")
            for complaint, agency, n in rows:
                f.write(f"{complaint}\t{agency}\t{n}\n")
        print(split, len(rows))


if __name__ == "__main__":
    main()
