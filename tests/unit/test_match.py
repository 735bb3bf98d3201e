from datetime import UTC, datetime, timedelta

from intake.core.match import Subject, better_location, decide, score
from intake.core.model import Category, IncidentStatus, IncidentView, Location, LocationSource, Outcome

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
HERE = Location(21.0340, 105.8520, 20, LocationSource.GPS)


def incident(i: int = 1, category: Category = Category.FIRE, location: Location | None = HERE,
             minutes_ago: float = 2, reporters: frozenset[str] = frozenset(), kinds: tuple[str, ...] = ()
             ) -> IncidentView:
    return IncidentView(i, category, IncidentStatus.OPEN, location, T - timedelta(minutes=10),
                        T - timedelta(minutes=minutes_ago), 1, reporters, frozenset({"chay", "nha"}), kinds)


def subject(category: Category = Category.FIRE, location: Location | None = HERE, reporter: str | None = None,
            words: frozenset[str] = frozenset({"chay"}), kinds: tuple[str, ...] = ()) -> Subject:
    return Subject(category, location, T, reporter, words, kinds)


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


# --- incident types ------------------------------------------------------------------------------------------

POLICE, FIRE, MEDICAL = Category.POLICE, Category.FIRE, Category.MEDICAL


def test_a_robbery_is_not_the_crash_at_the_same_corner() -> None:
    crash = incident(category=POLICE, kinds=("vehicle_accident",))
    d = decide(subject(POLICE, at(20), kinds=("robbery",)), [crash])
    assert d.outcome == Outcome.CREATED and d.related_incident_id == 1
    assert any(r.code == "other_category" and "robbery" in r.detail for r in d.candidates[0].reasons)


def test_a_fallen_tree_is_not_the_broken_down_car_beside_it() -> None:
    car = incident(category=POLICE, kinds=("traffic_hazard",))
    assert decide(subject(FIRE, at(10), kinds=("fallen_tree",)), [car]).outcome == Outcome.CREATED


def test_a_fire_alarm_and_the_fire_are_one_event() -> None:
    fire = incident(kinds=("structure_fire",))
    assert decide(subject(FIRE, at(30), kinds=("fire_alarm",)), [fire]).outcome == Outcome.ATTACHED


def test_the_stabbing_in_a_fight_is_the_fight() -> None:
    fight = incident(category=POLICE, kinds=("fight",))
    assert decide(subject(POLICE, at(40), kinds=("stabbing",)), [fight]).outcome == Outcome.ATTACHED


def test_a_bleeding_rider_at_the_crash_is_a_linked_incident_for_the_ambulance() -> None:
    crash = incident(category=POLICE, kinds=("vehicle_accident",))
    d = decide(subject(MEDICAL, at(30), kinds=("bleeding",)), [crash])
    assert d.outcome == Outcome.CREATED and d.related_incident_id == 1


def test_a_patient_is_not_a_casualty_of_a_theft() -> None:
    theft = incident(category=POLICE, kinds=("theft",))
    assert decide(subject(MEDICAL, at(30), kinds=("unconscious",)), [theft]).outcome == Outcome.CREATED


def test_a_crash_four_hours_later_at_the_same_corner_is_a_new_crash() -> None:
    crash = incident(category=POLICE, kinds=("vehicle_accident",), minutes_ago=250)
    d = decide(subject(POLICE, at(15), kinds=("vehicle_accident",)), [crash])
    assert d.outcome == Outcome.CREATED
    assert any(r.code == "too_late" for r in d.candidates[0].reasons)


def test_a_fire_still_takes_reports_two_hours_on() -> None:
    fire = incident(kinds=("structure_fire",), minutes_ago=120)
    assert decide(subject(FIRE, at(100), kinds=("fire",)), [fire]).outcome == Outcome.ATTACHED


def test_the_smoke_seen_from_400_m_is_the_fire() -> None:
    fire = incident(kinds=("structure_fire",), minutes_ago=5)
    assert decide(subject(FIRE, at(400), kinds=("fire",)), [fire]).outcome == Outcome.ATTACHED


def test_a_fainting_is_not_the_casualty_of_a_fire_hours_old() -> None:
    fire = incident(kinds=("structure_fire",), minutes_ago=150)
    assert decide(subject(MEDICAL, at(20), kinds=("unconscious",)), [fire]).outcome != Outcome.ATTACHED


def test_two_fallen_trees_along_one_road_are_two_jobs() -> None:
    tree = incident(kinds=("fallen_tree",), minutes_ago=10)
    assert decide(subject(FIRE, at(200), kinds=("fallen_tree",)), [tree]).outcome != Outcome.ATTACHED


def test_the_same_caller_about_a_finished_crash_is_for_a_person() -> None:
    crash = incident(category=POLICE, kinds=("vehicle_accident",), minutes_ago=300,
                     reporters=frozenset({"+84912345678"}))
    d = decide(subject(POLICE, at(5), reporter="+84912345678", kinds=("vehicle_accident",)), [crash])
    assert d.outcome == Outcome.REVIEW


def test_the_longest_window_bounds_the_candidate_search() -> None:
    from intake.core.match import DEFAULT_POLICY

    assert DEFAULT_POLICY.stale >= DEFAULT_POLICY.window(FIRE, ("missing_person",))
