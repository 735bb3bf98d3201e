"""The deduplication evaluation: its scores, its replay of a surge, and the surge simulator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from intake.evaluation.dedup import read_surge, replay, score_clusters
from intake.evaluation.surge import SurgeOptions, simulate, text_pool, write_jsonl

EVAL = Path(__file__).resolve().parents[1] / "eval"


def test_pairwise_and_bcubed_scores_of_known_clusterings() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    perfect = score_clusters(truth, [1, 1, 1, 2, 2, 3])
    assert (perfect.pair_precision, perfect.pair_recall, perfect.bcubed_f1) == (1.0, 1.0, 1.0)
    merged = score_clusters(truth, [1, 1, 1, 1, 1, 2])  # a and b in one incident
    assert merged.pair_recall == 1.0 and merged.pair_precision == pytest.approx(4 / 10)
    assert merged.bcubed_precision == pytest.approx((3 * 3 / 5 + 2 * 2 / 5 + 1) / 6)
    assert merged.merged_apart == [("a", "b")]
    split = score_clusters(truth, [1, 2, 3, 4, 5, 6])
    assert split.pair_precision == 1.0 and split.pair_recall == 0.0
    assert split.bcubed_recall == pytest.approx((3 * 1 / 3 + 2 * 1 / 2 + 1) / 6)


def _write(tmp_path: Path, records: list[dict[str, object]]) -> Path:
    path = tmp_path / "surge.jsonl"
    with path.open("w", encoding="utf-8") as f:
        write_jsonl([{"surge": {"seed": 0}}, *records], f)
    return path


def _report(n: int, event: str, at: str, text: str, north_m: float = 0.0, reporter: str | None = None
            ) -> dict[str, object]:
    return {"report": n, "event": event, "at": f"2026-06-15T{at}:00+00:00", "channel": "sms",
            "reporter": reporter or f"+8490000{n:04d}", "text": text, "lat": 21.03 + north_m / 111_320,
            "lon": 105.85, "accuracy_m": 20.0}


def test_a_replayed_fire_with_three_reporters_is_one_incident(tmp_path: Path) -> None:
    path = _write(tmp_path, [_report(1, "e1", "08:00", "cháy nhà ở ngõ 5"),
                             _report(2, "e1", "08:02", "khói đen bốc lên từ nhà ống", 80),
                             _report(3, "e1", "08:03", "cháy to lắm các anh ơi", 150)])
    s = replay(read_surge(path), model=None)
    assert (s.events, s.incidents, s.pair_f1) == (1, 1, 1.0)


def test_after_dispatch_closes_it_a_new_report_is_a_new_incident(tmp_path: Path) -> None:
    path = _write(tmp_path, [_report(1, "e1", "08:00", "tai nạn xe máy ở ngã tư"),
                             {"close": "e1", "at": "2026-06-15T08:20:00+00:00"},
                             _report(2, "e2", "08:25", "tai nạn giao thông ở ngã tư", 10)])
    s = replay(read_surge(path), model=None)
    assert (s.events, s.incidents, s.pair_precision) == (2, 2, 1.0)


def test_a_malformed_surge_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"report": 1}\n', encoding="utf-8")
    from intake.evaluation.dedup import DedupFileError

    with pytest.raises(DedupFileError, match=r"bad\.jsonl:1"):
        read_surge(path)


def test_the_simulator_makes_the_hard_parts_of_a_surge() -> None:
    pool = text_pool([EVAL / "classify" / "vi_callers_dev.tsv"])
    records = simulate(SurgeOptions(seed=7, events=200), pool)
    again = simulate(SurgeOptions(seed=7, events=200), pool)
    assert json.dumps(records) == json.dumps(again)  # a seed fixes everything
    reports = [r for r in records if "report" in r]
    events = Counter(r["event"] for r in reports)
    assert len(events) >= 200 and max(events.values()) >= 5  # big events have many reporters
    assert {r["channel"] for r in reports} >= {"call", "sms", "zalo", "telegram", "app"}
    assert any(e.startswith("s") for e in events)  # the storm
    unplaced = sum("lat" not in r for r in reports) / len(reports)
    assert 0.02 < unplaced < 0.15
    assert sum(r.get("location_source") == "address" for r in reports) > 0
    closes = [r for r in records if "close" in r]
    assert len(closes) == len(events)
    places = Counter((round(r["lat"], 3), round(r["lon"], 3)) for r in reports if "lat" in r)
    assert places.most_common(1)[0][1] >= 3  # several events at one busy corner
    times = [r["at"] for r in records[1:]]
    assert times == sorted(times)


def test_the_committed_surges_are_what_the_simulator_makes() -> None:
    for name, seed, split in (("tune_1", 1, "dev"), ("heldout_101", 101, "test")):
        pool = text_pool([EVAL / "classify" / f"vi_callers_{split}.tsv"])
        made = [json.dumps(r, ensure_ascii=False) for r in simulate(SurgeOptions(seed=seed), pool)]
        assert (EVAL / "dedup" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() == made


def test_a_right_possible_duplicate_counts_once_a_call_taker_merges_it(tmp_path: Path) -> None:
    # 900 m apart: too far to attach alone, close enough to ask (a fire of no setting: 500 m radius)
    path = _write(tmp_path, [_report(1, "e1", "08:00", "cháy to lắm các anh ơi"),
                             _report(2, "e1", "08:02", "cháy to lắm các anh ơi", 900)])
    s = replay(read_surge(path), model=None)
    assert s.reviews == 1 and s.pair_recall == 0.0
    assert s.reviewed is not None and s.reviewed.pair_f1 == 1.0
