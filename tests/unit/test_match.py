from datetime import UTC, datetime, timedelta

from intake.core.match import Subject, better_location, decide, score
from intake.core.model import Category, IncidentStatus, IncidentView, Location, LocationSource, Outcome

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
HERE = Location(21.0340, 105.8520, 20, LocationSource.GPS)


def incident(i: int = 1, category: Category = Category.FIRE, location: Location | None = HERE,
             minutes_ago: float = 2, reporters: frozenset[str] = frozenset()) -> IncidentView:
    return IncidentView(i, category, IncidentStatus.OPEN, location, T - timedelta(minutes=10),
                        T - timedelta(minutes=minutes_ago), 1, reporters, frozenset({"chay", "nha"}))


def subject(category: Category = Category.FIRE, location: Location | None = HERE, reporter: str | None = None,
            words: frozenset[str] = frozenset({"chay"})) -> Subject:
    return Subject(category, location, T, reporter, words)


def at(north_m: float) -> Location:
    return Location(HERE.lat + north_m / 111_320, HERE.lon, 20, LocationSource.GPS)


def test_same_place_same_category_attaches() -> None:
    d = decide(subject(location=at(100)), [incident()])
    assert d.outcome == Outcome.ATTACHED and d.incident_id == 1
    assert {r.code for r in d.reasons} >= {"distance", "time", "category"}


def test_far_away_opens_a_new_incident() -> None:
    d = decide(subject(location=at(3000)), [incident()])
    assert d.outcome == Outcome.CREATED and d.incident_id is None


def test_in_between_asks_a_person() -> None:
    d = decide(subject(location=at(950)), [incident()])
    assert d.outcome == Outcome.REVIEW and d.incident_id == 1
    assert d.reasons[0].code == "review"


def test_another_category_never_attaches_but_is_linked() -> None:
    d = decide(subject(category=Category.MEDICAL, location=at(10)), [incident()])
    assert d.outcome == Outcome.CREATED and d.related_incident_id == 1


def test_unknown_category_at_the_same_place_attaches() -> None:
    d = decide(subject(category=Category.UNKNOWN, location=at(50)), [incident()])
    assert d.outcome == Outcome.ATTACHED


def test_an_old_incident_is_less_likely() -> None:
    fresh = score(subject(location=at(100)), incident(minutes_ago=5))
    old = score(subject(location=at(100)), incident(minutes_ago=300))
    assert fresh.score > old.score


def test_poor_accuracy_widens_the_match() -> None:
    vague = Location(HERE.lat + 1200 / 111_320, HERE.lon, 1500, LocationSource.ADDRESS)
    assert decide(subject(location=vague), [incident()]).outcome == Outcome.ATTACHED
    sharp = Location(HERE.lat + 1200 / 111_320, HERE.lon, 5, LocationSource.GPS)
    assert decide(subject(location=sharp), [incident()]).outcome != Outcome.ATTACHED


def test_same_reporter_without_location_attaches() -> None:
    d = decide(subject(location=None, reporter="+84912345678"), [incident(reporters=frozenset({"+84912345678"}))])
    assert d.outcome == Outcome.ATTACHED
    assert any(r.code == "reporter" for r in d.reasons)


def test_stranger_without_location_is_new() -> None:
    assert decide(subject(location=None, reporter="+84900000000"), [incident()]).outcome == Outcome.CREATED


def test_best_candidate_wins() -> None:
    d = decide(subject(location=at(400)), [incident(1, location=at(0)), incident(2, location=at(390))])
    assert d.incident_id == 2


def test_reasons_are_data() -> None:
    d = decide(subject(location=at(100)), [incident()])
    data = d.reasons_data()
    assert all({"code", "points", "detail"} <= set(r) for r in data)


def test_a_calltaker_location_is_kept_over_a_better_automatic_fix() -> None:
    confirmed = Location(21.0, 105.8, 50, LocationSource.CALLTAKER)
    assert better_location(confirmed, Location(21.1, 105.9, 3, LocationSource.AML)) is confirmed


def test_the_more_accurate_location_wins() -> None:
    vague = Location(21.0, 105.8, 1000, LocationSource.ADDRESS)
    sharp = Location(21.0, 105.8, 10, LocationSource.GPS)
    assert better_location(vague, sharp) is sharp
    assert better_location(sharp, vague) is sharp
    assert better_location(None, vague) is vague


def test_urgent_kinds_exist_in_the_routing_table() -> None:
    from intake.core.classify import ROUTES
    from intake.core.prepare import URGENT_KINDS

    assert set(ROUTES) >= URGENT_KINDS
