"""The one road, on SQLite and PostgreSQL: ingest, idempotency, matching, growing reports."""

from __future__ import annotations

import math

import pytest

from intake.core.model import Category, Location, LocationSource, Outcome, ReportIn
from intake.pipeline import IdempotencyConflict, Intake, NotFound
from intake.store import Store
from tests.conftest import Clock

HANG_BAC = (21.0340, 105.8520)


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / 111_320, lon + east_m / (111_320 * math.cos(math.radians(lat)))


def app_report(clock: Clock, ref: str, text: str, *, phone: str | None = None,
               at: tuple[float, float] | None = None, accuracy: float = 20.0, **kw: object) -> ReportIn:
    loc = Location(at[0], at[1], accuracy, LocationSource.GPS, observed_at=clock()) if at else None
    return ReportIn(channel="app", channel_ref=ref, received_at=clock(), text=text, phone=phone, location=loc,
                    raw={"text": text, "ref": ref}, **kw)  # type: ignore[arg-type]


async def counts(store: Store) -> tuple[int, int]:
    async with store.read() as repo:
        incidents = await repo.count_incidents()
        rows = await repo.list_incidents(limit=1000, statuses=["open", "acknowledged", "closed", "merged"])
        reports = sum(r["report_count"] for r in rows)
    return incidents, reports


async def test_fire_text_with_address_opens_a_located_fire_incident(intake: Intake, clock: Clock) -> None:
    result = await intake.ingest(app_report(
        clock, "r1", "Cháy nhà ở số 12 phố Hàng Bạc, quận Hoàn Kiếm", phone="0912345678"))
    assert result.outcome == Outcome.CREATED
    assert result.category == Category.FIRE
    assert result.location is not None
    assert result.location["source"] == "address"
    async with intake.store.read() as repo:
        incident = await repo.incident(result.incident_id)  # type: ignore[arg-type]
        report = await repo.report(result.report_id)
    assert incident is not None and report is not None
    assert incident["category"] == "fire"
    assert "Hoàn Kiếm" in (incident["location_label"] or "")
    assert abs(incident["lat"] - 21.033) < 0.01 and abs(incident["lon"] - 105.852) < 0.01
    assert report["phone"] == "+84912345678" and report["phone_raw"] == "0912345678"


async def test_a_retried_delivery_is_one_report(intake: Intake, clock: Clock) -> None:
    first = await intake.ingest(app_report(clock, "same", "cháy nhà", at=HANG_BAC))
    clock.advance(seconds=5)
    again = await intake.ingest(app_report(clock, "same", "cháy nhà", at=HANG_BAC))
    assert again.outcome == Outcome.DUPLICATE
    assert (again.report_id, again.incident_id) == (first.report_id, first.incident_id)
    assert await counts(intake.store) == (1, 1)


async def test_a_reference_reused_for_another_report_is_refused(intake: Intake, clock: Clock) -> None:
    await intake.ingest(app_report(clock, "k", "cháy nhà", at=HANG_BAC))
    with pytest.raises(IdempotencyConflict):
        await intake.ingest(app_report(clock, "k", "có người ngất xỉu", at=HANG_BAC))
    assert await counts(intake.store) == (1, 1)


async def test_ten_reporters_of_one_fire_make_one_incident(intake: Intake, clock: Clock) -> None:
    results = []
    for i in range(10):
        angle = i * 36
        at = offset(*HANG_BAC, 280 * math.sin(math.radians(angle)) / 2, 280 * math.cos(math.radians(angle)) / 2)
        results.append(await intake.ingest(app_report(
            clock, f"fire-{i}", "Cháy lớn, khói đen bốc lên" if i % 2 else "there is a big fire here",
            phone=f"09123456{i:02d}", at=at)))
        clock.advance(minutes=1)
    assert {r.incident_id for r in results} == {results[0].incident_id}
    assert [r.outcome for r in results] == [Outcome.CREATED] + [Outcome.ATTACHED] * 9
    async with intake.store.read() as repo:
        incident = await repo.incident(results[0].incident_id)  # type: ignore[arg-type]
        reports = await repo.reports_of_incident(results[0].incident_id)  # type: ignore[arg-type]
    assert incident is not None and incident["report_count"] == 10 and len(reports) == 10
    assert all(r["match"]["reasons"] for r in reports[1:])


async def test_medical_report_at_the_fire_opens_its_own_linked_incident(intake: Intake, clock: Clock) -> None:
    fire = await intake.ingest(app_report(clock, "f", "cháy nhà", at=HANG_BAC))
    clock.advance(minutes=2)
    medical = await intake.ingest(app_report(
        clock, "m", "có người bị bỏng nặng, bất tỉnh, cần xe cấp cứu", at=offset(*HANG_BAC, 30, 0)))
    assert medical.category == Category.MEDICAL
    assert medical.outcome == Outcome.CREATED
    assert medical.incident_id != fire.incident_id
    assert medical.related_incident_id == fire.incident_id
    assert any(r["code"] == "related" for r in medical.reasons)


async def test_a_fire_across_town_is_another_incident(intake: Intake, clock: Clock) -> None:
    a = await intake.ingest(app_report(clock, "a", "cháy nhà", at=HANG_BAC))
    b = await intake.ingest(app_report(clock, "b", "cháy nhà", at=offset(*HANG_BAC, 4000, 0)))
    assert b.outcome == Outcome.CREATED and b.incident_id != a.incident_id


async def test_same_reporter_without_location_joins_their_incident(intake: Intake, clock: Clock) -> None:
    a = await intake.ingest(app_report(clock, "a", "cháy nhà", phone="0912345678", at=HANG_BAC))
    clock.advance(minutes=3)
    b = await intake.ingest(app_report(clock, "b", "lửa to lắm, nhanh lên", phone="+84 912 345 678"))
    assert b.outcome == Outcome.ATTACHED and b.incident_id == a.incident_id
    assert any(r["code"] == "reporter" for r in b.reasons)


async def test_a_report_that_grows_joins_the_incident_it_turns_out_to_be(intake: Intake, clock: Clock) -> None:
    fire = await intake.ingest(app_report(clock, "f", "cháy nhà", at=HANG_BAC))
    clock.advance(seconds=30)
    call = await intake.ingest(ReportIn(channel="call", channel_ref="1763798400.1", received_at=clock(),
                                        phone="0987654321", dialled_number="112"))
    assert call.outcome == Outcome.CREATED and call.category == Category.UNKNOWN
    clock.advance(seconds=10)
    grown = await intake.update_report(call.report_id, text="nhà tôi đang cháy",
                                       location=Location(*offset(*HANG_BAC, 50, 50), 15, LocationSource.AML))
    assert grown.outcome == Outcome.ATTACHED
    assert grown.incident_id == fire.incident_id
    async with intake.store.read() as repo:
        absorbed = await repo.incident(call.incident_id)  # type: ignore[arg-type]
        target = await repo.incident(fire.incident_id)  # type: ignore[arg-type]
        events = await repo.events_of_incident(call.incident_id)  # type: ignore[arg-type]
    assert absorbed is not None and absorbed["status"] == "merged" and absorbed["merged_into"] == fire.incident_id
    assert target is not None and target["report_count"] == 2
    assert [e["kind"] for e in events][-1] == "merged_into"


async def test_a_location_confirmed_by_a_calltaker_is_never_overwritten(intake: Intake, clock: Clock) -> None:
    r = await intake.ingest(app_report(clock, "a", "cháy nhà", at=HANG_BAC, accuracy=500))
    confirmed = Location(21.0301, 105.8502, 10, LocationSource.CALLTAKER)
    await intake.update_report(r.report_id, location=confirmed, actor="ct1")
    later = await intake.update_report(r.report_id, location=Location(21.04, 105.86, 3, LocationSource.AML))
    assert later.location is not None
    assert later.location["source"] == "calltaker" and later.location["lat"] == 21.0301


async def test_update_of_a_missing_report_is_not_found(intake: Intake) -> None:
    with pytest.raises(NotFound):
        await intake.update_report(999, text="x")


async def test_every_change_is_audited_and_pushed_in_order(intake: Intake, clock: Clock) -> None:
    a = await intake.ingest(app_report(clock, "a", "cháy nhà", at=HANG_BAC))
    await intake.ingest(app_report(clock, "b", "cháy lớn", at=offset(*HANG_BAC, 20, 0)))
    async with intake.store.read() as repo:
        events = await repo.events_of_incident(a.incident_id)  # type: ignore[arg-type]
        out = await repo.outbox_after(0)
    assert [e["kind"] for e in events] == ["opened", "report_attached"]
    assert [o["kind"] for o in out] == ["incident.opened", "incident.updated"]
    assert [o["id"] for o in out] == sorted(o["id"] for o in out)
    assert out[-1]["payload"]["incident"]["report_count"] == 2


async def test_an_unreadable_phone_number_is_kept_raw_and_flagged(intake: Intake, clock: Clock) -> None:
    r = await intake.ingest(app_report(clock, "a", "cháy nhà", phone="call me maybe", at=HANG_BAC))
    async with intake.store.read() as repo:
        row = await repo.report(r.report_id)
    assert row is not None
    assert (row["phone_raw"], row["phone"], row["phone_valid"]) == ("call me maybe", None, False)


async def test_an_unknown_report_is_marked_for_a_person(intake: Intake, clock: Clock) -> None:
    r = await intake.ingest(app_report(clock, "a", "xin chào", at=HANG_BAC))
    assert r.category == Category.UNKNOWN and r.needs_review


async def test_concurrent_retries_in_one_group_are_one_report(intake: Intake, clock: Clock) -> None:
    import asyncio

    same = [app_report(clock, "retry", "cháy nhà", at=HANG_BAC) for _ in range(3)]
    other = app_report(clock, "retry", "có cướp", at=HANG_BAC)
    results = await asyncio.gather(*(intake.ingest(r) for r in [*same, other]), return_exceptions=True)
    outcomes = [r.outcome if not isinstance(r, BaseException) else type(r) for r in results]
    assert outcomes == [Outcome.CREATED, Outcome.DUPLICATE, Outcome.DUPLICATE, IdempotencyConflict]
    assert {r.report_id for r in results[:3] if not isinstance(r, BaseException)} == {results[0].report_id}
    assert await counts(intake.store) == (1, 1)


async def test_a_group_of_concurrent_reports_of_one_fire_is_one_incident(intake: Intake, clock: Clock) -> None:
    import asyncio

    reports = [app_report(clock, f"g{i}", "cháy lớn", phone=f"09000000{i:02d}", at=offset(*HANG_BAC, i * 20, 0))
               for i in range(12)]
    results = await asyncio.gather(*(intake.ingest(r) for r in reports))
    assert len({r.incident_id for r in results}) == 1
    assert sorted(r.outcome for r in results) == sorted([Outcome.CREATED] + [Outcome.ATTACHED] * 11)
    async with intake.store.read() as repo:
        incident = await repo.incident(results[0].incident_id)  # type: ignore[arg-type]
        events = await repo.events_of_incident(results[0].incident_id)  # type: ignore[arg-type]
        out = await repo.outbox_after(0)
    assert incident is not None and incident["report_count"] == 12
    assert [e["kind"] for e in events].count("report_attached") == 11
    assert [o["payload"]["incident"]["report_count"] for o in out] == list(range(1, 13))


async def test_a_review_against_an_incident_of_the_same_group_names_its_stored_id(intake: Intake, clock: Clock
                                                                                  ) -> None:
    import asyncio

    first = app_report(clock, "near", "cháy nhà", at=HANG_BAC)
    second = app_report(clock, "far", "cháy nhà", at=offset(*HANG_BAC, 950, 0))  # between attach and new
    a, b = await asyncio.gather(intake.ingest(first), intake.ingest(second))
    assert b.outcome == Outcome.REVIEW
    review = next(r for r in b.reasons if r["code"] == "review")
    assert review["incident_id"] == a.incident_id
    async with intake.store.read() as repo:
        stored = await repo.report(b.report_id)
        incident = await repo.incident(b.incident_id)  # type: ignore[arg-type]
    assert stored is not None and incident is not None
    assert next(r for r in stored["match"]["reasons"] if r["code"] == "review")["incident_id"] == a.incident_id
    assert incident["review_of"] == a.incident_id and incident["needs_review"]


async def test_small_writes_committed_together_never_harm_each_other(intake: Intake) -> None:
    """Raw patches that arrive together share one transaction; a missing report or a failing patch gets its
    own error and the others are written."""
    import asyncio

    from intake.pipeline import NotFound

    ids = [(await intake.ingest(ReportIn(channel="app", channel_ref=f"p{i}", received_at=intake.clock(),
                                         text="cháy", raw={"n": i}))).report_id for i in range(3)]

    def broken(raw: dict[str, object]) -> dict[str, object]:
        raise ValueError("this patch cannot be applied")

    results = await asyncio.gather(
        intake.patch_report_raw(ids[0], {"call": {"state": "up"}}, outbox=[{
            "topic": "call", "kind": "call.updated", "payload": {"n": 0}}]),
        intake.patch_report_raw(10**6, {"call": {"state": "up"}}),
        intake.patch_report_raw(ids[1], broken),
        intake.patch_report_raw(ids[2], lambda raw: {**raw, "seen": True}),
        intake.publish([{"topic": "call", "kind": "call.transcript", "payload": {"text": "x"}}]),
        return_exceptions=True)
    assert results[0] == {"n": 0, "call": {"state": "up"}}
    assert isinstance(results[1], NotFound) and isinstance(results[2], ValueError)
    assert results[3] == {"n": 2, "seen": True} and results[4] is None
    async with intake.store.read() as repo:
        assert (await repo.report(ids[1]))["raw"] == {"n": 1}  # type: ignore[index]
        kinds = [o["kind"] for o in await repo.outbox_after(0)]
    assert "call.updated" in kinds and "call.transcript" in kinds
