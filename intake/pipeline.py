"""ingest(): the one road every report walks, whatever door it came through.

verify and parse happen in the channel adapter; here the report is normalised,
classified, located (pure, in `core.prepare`), matched to an incident and
stored in one transaction together with its audit events and outbox rows.
Only then does the caller tell the reporter "received".
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from intake.config import Settings
from intake.core import geo, match
from intake.core.model import (
    Category,
    Classification,
    Evidence,
    Facility,
    IncidentStatus,
    IncidentView,
    Location,
    LocationSource,
    Outcome,
    ReportIn,
)
from intake.core.prepare import Prepared, payload_digest, prepare
from intake.learn.installed import installed_model
from intake.store import Store
from intake.store.repo import IntegrityError, Repo, incident_view, row_location

log = logging.getLogger(__name__)

MAX_REPORTER_KEYS = 50
MAX_TOKENS = 300
SYSTEM = "intake"


class IngestError(Exception):
    """Base for errors a caller can act on (turned into 4xx by the web layer)."""


class IdempotencyConflict(IngestError):
    """The same (channel, channel_ref) was used before for a different payload."""


class NotFound(IngestError):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestResult:
    report_id: int
    incident_id: int | None
    outcome: Outcome
    category: Category
    confidence: float
    needs_review: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)
    related_incident_id: int | None = None
    location: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "incident_id": self.incident_id,
            "outcome": self.outcome.value,
            "category": self.category.value,
            "confidence": round(self.confidence, 3),
            "needs_review": self.needs_review,
            "reasons": self.reasons,
            "related_incident_id": self.related_incident_id,
            "location": self.location,
        }


def location_dict(loc: Location | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    return {
        "lat": loc.lat,
        "lon": loc.lon,
        "accuracy_m": loc.accuracy_m,
        "source": loc.source.value,
        "label": loc.label,
        "ward_code": loc.ward_code,
        "observed_at": loc.observed_at.isoformat() if loc.observed_at else None,
    }


def _location_columns(loc: Location | None, *, with_observed: bool) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "lat": loc.lat if loc else None,
        "lon": loc.lon if loc else None,
        "accuracy_m": loc.accuracy_m if loc else None,
        "location_source": loc.source.value if loc else None,
        "location_label": loc.label if loc else None,
        "ward_code": loc.ward_code if loc else None,
    }
    if with_observed:
        cols["location_observed_at"] = loc.observed_at if loc else None
    return cols


def classification_data(c: Classification) -> dict[str, Any]:
    return {
        "category": c.category.value,
        "confidence": round(c.confidence, 3),
        "needs_review": c.needs_review,
        "kinds": list(c.kinds),
        "also_notify": [a.value for a in c.also_notify],
        "evidence": [
            {
                "term": e.term,
                "category": e.category.value,
                "weight": round(e.weight, 3),
                "source": e.source,
                "negated": e.negated,
                "kind": e.kind,
            }
            for e in c.evidence
        ],
    }


def incident_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of an incident (API, stream, CLI)."""
    return {
        "id": row["id"],
        "category": row["category"],
        "status": row["status"],
        "priority": row["priority"],
        "summary": row["summary"],
        "lat": row["lat"],
        "lon": row["lon"],
        "accuracy_m": row["accuracy_m"],
        "location_source": row["location_source"],
        "location_label": row["location_label"],
        "ward_code": row["ward_code"],
        "report_count": row["report_count"],
        "opened_at": _iso(row["opened_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_report_at": _iso(row["last_report_at"]),
        "closed_at": _iso(row["closed_at"]),
        "needs_review": row["needs_review"],
        "review_of": row["review_of"],
        "related_id": row["related_id"],
        "merged_into": row["merged_into"],
        "kinds": row["kinds"],
        "also_notify": row["also_notify"],
        "lease": (
            {"holder": row["lease_holder"], "expires_at": _iso(row["lease_expires_at"])}
            if row["lease_holder"]
            else None
        ),
        "acked_by": row["acked_by"],
        "acked_at": _iso(row["acked_at"]),
        "version": row["version"],
    }


def report_payload(row: dict[str, Any], *, with_raw: bool = False) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "channel": row["channel"],
        "channel_ref": row["channel_ref"],
        "received_at": _iso(row["received_at"]),
        "updated_at": _iso(row["updated_at"]),
        "incident_id": row["incident_id"],
        "phone": row["phone"],
        "phone_raw": row["phone_raw"],
        "phone_valid": row["phone_valid"],
        "reporter_id": row["reporter_id"],
        "reporter_name": row["reporter_name"],
        "text": row["text"],
        "language": row["language"],
        "category": row["category"],
        "confidence": row["confidence"],
        "needs_review": row["needs_review"],
        "classification": row["classification"],
        "location": location_dict(row_location(row)),
        "dialled_number": row["dialled_number"],
        "device_id": row["device_id"],
        "device_event_code": row["device_event_code"],
        "facility_id": row["facility_id"],
        "attachments": row["attachments"],
        "match": row["match"],
    }
    if with_raw:
        out["raw"] = row["raw"]
    return out


#: Incident columns the matching step may change when a report joins.
_MATCH_COLUMNS = (
    "updated_at", "last_report_at", "lat", "lon", "accuracy_m", "location_source", "location_label", "ward_code",
    "cell", "category", "priority", "reporter_keys", "text_tokens", "kinds", "summary",
)

#: Columns a new incident starts with besides what matching sets (for its first push, before it is read back).
_INCIDENT_DEFAULTS: dict[str, Any] = {
    "closed_at": None, "merged_into": None, "lease_holder": None, "lease_expires_at": None, "acked_by": None,
    "acked_at": None, "closed_by": None, "close_reason": None, "version": 1,
}


def _real(value: int | None, real: dict[int, int]) -> int | None:
    """Temporary (negative) ids of incidents opened in this group → their stored ids."""
    if value is None or value > 0:
        return value
    return real.get(value, value)


_ID_KEYS = frozenset({"incident_id", "possible_duplicate_of", "review_of", "related_id"})


def _resolve_ids(data: Any, real: dict[int, int]) -> Any:
    """Replace temporary incident ids inside reasons and event data."""
    if isinstance(data, list):
        return [_resolve_ids(x, real) for x in data]
    if isinstance(data, dict):
        return {k: _real(v, real) if k in _ID_KEYS and isinstance(v, int) else _resolve_ids(v, real)
                for k, v in data.items()}
    return data


@dataclass(frozen=True, slots=True)
class Pending:
    prepared: Prepared
    facility: Facility | None


class _Candidates:
    """The incidents a group of reports may match, indexed by search cell and reporter.

    Rows are updated in place as reports of the group attach, so a report sees
    the incidents the earlier reports of its own group opened or moved.
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self._by_cell: dict[str, set[int]] = {}
        self._by_reporter: dict[str, set[int]] = {}
        self._views: dict[int, IncidentView] = {}
        for row in rows:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["id"]] = row
        self._index(row)

    def _index(self, row: dict[str, Any]) -> None:
        if row["cell"]:
            self._by_cell.setdefault(row["cell"], set()).add(row["id"])
        for key in row["reporter_keys"] or ():
            self._by_reporter.setdefault(key, set()).add(row["id"])

    def changed(self, row: dict[str, Any], old: dict[str, Any]) -> None:
        self._views.pop(row["id"], None)
        if old["cell"] != row["cell"] and old["cell"]:
            self._by_cell[old["cell"]].discard(row["id"])
        self._index(row)

    def for_report(self, p: Prepared, cells: list[str], since: datetime, policy: match.MatchPolicy
                   ) -> list[IncidentView]:
        ids: set[int] = set()
        for c in cells:
            ids |= self._by_cell.get(c, set())
        if p.reporter_key:
            ids |= self._by_reporter.get(p.reporter_key, set())
        out = []
        for i in sorted(ids):
            row = self.rows[i]
            if row["status"] not in ("open", "acknowledged") or row["last_report_at"] < since:
                continue
            view = self._views.get(i)
            if view is None:
                view = self._views[i] = incident_view(row)
            far = (p.location is not None and view.location is not None
                   and match.beyond_reach(p.location, view.location, view.category, policy, view.kinds))
            if far and p.reporter_key not in view.reporter_keys:
                continue  # scores 0 on place: not worth scoring
            out.append(view)
        return out


@dataclass(frozen=True, slots=True)
class RawPatch:
    """A change to what a report carries beside its words and place, and/or rows for the stream."""

    report_id: int | None  # None: outbox rows only
    patch: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None
    outbox: Sequence[dict[str, Any]]


ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(slots=True)
class _Entry(Generic[ItemT, ResultT]):
    item: ItemT
    result: asyncio.Future[ResultT]
    lead: asyncio.Future[None]  # set when this caller is to take over running groups


class GroupCommit(Generic[ItemT, ResultT]):
    """Runs submitted items in groups, first come first served, with no background task.

    The caller who finds nobody running groups leads: it runs group after group
    until its own item is done, then hands the lead to the oldest waiting caller.
    Every caller gets its own result or exception.
    """

    def __init__(self, run: Callable[[list[ItemT]], Awaitable[list[ResultT | Exception]]],
                 max_group: int = 128) -> None:
        self._run = run
        self._max = max_group
        self._pending: list[_Entry[ItemT, ResultT]] = []
        self._leading = False

    async def submit(self, item: ItemT) -> ResultT:
        loop = asyncio.get_running_loop()
        entry: _Entry[ItemT, ResultT] = _Entry(item, loop.create_future(), loop.create_future())
        self._pending.append(entry)
        if not self._leading:
            self._leading = True
            entry.lead.set_result(None)
        while not entry.result.done():
            waiting: set[asyncio.Future[Any]] = {entry.result, entry.lead}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if entry.lead.done() and not entry.result.done():
                try:
                    await self._lead_until(entry)
                except BaseException:
                    if entry.result.done() and not entry.result.cancelled():
                        entry.result.exception()  # mark it read: this caller gets the cancellation instead
                    raise
        return entry.result.result()

    async def _lead_until(self, entry: _Entry[ItemT, ResultT]) -> None:
        try:
            while not entry.result.done() and self._pending:
                group, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._one_group(group)
        finally:
            if self._pending:
                self._pending[0].lead.set_result(None)
            else:
                self._leading = False

    async def _one_group(self, group: list[_Entry[ItemT, ResultT]]) -> None:
        try:
            results: list[ResultT | Exception] = await self._run([e.item for e in group])
        except Exception as exc:  # the whole group failed (the store is down): each caller gets the error
            results = [exc] * len(group)
        except BaseException:
            for e in group:
                if not e.result.done():
                    e.result.set_exception(RuntimeError("ingest cancelled"))
            raise
        for e, result in zip(group, results, strict=True):
            if e.result.done():
                continue
            if isinstance(result, Exception):
                e.result.set_exception(result)
            else:
                e.result.set_result(result)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ref_lock_key(channel: str, channel_ref: str) -> int:
    # 32-bit crc in the upper half, so it never collides with H3 cell keys (which have high bits set)
    return (zlib.crc32(f"{channel}\x00{channel_ref}".encode()) << 16) | 0x5EF


def facility_from_row(row: dict[str, Any] | None, device_ids: tuple[str, ...] = ()) -> Facility | None:
    if row is None:
        return None
    loc = None
    if row["lat"] is not None and row["lon"] is not None:
        loc = Location(row["lat"], row["lon"], row["accuracy_m"] or 30.0, LocationSource.FACILITY,
                       ward_code=row["ward_code"])
    return Facility(
        id=row["id"],
        name=row["name"],
        address=row["address"],
        location=loc,
        contact_name=row["contact_name"],
        contact_phone=row["contact_phone"],
        device_ids=device_ids,
    )


class Intake:
    """The application service: ingest, update_report and the incident actions."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        policy: match.MatchPolicy = match.DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.clock = clock
        self.policy = policy
        self.model = installed_model(self.settings)  # a retrained text model, else the package's
        self._group: GroupCommit[Pending, IngestResult] = GroupCommit(self._ingest_group)
        # Small writes (a call's state, a call-back's outcome, stream events) from many calls at once are
        # committed together too: one transaction and one fsync for a burst.
        self._patches: GroupCommit[RawPatch, dict[str, Any]] = GroupCommit(self._patch_group)

    # --- the one road ----------------------------------------------------------

    def _prepare(self, report: ReportIn, facility: Facility | None,
                 classification: Classification | None = None) -> Prepared:
        return prepare(
            report,
            facility=facility,
            region=self.settings.default_region,
            default_province=self.settings.default_province,
            threshold=self.settings.classify_threshold,
            classification=classification,
            model=self.model,
        )

    async def _facility_for(self, repo: Repo, report: ReportIn) -> Facility | None:
        row = None
        if report.facility_id is not None:
            row = await repo.facility(report.facility_id)
        elif report.device_id:
            row = await repo.facility_by_device(report.device_id)
        return facility_from_row(row)

    async def ingest(self, report: ReportIn) -> IngestResult:
        """Store a report and match it to an incident; returns once it is durable.

        Reports arriving together are committed together (group commit): one
        transaction, a handful of statements and one fsync for the whole group.
        """
        if report.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        facility = None
        if report.device_id or report.facility_id is not None:
            async with self.store.read() as repo:
                facility = await self._facility_for(repo, report)
        return await self._group.submit(Pending(self._prepare(report, facility), facility))

    def _duplicate(self, row: dict[str, Any], report: ReportIn) -> IngestResult:
        if row["payload_sha256"] != payload_digest(report):
            raise IdempotencyConflict(
                f"{report.channel} reference {report.channel_ref!r} was already used for a different report "
                f"(report {row['id']})"
            )
        return IngestResult(
            report_id=row["id"],
            incident_id=row["incident_id"],
            outcome=Outcome.DUPLICATE,
            category=Category(row["category"]),
            confidence=row["confidence"],
            needs_review=row["needs_review"],
            reasons=[{"code": "duplicate", "points": 0, "detail": "this delivery was already stored"}],
            location=location_dict(row_location(row)),
        )

    async def _ingest_group(self, group: list[Pending]) -> list[IngestResult | Exception]:
        try:
            return await self._ingest_batch(group)
        except IntegrityError:
            if len(group) == 1:
                # Another node stored the same (channel, channel_ref) between our check and our insert.
                report = group[0].prepared.report
                async with self.store.read() as repo:
                    existing = await repo.report_by_ref(report.channel, report.channel_ref)
                if existing is None:
                    raise
                return [self._duplicate(existing, report)]
        # One bad apple must not spoil the others: retry one by one.
        results: list[IngestResult | Exception] = []
        for item in group:
            try:
                results.extend(await self._ingest_group([item]))
            except Exception as exc:  # reported to that item's caller, not swallowed
                results.append(exc)
        return results

    async def _ingest_batch(self, group: list[Pending]) -> list[IngestResult | Exception]:
        now = self.clock()
        results: list[IngestResult | Exception | None] = [None] * len(group)
        async with self.store.transaction() as repo:
            refs = [(g.prepared.report.channel, g.prepared.report.channel_ref) for g in group]
            await repo.lock_keys(_ref_lock_key(*ref) for ref in refs)
            stored = {(r["channel"], r["channel_ref"]): r for r in await repo.reports_by_refs(refs)}
            fresh: list[int] = []
            first_of_ref: dict[tuple[str, str], int] = {}
            for i, (g, ref) in enumerate(zip(group, refs, strict=True)):
                if ref in stored:
                    results[i] = self._safe_duplicate(stored[ref], g.prepared.report)
                elif ref in first_of_ref:
                    results[i] = None  # resolved below, as a retry of the earlier item in this group
                else:
                    first_of_ref[ref] = i
                    fresh.append(i)
            if fresh:
                await self._match_and_store(repo, group, fresh, results, now)
        for i, (g, ref) in enumerate(zip(group, refs, strict=True)):
            if results[i] is None:
                first = results[first_of_ref[ref]]
                if isinstance(first, IngestResult):
                    if payload_digest(group[first_of_ref[ref]].prepared.report) != payload_digest(g.prepared.report):
                        results[i] = IdempotencyConflict(
                            f"{ref[0]} reference {ref[1]!r} was already used for a different report")
                    else:
                        results[i] = replace(first, outcome=Outcome.DUPLICATE, reasons=[
                            {"code": "duplicate", "points": 0, "detail": "this delivery was already stored"}])
                else:
                    results[i] = first
        return [r for r in results if r is not None]

    def _safe_duplicate(self, row: dict[str, Any], report: ReportIn) -> IngestResult | Exception:
        try:
            return self._duplicate(row, report)
        except IdempotencyConflict as exc:
            return exc

    async def _match_and_store(
        self, repo: Repo, group: list[Pending], fresh: list[int], results: list[IngestResult | Exception | None],
        now: datetime,
    ) -> None:
        items = [group[i].prepared for i in fresh]
        cells_of = [geo.search_cells(p.location.lat, p.location.lon) if p.location else [] for p in items]
        since = min(p.report.received_at for p in items) - self.policy.stale
        await repo.lock_keys(geo.cell_lock_key(c) for cells in cells_of for c in cells)
        found = _Candidates(await repo.match_candidates(
            [c for cells in cells_of for c in cells], [p.reporter_key for p in items if p.reporter_key], since))
        state = found.rows
        before = {i: dict(row) for i, row in state.items()}
        added: dict[int, int] = {}
        new_ids: list[int] = []  # temporary ids (negative) of incidents opened in this group, in order
        report_rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []  # incident_id / report_id may be temporary: resolved after insert
        pushes: list[dict[str, Any]] = []
        decisions: list[match.Decision] = []
        for n, (p, cells) in enumerate(zip(items, cells_of, strict=True)):
            views = found.for_report(p, cells, p.report.received_at - self.policy.stale, self.policy)
            decision = match.decide(p.subject(), views, self.policy)
            decisions.append(decision)
            rep = self._report_columns(p, group[fresh[n]].facility, now)
            rep["match"] = {"outcome": decision.outcome.value, "score": round(decision.score, 3),
                            "reasons": decision.reasons_data()}
            if decision.outcome == Outcome.ATTACHED:
                assert decision.incident_id is not None
                incident_id = decision.incident_id
                row = state[incident_id]
                old = dict(row)
                row.update(self._absorb(row, p, now))
                row["report_count"] += 1
                found.changed(row, old)
                if incident_id > 0:
                    added[incident_id] = added.get(incident_id, 0) + 1
                events.append(self._event(incident_id, "report_attached", n, now, {
                    "score": round(decision.score, 3), "reasons": decision.reasons_data(),
                    "channel": p.report.channel}))
                events.extend(self._change_events(old, row, n, now))
                kind = "incident.updated"
            else:
                incident_id = -(len(new_ids) + 1)
                new_ids.append(incident_id)
                found.add({**_INCIDENT_DEFAULTS, **self._new_incident_columns(p, decision, now), "id": incident_id})
                events.append(self._event(incident_id, "opened", n, now, {
                    "reasons": decision.reasons_data(), "channel": p.report.channel, "category": p.category.value}))
                if decision.outcome == Outcome.REVIEW:
                    events.append(self._event(incident_id, "review_flagged", n, now, {
                        "possible_duplicate_of": decision.incident_id, "score": round(decision.score, 3)}))
                kind = "incident.opened"
            rep["incident_id"] = incident_id
            report_rows.append(rep)
            pushes.append({"kind": kind, "incident": dict(state[incident_id]), "report": n,
                           "channel": p.report.channel, "outcome": decision.outcome.value})

        # Write: new incidents, then reports, then updates, events and pushes, each in one statement.
        real: dict[int, int] = {}
        new_rows = [{k: v for k, v in state[t].items() if k != "id"} for t in new_ids]
        for row in new_rows:
            for key in ("review_of", "related_id"):
                if row[key] is not None and row[key] < 0:
                    row[key] = None  # points into this group: set once its id is known
        for t, real_id in zip(new_ids, await repo.insert_incidents(new_rows), strict=True):
            real[t] = real_id
        fixups = [
            {"b_id": real[t], "review_of": _real(state[t]["review_of"], real),
             "related_id": _real(state[t]["related_id"], real)}
            for t in new_ids
            if (state[t]["review_of"] or 0) < 0 or (state[t]["related_id"] or 0) < 0
        ]
        await repo.update_incidents(fixups)
        for rep in report_rows:
            rep["incident_id"] = _real(rep["incident_id"], real)
            rep["match"] = _resolve_ids(rep["match"], real)
        report_ids = await repo.insert_reports(report_rows)
        await repo.update_incidents([
            {"b_id": i, "b_added": added.get(i, 0), **{k: state[i][k] for k in _MATCH_COLUMNS}}
            for i in sorted(i for i in state if i > 0 and state[i] != before[i])
        ], add_reports=True)
        for ev in events:
            ev["incident_id"] = _real(ev["incident_id"], real)
            ev["report_id"] = report_ids[ev["report_id"]]
            ev["data"] = _resolve_ids(ev["data"], real)
        await repo.add_events(events)
        outbox_rows = []
        for push in pushes:
            incident = push["incident"]
            incident["id"] = _real(incident["id"], real)
            for key in ("review_of", "related_id"):
                incident[key] = _real(incident[key], real)
            report_id = report_ids[push["report"]]
            outbox_rows.append({
                "at": now, "topic": "incident", "kind": push["kind"], "incident_id": incident["id"],
                "report_id": report_id,
                "payload": {"incident": incident_payload(incident),
                            "report": {"id": report_id, "channel": push["channel"], "outcome": push["outcome"]}},
            })
        await repo.write_outbox(outbox_rows)
        for n, (i, p, decision) in enumerate(zip(fresh, items, decisions, strict=True)):
            results[i] = IngestResult(
                report_id=report_ids[n],
                incident_id=report_rows[n]["incident_id"],
                outcome=decision.outcome,
                category=p.category,
                confidence=p.classification.confidence,
                needs_review=p.classification.needs_review or decision.outcome == Outcome.REVIEW,
                reasons=_resolve_ids(decision.reasons_data(), real),
                related_incident_id=_real(decision.related_incident_id, real),
                location=location_dict(p.location),
            )

    @staticmethod
    def _event(incident_id: int, kind: str, report_id: int | None, now: datetime, data: dict[str, Any],
               actor: str = SYSTEM) -> dict[str, Any]:
        """An audit event row. Inside a group, report_id is the report's index until the reports are stored."""
        return {"incident_id": incident_id, "kind": kind, "actor": actor, "at": now, "report_id": report_id,
                "data": data}

    def _change_events(self, old: dict[str, Any], new: dict[str, Any], report_id: int | None, now: datetime,
                       actor: str = SYSTEM) -> list[dict[str, Any]]:
        out = []
        if old["category"] != new["category"]:
            out.append(self._event(old["id"], "category_changed", report_id, now,
                                   {"from": old["category"], "to": new["category"]}, actor))
        if (old["lat"], old["lon"]) != (new["lat"], new["lon"]):
            out.append(self._event(old["id"], "location_changed", report_id, now, {
                "from": [old["lat"], old["lon"], old["accuracy_m"]],
                "to": [new["lat"], new["lon"], new["accuracy_m"]], "source": new["location_source"]}, actor))
        return out

    async def _candidates(self, repo: Repo, p: Prepared, exclude: int) -> list[IncidentView]:
        """The incidents a grown report may now match (the caller holds the cell locks)."""
        cells = geo.search_cells(p.location.lat, p.location.lon) if p.location else []
        rows = await repo.match_candidates(cells, [p.reporter_key] if p.reporter_key else [],
                                           p.report.received_at - self.policy.stale)
        return [incident_view(row) for row in rows if row["id"] != exclude]

    def _report_columns(self, p: Prepared, facility: Facility | None, now: datetime) -> dict[str, Any]:
        r = p.report
        c = p.classification
        return {
            "channel": r.channel,
            "channel_ref": r.channel_ref,
            "payload_sha256": p.payload_sha256,
            "received_at": r.received_at,
            "stored_at": now,
            "updated_at": now,
            "reporter_key": p.reporter_key,
            "phone_raw": p.phone.raw if p.phone else None,
            "phone": p.phone.e164 if p.phone else None,
            "phone_valid": p.phone.valid if p.phone else None,
            "reporter_id": r.reporter_id,
            "reporter_name": r.reporter_name,
            "text": p.text,
            "language": r.language,
            "category": c.category.value,
            "confidence": c.confidence,
            "needs_review": c.needs_review,
            "classification": classification_data(c),
            "category_hint": r.category_hint.value if r.category_hint else None,
            **_location_columns(p.location, with_observed=True),
            "dialled_number": p.dialled_number or r.dialled_number,
            "device_id": r.device_id,
            "device_event_code": r.device_event_code,
            "facility_id": facility.id if facility else r.facility_id,
            "attachments": list(r.attachments),
            "raw": r.raw,
        }

    def _new_incident_columns(self, p: Prepared, decision: match.Decision, now: datetime) -> dict[str, Any]:
        loc = p.location
        return {
            "category": p.category.value,
            "status": IncidentStatus.OPEN.value,
            "priority": p.priority,
            "summary": p.text[:280],
            **_location_columns(loc, with_observed=False),
            "cell": geo.cell(loc.lat, loc.lon) if loc else None,
            "opened_at": p.report.received_at,
            "updated_at": now,
            "last_report_at": p.report.received_at,
            "report_count": 1,
            "needs_review": decision.outcome == Outcome.REVIEW or p.classification.needs_review,
            "review_of": decision.incident_id if decision.outcome == Outcome.REVIEW else None,
            "related_id": decision.related_incident_id,
            "kinds": list(p.classification.kinds),
            "also_notify": [a.value for a in p.classification.also_notify],
            "reporter_keys": [p.reporter_key] if p.reporter_key else [],
            "text_tokens": sorted(p.tokens)[:MAX_TOKENS],
        }

    def _absorb(self, row: dict[str, Any], p: Prepared, now: datetime) -> dict[str, Any]:
        """What an incident takes from a report that joins it."""
        values: dict[str, Any] = {
            "updated_at": now,
            "last_report_at": max(row["last_report_at"], p.report.received_at),
        }
        current = row_location(row)
        if p.location is not None and match.improves(current, p.location):
            values.update(_location_columns(p.location, with_observed=False))
            values["cell"] = geo.cell(p.location.lat, p.location.lon)
        if row["category"] == Category.UNKNOWN.value and p.category != Category.UNKNOWN:
            values["category"] = p.category.value
            values["priority"] = min(row["priority"], p.priority)
        elif p.priority < row["priority"] and p.category.value == row["category"]:
            values["priority"] = p.priority
        keys = list(row["reporter_keys"] or [])
        if p.reporter_key and p.reporter_key not in keys and len(keys) < MAX_REPORTER_KEYS:
            values["reporter_keys"] = [*keys, p.reporter_key]
        tokens = set(row["text_tokens"] or [])
        if not p.tokens <= tokens and len(tokens) < MAX_TOKENS:
            values["text_tokens"] = sorted(tokens | p.tokens)[:MAX_TOKENS]
        kinds = list(row["kinds"] or [])
        new_kinds = [k for k in p.classification.kinds if k not in kinds]
        if new_kinds:
            values["kinds"] = kinds + new_kinds
        if not row["summary"] and p.text:
            values["summary"] = p.text[:280]
        return values

    async def _changed_events(
        self, repo: Repo, before: dict[str, Any], values: dict[str, Any], now: datetime, report_id: int | None,
        actor: str = SYSTEM,
    ) -> None:
        await repo.add_events(self._change_events(before, {**before, **values}, report_id, now, actor))

    async def publish_incident(
        self, repo: Repo, kind: str, incident: dict[str, Any], now: datetime, *,
        report_id: int | None = None, extra: dict[str, Any] | None = None,
    ) -> None:
        payload = {"incident": incident_payload(incident), **(extra or {})}
        await repo.write_outbox([{
            "at": now, "topic": "incident", "kind": kind, "incident_id": incident["id"],
            "report_id": report_id, "payload": payload,
        }])

    # --- a report that grows -----------------------------------------------------

    async def update_report(
        self,
        report_id: int,
        *,
        text: str | None = None,
        location: Location | None = None,
        category: Category | None = None,
        attachments: tuple[dict[str, Any], ...] = (),
        raw_patch: dict[str, Any] | None = None,
        actor: str = SYSTEM,
        location_supersedes: bool = False,
    ) -> IngestResult:
        """Apply what arrived later (transcript, location, a call-taker's decision) and walk the road again.

        `category` is a person's decision: it replaces the classifier's. A location with source
        CALLTAKER is kept over any later automatic fix. Otherwise the more accurate location wins,
        unless `location_supersedes`: the new fix comes from the same moving device (a live
        location), so it is where the reporter is now, however accurate.
        """
        now = self.clock()
        async with self.store.transaction() as repo:
            row = await repo.report(report_id, for_update=True)
            if row is None:
                raise NotFound(f"report {report_id} does not exist")
            old_loc = row_location(row)
            if location is None:
                new_loc = old_loc
            elif location_supersedes and not (old_loc is not None and old_loc.source == LocationSource.CALLTAKER):
                new_loc = location
            else:
                new_loc = match.better_location(old_loc, location)
            facility = facility_from_row(await repo.facility(row["facility_id"])) if row["facility_id"] else None
            report = ReportIn(
                channel=row["channel"],
                channel_ref=row["channel_ref"],
                received_at=row["received_at"],
                text=row["text"] if text is None else text,
                phone=row["phone_raw"],
                reporter_id=row["reporter_id"],
                reporter_name=row["reporter_name"],
                language=row["language"],
                location=new_loc,
                category_hint=Category(row["category_hint"]) if row["category_hint"] else None,
                dialled_number=row["dialled_number"],
                device_id=row["device_id"],
                device_event_code=row["device_event_code"],
                facility_id=row["facility_id"],
            )
            decided = None
            if category is not None:
                decided = Classification(category, 1.0, (Evidence(f"set by {actor}", category, 1.0, "calltaker"),))
            elif row["classification"].get("evidence") and any(
                e.get("source") == "calltaker" for e in row["classification"]["evidence"]
            ):
                prev = row["classification"]
                decided = Classification(Category(prev["category"]), 1.0,
                                         (Evidence(prev["evidence"][0]["term"], Category(prev["category"]), 1.0,
                                                   "calltaker"),))
            p = self._prepare(report, facility, decided)
            values = {
                "updated_at": now,
                "text": p.text,
                "category": p.category.value,
                "confidence": p.classification.confidence,
                "needs_review": p.classification.needs_review,
                "classification": classification_data(p.classification),
                **_location_columns(p.location, with_observed=True),
            }
            if attachments:
                values["attachments"] = list(row["attachments"] or []) + list(attachments)
            if raw_patch:
                values["raw"] = {**(row["raw"] or {}), **raw_patch}
            await repo.update_report(report_id, values)
            result = await self._rematch(repo, row, p, now, actor)
        return result

    async def patch_report_raw(
        self,
        report_id: int,
        patch: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
        *,
        outbox: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Change what a report carries beside its words and place (a call's state, a call-back's outcome).

        Nothing is classified, located or matched again: none of it changes what the report says. The row
        is locked while `patch` (a dict of top-level keys, or a function of the current raw) is applied, so
        two writers never lose each other's keys; `outbox` rows (topic, kind, payload, ...) go out in the
        same transaction. Patches arriving together are committed together (a function may then run twice:
        it must only compute). Returns the new raw.
        """
        return await self._patches.submit(RawPatch(report_id, patch, tuple(outbox)))

    async def publish(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows for the stream (topic, kind, payload, report_id, incident_id), committed with other small
        writes that arrive together."""
        await self._patches.submit(RawPatch(None, None, tuple(rows)))

    async def _patch_group(self, group: list[RawPatch]) -> list[dict[str, Any] | Exception]:
        try:
            return await self._patch_batch(group)
        except Exception:
            if len(group) == 1:
                raise
        # One bad patch must not fail the others committed with it: each alone, with its own outcome.
        out: list[dict[str, Any] | Exception] = []
        for item in group:
            try:
                out.extend(await self._patch_batch([item]))
            except Exception as exc:
                out.append(exc)
        return out

    async def _patch_batch(self, group: list[RawPatch]) -> list[dict[str, Any] | Exception]:
        now = self.clock()
        rows: list[dict[str, Any]] = []
        results: list[dict[str, Any] | Exception] = [{} for _ in group]
        # Rows are locked in report order, so two nodes committing overlapping groups cannot deadlock.
        order = sorted(range(len(group)), key=lambda i: group[i].report_id or 0)
        async with self.store.transaction() as repo:
            for i in order:
                item = group[i]
                if item.report_id is None:
                    rows.extend({"at": now, "incident_id": None, "report_id": None, **o} for o in item.outbox)
                    continue
                row = await repo.report(item.report_id, for_update=True)
                if row is None:
                    results[i] = NotFound(f"report {item.report_id} does not exist")
                    continue
                raw = dict(row["raw"] or {})
                patch = item.patch
                new = patch(raw) if callable(patch) else {**raw, **(patch or {})}
                await repo.update_report(item.report_id, {"raw": new, "updated_at": now})
                rows.extend({"at": now, "incident_id": row["incident_id"], "report_id": item.report_id, **o}
                            for o in item.outbox)
                results[i] = new
            if rows:
                await repo.write_outbox(rows)  # last in the transaction (see Repo.write_outbox)
        return results

    async def _rematch(
        self, repo: Repo, report_row: dict[str, Any], p: Prepared, now: datetime, actor: str
    ) -> IngestResult:
        report_id = report_row["id"]
        incident_id = report_row["incident_id"]
        # Cells before rows, as in ingest: both the report's new place and its incident's current one.
        current = await repo.incident(incident_id) if incident_id else None
        places = [loc for loc in (p.location, row_location(current) if current else None) if loc is not None]
        await repo.lock_keys(geo.cell_lock_key(c) for loc in places for c in geo.search_cells(loc.lat, loc.lon))
        incident = await repo.incident(incident_id, for_update=True) if incident_id else None
        reasons: list[dict[str, Any]] = []
        outcome = Outcome.UPDATED
        if incident is not None and incident["report_count"] <= 1 and IncidentStatus(incident["status"]).is_active:
            # The report carries its incident: the incident becomes what the report now says ...
            values = self._absorb_alone(incident, p, now)
            await repo.update_incident(incident_id, values)
            await self._changed_events(repo, incident, values, now, report_id, actor)
            # ... and if it now matches another active incident, it joins that one.
            candidates = await self._candidates(repo, p, exclude=incident_id)
            decision = match.decide(p.subject(), candidates, self.policy)
            reasons = decision.reasons_data()
            if decision.outcome == Outcome.ATTACHED and decision.incident_id is not None:
                target = decision.incident_id
                await self._merge(repo, incident_id, target, now, actor=SYSTEM, reasons=reasons)
                outcome = Outcome.ATTACHED
                incident_id = target
            elif decision.outcome == Outcome.REVIEW and not incident["needs_review"]:
                await repo.update_incident(incident_id, {"needs_review": True, "review_of": decision.incident_id})
                await repo.add_event(incident_id, "review_flagged", actor=SYSTEM, at=now, report_id=report_id,
                                     data={"possible_duplicate_of": decision.incident_id,
                                           "score": round(decision.score, 3)})
                outcome = Outcome.REVIEW
            await repo.update_report(report_id, {"match": {"outcome": outcome.value,
                                                           "score": round(decision.score, 3),
                                                           "reasons": reasons}})
        elif incident is not None:
            # Other reports share the incident: take what is better, and ask a person if the report
            # no longer fits rather than tearing the incident apart automatically.
            values = self._absorb(incident, p, now)
            view = incident_view({**incident, **values})
            fit = match.score(p.subject(), view, self.policy)
            if not fit.compatible and not incident["needs_review"]:
                values["needs_review"] = True
                await repo.add_event(incident_id, "review_flagged", actor=SYSTEM, at=now, report_id=report_id,
                                     data={"report_no_longer_fits": report_id,
                                           "reasons": [r.as_dict() for r in fit.reasons]})
            if not fit.compatible:
                values.pop("category", None)
            await repo.update_incident(incident_id, values)
            await self._changed_events(repo, incident, values, now, report_id, actor)
            reasons = [r.as_dict() for r in fit.reasons]
        if incident_id is not None:
            current = await repo.incident(incident_id)
            assert current is not None
            await self.publish_incident(repo, "incident.updated", current, now, report_id=report_id,
                                extra={"report": {"id": report_id, "channel": report_row["channel"],
                                                  "outcome": outcome.value}})
        return IngestResult(
            report_id=report_id,
            incident_id=incident_id,
            outcome=outcome,
            category=p.category,
            confidence=p.classification.confidence,
            needs_review=p.classification.needs_review,
            reasons=reasons,
            location=location_dict(p.location),
        )

    def _absorb_alone(self, row: dict[str, Any], p: Prepared, now: datetime) -> dict[str, Any]:
        loc = p.location
        values: dict[str, Any] = {
            "updated_at": now,
            "category": p.category.value,
            "priority": p.priority,
            "summary": p.text[:280],
            "kinds": list(p.classification.kinds),
            "also_notify": [a.value for a in p.classification.also_notify],
            "text_tokens": sorted(p.tokens)[:MAX_TOKENS],
        }
        if loc is not None:
            values.update(_location_columns(loc, with_observed=False))
            values["cell"] = geo.cell(loc.lat, loc.lon)
        return values

    # --- incident actions ----------------------------------------------------------

    async def _merge(
        self, repo: Repo, source_id: int, target_id: int, now: datetime, *, actor: str,
        reasons: list[dict[str, Any]] | None = None,
    ) -> None:
        source = await repo.incident(source_id, for_update=True)
        target = await repo.incident(target_id, for_update=True)
        assert source is not None and target is not None
        moved = await repo.reports_of_incident(source_id)
        for rep in moved:
            await repo.update_report(rep["id"], {"incident_id": target_id, "updated_at": now})
        await repo.update_incident(source_id, {
            "status": IncidentStatus.MERGED.value, "merged_into": target_id, "updated_at": now,
            "closed_at": now, "report_count": 0, "lease_holder": None, "lease_expires_at": None,
        })
        values = self._merge_values(target, source, len(moved), now)
        await repo.update_incident(target_id, values)
        await repo.add_event(source_id, "merged_into", actor=actor, at=now,
                             data={"into": target_id, "reports": [r["id"] for r in moved], "reasons": reasons or []})
        await repo.add_event(target_id, "merged_from", actor=actor, at=now,
                             data={"from": source_id, "reports": [r["id"] for r in moved], "reasons": reasons or []})
        await self._changed_events(repo, target, values, now, None, actor)
        merged = await repo.incident(source_id)
        assert merged is not None
        await self.publish_incident(repo, "incident.merged", merged, now, extra={"into": target_id})

    def _merge_values(
        self, target: dict[str, Any], source: dict[str, Any], moved: int, now: datetime
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "updated_at": now,
            "report_count": target["report_count"] + moved,
            "last_report_at": max(target["last_report_at"], source["last_report_at"]),
            "opened_at": min(target["opened_at"], source["opened_at"]),
            "priority": min(target["priority"], source["priority"]),
            "reporter_keys": sorted(set(target["reporter_keys"] or []) | set(source["reporter_keys"] or []))[
                :MAX_REPORTER_KEYS],
            "text_tokens": sorted(set(target["text_tokens"] or []) | set(source["text_tokens"] or []))[:MAX_TOKENS],
            "kinds": list(dict.fromkeys([*(target["kinds"] or []), *(source["kinds"] or [])])),
        }
        current, other = row_location(target), row_location(source)
        if other is not None and match.improves(current, other):
            values.update(_location_columns(other, with_observed=False))
            values["cell"] = geo.cell(other.lat, other.lon)
        if target["category"] == Category.UNKNOWN.value and source["category"] != Category.UNKNOWN.value:
            values["category"] = source["category"]
        return values

    # --- incidents rebuilt from their reports (split) --------------------------------

    def incident_refresh_from_reports(self, rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        """An incident's derived fields, recomputed from the reports it holds."""
        from collections import Counter

        from intake.core.match import text_tokens
        from intake.core.prepare import CATEGORY_PRIORITY
        from intake.core.textnorm import tokens

        known = Counter(r["category"] for r in rows if r["category"] != Category.UNKNOWN.value)
        category = known.most_common(1)[0][0] if known else Category.UNKNOWN.value
        best: Location | None = None
        for r in rows:
            best = match.better_location(best, row_location(r))
        words: set[str] = set()
        for r in rows:
            words |= text_tokens(tokens(r["text"] or ""))
        kinds: list[str] = []
        for r in rows:
            for k in (r["classification"] or {}).get("kinds", []):
                if k not in kinds:
                    kinds.append(k)
        return {
            "category": category,
            "priority": CATEGORY_PRIORITY[Category(category)],
            "summary": next((r["text"][:280] for r in rows if r["text"]), ""),
            **_location_columns(best, with_observed=False),
            "cell": geo.cell(best.lat, best.lon) if best else None,
            "opened_at": min(r["received_at"] for r in rows),
            "last_report_at": max(r["received_at"] for r in rows),
            "updated_at": now,
            "report_count": len(rows),
            "kinds": kinds,
            "reporter_keys": sorted({r["reporter_key"] for r in rows if r["reporter_key"]})[:MAX_REPORTER_KEYS],
            "text_tokens": sorted(words)[:MAX_TOKENS],
        }

    def incident_columns_from_reports(self, rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        return {
            **self.incident_refresh_from_reports(rows, now),
            "status": IncidentStatus.OPEN.value,
            "needs_review": False,
            "also_notify": [],
        }
