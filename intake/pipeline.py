"""ingest(): the one road every report walks, whatever door it came through.

verify and parse happen in the channel adapter; here the report is normalised,
classified, located (pure, in `core.prepare`), matched to an incident and
stored in one transaction together with its audit events and outbox rows.
Only then does the caller tell the reporter "received".
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from intake.config import Settings
from intake.core import geo, match
from intake.core.model import (
    Category,
    Classification,
    Evidence,
    Facility,
    IncidentStatus,
    Location,
    LocationSource,
    Outcome,
    ReportIn,
)
from intake.core.prepare import Prepared, prepare
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
        )

    async def _facility_for(self, repo: Repo, report: ReportIn) -> Facility | None:
        row = None
        if report.facility_id is not None:
            row = await repo.facility(report.facility_id)
        elif report.device_id:
            row = await repo.facility_by_device(report.device_id)
        return facility_from_row(row)

    async def ingest(self, report: ReportIn) -> IngestResult:
        if report.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        # Fast path for retried deliveries: no classification, no write lock.
        async with self.store.read() as repo:
            existing = await repo.report_by_ref(report.channel, report.channel_ref)
            facility = await self._facility_for(repo, report) if existing is None else None
        if existing is not None:
            return self._duplicate(existing, report)
        prepared = self._prepare(report, facility)
        try:
            return await self._ingest_prepared(prepared, facility)
        except IntegrityError:
            # Another node stored the same (channel, channel_ref) between our check and our insert.
            async with self.store.read() as repo:
                existing = await repo.report_by_ref(report.channel, report.channel_ref)
            if existing is None:
                raise
            return self._duplicate(existing, report)

    def _duplicate(self, row: dict[str, Any], report: ReportIn) -> IngestResult:
        from intake.core.prepare import payload_digest

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

    async def _ingest_prepared(self, p: Prepared, facility: Facility | None) -> IngestResult:
        r = p.report
        now = self.clock()
        async with self.store.transaction() as repo:
            await repo.lock_key(_ref_lock_key(r.channel, r.channel_ref))
            existing = await repo.report_by_ref(r.channel, r.channel_ref)
            if existing is not None:
                return self._duplicate(existing, r)
            candidates = await self._candidates(repo, p)
            decision = match.decide(p.subject(), candidates, self.policy)

            report_values = self._report_columns(p, facility, now)
            report_values["match"] = {
                "outcome": decision.outcome.value,
                "score": round(decision.score, 3),
                "reasons": decision.reasons_data(),
            }
            if decision.outcome == Outcome.ATTACHED:
                assert decision.incident_id is not None
                incident_id = decision.incident_id
                report_values["incident_id"] = incident_id
                report_id = await repo.insert_report(report_values)
                await self._attach(repo, incident_id, report_id, p, decision, now)
            else:
                incident_id = await repo.insert_incident(self._new_incident_columns(p, decision, now))
                report_values["incident_id"] = incident_id
                report_id = await repo.insert_report(report_values)
                await repo.add_event(
                    incident_id, "opened", actor=SYSTEM, at=now, report_id=report_id,
                    data={"reasons": decision.reasons_data(), "channel": r.channel, "category": p.category.value},
                )
                if decision.outcome == Outcome.REVIEW:
                    await repo.add_event(
                        incident_id, "review_flagged", actor=SYSTEM, at=now, report_id=report_id,
                        data={"possible_duplicate_of": decision.incident_id, "score": round(decision.score, 3)},
                    )
            incident = await repo.incident(incident_id)
            assert incident is not None
            kind = "incident.opened" if decision.outcome != Outcome.ATTACHED else "incident.updated"
            await self._publish(repo, kind, incident, now, report_id=report_id, extra={
                "report": {"id": report_id, "channel": r.channel, "outcome": decision.outcome.value}})
        return IngestResult(
            report_id=report_id,
            incident_id=incident_id,
            outcome=decision.outcome,
            category=p.category,
            confidence=p.classification.confidence,
            needs_review=p.classification.needs_review or decision.outcome == Outcome.REVIEW,
            reasons=decision.reasons_data(),
            related_incident_id=decision.related_incident_id,
            location=location_dict(p.location),
        )

    async def _candidates(self, repo: Repo, p: Prepared, exclude: int | None = None) -> list[Any]:
        since = p.report.received_at - self.policy.stale
        rows: dict[int, dict[str, Any]] = {}
        if p.location is not None:
            cells = geo.search_cells(p.location.lat, p.location.lon)
            await repo.lock_cells(cells)
            for row in await repo.active_incidents_in(cells, since):
                rows[row["id"]] = row
        if p.reporter_key:
            for row in await repo.active_incidents_of_reporter(p.reporter_key, since):
                rows[row["id"]] = row
        if exclude is not None:
            rows.pop(exclude, None)
        return [incident_view(row) for row in rows.values()]

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

    async def _attach(
        self, repo: Repo, incident_id: int, report_id: int, p: Prepared, decision: match.Decision, now: datetime
    ) -> None:
        row = await repo.incident(incident_id, for_update=True)
        assert row is not None
        values = self._absorb(row, p, now)
        values["report_count"] = row["report_count"] + 1
        await repo.update_incident(incident_id, values)
        await repo.add_event(
            incident_id, "report_attached", actor=SYSTEM, at=now, report_id=report_id,
            data={"score": round(decision.score, 3), "reasons": decision.reasons_data(), "channel": p.report.channel},
        )
        await self._changed_events(repo, row, values, now, report_id)

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
        if "category" in values and values["category"] != before["category"]:
            await repo.add_event(before["id"], "category_changed", actor=actor, at=now, report_id=report_id,
                                 data={"from": before["category"], "to": values["category"]})
        if "lat" in values and (values["lat"], values["lon"]) != (before["lat"], before["lon"]):
            await repo.add_event(before["id"], "location_changed", actor=actor, at=now, report_id=report_id,
                                 data={"from": [before["lat"], before["lon"], before["accuracy_m"]],
                                       "to": [values["lat"], values["lon"], values["accuracy_m"]],
                                       "source": values["location_source"]})

    async def _publish(
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
    ) -> IngestResult:
        """Apply what arrived later (transcript, location, a call-taker's decision) and walk the road again.

        `category` is a person's decision: it replaces the classifier's. A location with source
        CALLTAKER is kept over any later automatic fix.
        """
        now = self.clock()
        async with self.store.transaction() as repo:
            row = await repo.report(report_id, for_update=True)
            if row is None:
                raise NotFound(f"report {report_id} does not exist")
            old_loc = row_location(row)
            new_loc = match.better_location(old_loc, location) if location is not None else old_loc
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

    async def _rematch(
        self, repo: Repo, report_row: dict[str, Any], p: Prepared, now: datetime, actor: str
    ) -> IngestResult:
        report_id = report_row["id"]
        incident_id = report_row["incident_id"]
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
            await self._publish(repo, "incident.updated", current, now, report_id=report_id,
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
        await self._publish(repo, "incident.merged", merged, now, extra={"into": target_id})

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
