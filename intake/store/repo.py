"""Repository: every query the application runs, on one open connection.

Rows come back as plain dicts; `incident_view` turns an incident row into the
core's `IncidentView` for matching.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from intake.core.model import (
    ACTIVE_STATUSES,
    Category,
    IncidentStatus,
    IncidentView,
    Location,
    LocationSource,
)
from intake.store.tables import (
    api_tokens,
    facilities,
    facility_devices,
    incident_events,
    incidents,
    outbox,
    reports,
)

OUTBOX_LOCK = 0x0B0C  # advisory lock taken just before writing outbox rows (see write_outbox)
ACTIVE = [s.value for s in ACTIVE_STATUSES]

__all__ = ["IntegrityError", "Repo", "incident_view", "row_location"]


def row_location(row: dict[str, Any], prefix: str = "") -> Location | None:
    lat, lon = row.get(prefix + "lat"), row.get(prefix + "lon")
    if lat is None or lon is None:
        return None
    return Location(
        lat=lat,
        lon=lon,
        accuracy_m=row.get(prefix + "accuracy_m") or 0.0,
        source=LocationSource(row.get(prefix + "location_source") or "unknown"),
        observed_at=row.get(prefix + "location_observed_at"),
        label=row.get(prefix + "location_label"),
        ward_code=row.get(prefix + "ward_code"),
    )


def incident_view(row: dict[str, Any]) -> IncidentView:
    return IncidentView(
        id=row["id"],
        category=Category(row["category"]),
        status=IncidentStatus(row["status"]),
        location=row_location(row),
        opened_at=row["opened_at"],
        last_report_at=row["last_report_at"],
        report_count=row["report_count"],
        reporter_keys=frozenset(row["reporter_keys"] or ()),
        text_tokens=frozenset(row["text_tokens"] or ()),
        kinds=tuple(row["kinds"] or ()),
    )


class Repo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.wrote_outbox = False

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def _one(self, stmt: Any) -> dict[str, Any] | None:
        row = (await self.conn.execute(stmt)).mappings().first()
        return dict(row) if row is not None else None

    async def _all(self, stmt: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in (await self.conn.execute(stmt)).mappings().all()]

    # --- locks ---------------------------------------------------------------

    async def lock_key(self, key: int) -> None:
        if self.is_postgres:
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    async def lock_keys(self, keys: Iterable[int]) -> None:
        """Take many advisory locks in one round trip, in ascending order (no wait cycles)."""
        ordered = sorted(set(keys))
        if not self.is_postgres or not ordered:
            return
        await self.conn.execute(
            text("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k "
                 "ORDER BY 1) AS ordered_keys"),
            {"keys": ordered},
        )

    # --- reports -------------------------------------------------------------

    async def report_by_ref(self, channel: str, channel_ref: str) -> dict[str, Any] | None:
        return await self._one(
            select(reports).where(reports.c.channel == channel, reports.c.channel_ref == channel_ref)
        )

    async def reports_by_refs(self, refs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        if not refs:
            return []
        return await self._all(
            select(reports).where(tuple_(reports.c.channel, reports.c.channel_ref).in_(list(set(refs))))
        )

    async def insert_reports(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        if not rows:
            return []
        result = await self.conn.execute(insert(reports).returning(reports.c.id, sort_by_parameter_order=True),
                                         list(rows))
        return [int(i) for i in result.scalars().all()]

    async def report(self, report_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
        stmt = select(reports).where(reports.c.id == report_id)
        if for_update and self.is_postgres:
            stmt = stmt.with_for_update()
        return await self._one(stmt)

    async def update_report(self, report_id: int, values: dict[str, Any]) -> None:
        await self.conn.execute(
            update(reports).where(reports.c.id == report_id).values(**values, version=reports.c.version + 1)
        )

    async def reports_of_incident(self, incident_id: int) -> list[dict[str, Any]]:
        return await self._all(
            select(reports).where(reports.c.incident_id == incident_id).order_by(reports.c.received_at, reports.c.id)
        )

    async def reports_of_reporter(self, reporter_key: str, limit: int = 20) -> list[dict[str, Any]]:
        return await self._all(
            select(reports)
            .where(reports.c.reporter_key == reporter_key)
            .order_by(reports.c.received_at.desc(), reports.c.id.desc())
            .limit(limit)
        )

    # --- incidents -----------------------------------------------------------

    async def incident(self, incident_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
        stmt = select(incidents).where(incidents.c.id == incident_id)
        if for_update and self.is_postgres:
            stmt = stmt.with_for_update()
        return await self._one(stmt)

    async def match_candidates(
        self, cells: Iterable[str], reporter_keys: Iterable[str], since: datetime
    ) -> list[dict[str, Any]]:
        """Active incidents in the cells, or reported by these reporters, since `since`; row-locked on PostgreSQL.

        Two indexed queries rather than one with OR: an OR across the two made SQLite scan every active
        incident, so the cost grew with the number of open incidents.
        """
        cells, keys = sorted(set(cells)), sorted(set(reporter_keys))
        active = (incidents.c.status.in_(ACTIVE), incidents.c.last_report_at >= since)
        rows: dict[int, dict[str, Any]] = {}
        if cells:
            for row in await self._all(select(incidents).where(incidents.c.cell.in_(cells), *active)):
                rows[row["id"]] = row
        if keys:
            reported = (
                select(reports.c.incident_id)
                .where(reports.c.reporter_key.in_(keys), reports.c.received_at >= since)
                .scalar_subquery()
            )
            for row in await self._all(select(incidents).where(incidents.c.id.in_(reported), *active)):
                rows[row["id"]] = row
        if self.is_postgres and rows:
            # Lock the rows in id order, in one statement, and read them again under the lock.
            locked = await self._all(
                select(incidents).where(incidents.c.id.in_(sorted(rows))).order_by(incidents.c.id).with_for_update()
            )
            return [r for r in locked if r["status"] in ACTIVE]
        return list(rows.values())

    async def reports_with_words(self, after_id: int = 0, limit: int = 5000) -> list[dict[str, Any]]:
        """Reports that have text, in id order from `after_id` (id, text, category, classification): the
        classifier's retraining reads the call-takers' decisions from them, a page at a time."""
        stmt = (select(reports.c.id, reports.c.text, reports.c.category, reports.c.classification)
                .where(reports.c.text != "", reports.c.id > after_id).order_by(reports.c.id).limit(limit))
        return await self._all(stmt)

    async def insert_incidents(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        if not rows:
            return []
        result = await self.conn.execute(
            insert(incidents).returning(incidents.c.id, sort_by_parameter_order=True), list(rows)
        )
        return [int(i) for i in result.scalars().all()]

    async def update_incidents(self, rows: Sequence[dict[str, Any]], *, add_reports: bool = False) -> None:
        """Many updates in one statement; every row has the same keys plus `b_id` (and `b_added`)."""
        if not rows:
            return
        columns = [k for k in rows[0] if not k.startswith("b_")]
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        values["version"] = incidents.c.version + 1
        if add_reports:
            values["report_count"] = incidents.c.report_count + bindparam("b_added")
        await self.conn.execute(
            update(incidents).where(incidents.c.id == bindparam("b_id")).values(values), list(rows)
        )

    async def insert_incident(self, values: dict[str, Any]) -> int:
        result = await self.conn.execute(insert(incidents).values(**values).returning(incidents.c.id))
        return int(result.scalar_one())

    async def update_incident(self, incident_id: int, values: dict[str, Any]) -> None:
        await self.conn.execute(
            update(incidents)
            .where(incidents.c.id == incident_id)
            .values(**values, version=incidents.c.version + 1)
        )

    async def list_incidents(
        self,
        *,
        statuses: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        since: datetime | None = None,
        cells: Sequence[str] | None = None,
        after_id: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first, paged by id (a cursor that stays stable while new incidents arrive)."""
        stmt = select(incidents)
        conds: list[Any] = []
        if statuses:
            conds.append(incidents.c.status.in_(list(statuses)))
        if categories:
            conds.append(incidents.c.category.in_(list(categories)))
        if since is not None:
            conds.append(incidents.c.updated_at >= since)
        if cells is not None:
            conds.append(incidents.c.cell.in_(list(cells)))
        if after_id is not None:
            conds.append(incidents.c.id < after_id)
        if conds:
            stmt = stmt.where(and_(*conds))
        return await self._all(stmt.order_by(incidents.c.id.desc()).limit(limit))

    async def count_incidents(self, statuses: Sequence[str] | None = None) -> int:
        stmt = select(func.count()).select_from(incidents)
        if statuses:
            stmt = stmt.where(incidents.c.status.in_(list(statuses)))
        return int((await self.conn.execute(stmt)).scalar_one())

    # --- audit ---------------------------------------------------------------

    async def add_event(
        self,
        incident_id: int,
        kind: str,
        *,
        actor: str,
        at: datetime,
        report_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        result = await self.conn.execute(
            insert(incident_events)
            .values(incident_id=incident_id, kind=kind, actor=actor, at=at, report_id=report_id, data=data or {})
            .returning(incident_events.c.id)
        )
        return int(result.scalar_one())

    async def add_events(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(insert(incident_events), list(rows))

    async def events_of_incident(self, incident_id: int) -> list[dict[str, Any]]:
        return await self._all(
            select(incident_events)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.id)
        )

    # --- outbox --------------------------------------------------------------

    async def write_outbox(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Append push messages; their ids are the stream cursor.

        On PostgreSQL an id is taken from a sequence when the row is inserted,
        but rows become visible at commit: without care a consumer could read
        id 11 before id 10 commits and skip 10 for ever. Taking one advisory
        lock (held to commit) right before the insert makes ids and commits
        happen in the same order. Call this last in a transaction.
        """
        if not rows:
            return []
        await self.lock_key(OUTBOX_LOCK)
        result = await self.conn.execute(insert(outbox).returning(outbox.c.id), list(rows))
        ids = [int(i) for i in result.scalars().all()]
        if self.is_postgres:
            await self.conn.execute(text("SELECT pg_notify('intake_outbox', :id)"), {"id": str(max(ids))})
        self.wrote_outbox = True
        return ids

    async def outbox_after(self, cursor: int, limit: int = 500) -> list[dict[str, Any]]:
        return await self._all(select(outbox).where(outbox.c.id > cursor).order_by(outbox.c.id).limit(limit))

    async def outbox_head(self) -> int:
        return int((await self.conn.execute(select(func.coalesce(func.max(outbox.c.id), 0)))).scalar_one())

    # --- facilities ----------------------------------------------------------

    async def facility(self, facility_id: int) -> dict[str, Any] | None:
        return await self._one(select(facilities).where(facilities.c.id == facility_id))

    async def facility_by_device(self, device_id: str) -> dict[str, Any] | None:
        return await self._one(
            select(facilities)
            .join(facility_devices, facility_devices.c.facility_id == facilities.c.id)
            .where(facility_devices.c.device_id == device_id)
        )

    async def facility_by_phone(self, e164: str) -> dict[str, Any] | None:
        return await self._one(
            select(facilities).where(or_(facilities.c.phone == e164, facilities.c.contact_phone == e164)).limit(1)
        )

    async def facility_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        return await self._one(select(facilities).where(facilities.c.external_id == external_id))

    async def insert_facility(self, values: dict[str, Any]) -> int:
        result = await self.conn.execute(insert(facilities).values(**values).returning(facilities.c.id))
        return int(result.scalar_one())

    async def update_facility(self, facility_id: int, values: dict[str, Any]) -> None:
        await self.conn.execute(update(facilities).where(facilities.c.id == facility_id).values(**values))

    async def set_facility_devices(self, facility_id: int, devices: Sequence[dict[str, Any]]) -> None:
        for dev in devices:
            existing = await self._one(
                select(facility_devices).where(facility_devices.c.device_id == dev["device_id"])
            )
            if existing is None:
                await self.conn.execute(insert(facility_devices).values(facility_id=facility_id, **dev))
            else:
                await self.conn.execute(
                    update(facility_devices)
                    .where(facility_devices.c.device_id == dev["device_id"])
                    .values(facility_id=facility_id, **dev)
                )

    async def devices_of_facility(self, facility_id: int) -> list[dict[str, Any]]:
        return await self._all(
            select(facility_devices).where(facility_devices.c.facility_id == facility_id)
        )

    # --- tokens --------------------------------------------------------------

    async def insert_token(self, values: dict[str, Any]) -> int:
        result = await self.conn.execute(insert(api_tokens).values(**values).returning(api_tokens.c.id))
        return int(result.scalar_one())

    async def token_by_hash(self, token_sha256: str) -> dict[str, Any] | None:
        return await self._one(
            select(api_tokens).where(api_tokens.c.token_sha256 == token_sha256, api_tokens.c.revoked_at.is_(None))
        )

    # --- bulk (benchmarks, imports) ------------------------------------------------

    async def analyze(self) -> None:
        """Refresh the query planner's statistics (after a bulk load)."""
        await self.conn.execute(text("ANALYZE"))

    async def bulk_insert_incidents(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(insert(incidents), list(rows))

    # --- devices (alarm panels, IP devices, cameras) ----------------------------------

    async def device(self, device_id: str) -> dict[str, Any] | None:
        return await self._one(select(facility_devices).where(facility_devices.c.device_id == device_id))

    async def touch_device(self, device_id: str, at: datetime) -> datetime | None:
        """Record that the device was heard; returns when it had gone silent (None if it had not)."""
        row = await self._one(
            select(facility_devices.c.silent_since).where(facility_devices.c.device_id == device_id)
        )
        await self.conn.execute(
            update(facility_devices)
            .where(facility_devices.c.device_id == device_id)
            .values(last_seen_at=at, silent_since=None)
        )
        return row["silent_since"] if row is not None else None

    async def supervised_devices(self) -> list[dict[str, Any]]:
        """Devices that promise heartbeats, were heard at least once and are not flagged silent yet."""
        return await self._all(
            select(facility_devices).where(
                facility_devices.c.heartbeat_s.is_not(None),
                facility_devices.c.last_seen_at.is_not(None),
                facility_devices.c.silent_since.is_(None),
            )
        )

    async def mark_device_silent(self, device_id: str, last_seen_at: datetime, at: datetime) -> bool:
        """Flag a device silent unless it was heard (or flagged by another node) since it was read."""
        result = await self.conn.execute(
            update(facility_devices)
            .where(
                facility_devices.c.device_id == device_id,
                facility_devices.c.last_seen_at == last_seen_at,
                facility_devices.c.silent_since.is_(None),
            )
            .values(silent_since=at)
        )
        return bool(result.rowcount)

    # --- location fixes (AML) --------------------------------------------------

    async def insert_location_fix(self, values: dict[str, Any]) -> int | None:
        """Store a fix once; None when its (channel, channel_ref) is already stored (a retried delivery)."""
        from sqlalchemy.dialects import postgresql, sqlite

        from intake.store.tables import location_fixes

        dialect_insert: Any = postgresql.insert if self.is_postgres else sqlite.insert
        stmt = (dialect_insert(location_fixes).values(**values)
                .on_conflict_do_nothing(index_elements=["channel", "channel_ref"]).returning(location_fixes.c.id))
        found = (await self.conn.execute(stmt)).scalar_one_or_none()
        return int(found) if found is not None else None

    async def location_fix_by_ref(self, channel: str, channel_ref: str) -> dict[str, Any] | None:
        from intake.store.tables import location_fixes as f

        return await self._one(select(f).where(f.c.channel == channel, f.c.channel_ref == channel_ref))

    async def pending_location_fixes(self, phone: str, since: datetime) -> list[dict[str, Any]]:
        """Fixes for a number not yet applied to a call, received since `since`, oldest first."""
        from intake.store.tables import location_fixes as f

        return await self._all(select(f).where(f.c.phone == phone, f.c.report_id.is_(None), f.c.received_at >= since)
                               .order_by(f.c.received_at, f.c.id))

    async def latest_location_fix(self, phone: str) -> dict[str, Any] | None:
        from intake.store.tables import location_fixes as f

        return await self._one(select(f).where(f.c.phone == phone).order_by(f.c.received_at.desc(), f.c.id.desc())
                               .limit(1))

    async def mark_location_fix_applied(self, fix_id: int, report_id: int, at: datetime) -> bool:
        """Record the call a fix went to; False when it was already recorded (the first one stays)."""
        from intake.store.tables import location_fixes as f

        result = await self.conn.execute(update(f).where(f.c.id == fix_id, f.c.report_id.is_(None))
                                         .values(report_id=report_id, applied_at=at))
        return bool(result.rowcount)

    async def latest_call_report(self, phone: str, since: datetime) -> dict[str, Any] | None:
        """The newest call report from an E.164 number received since `since` (by the indexed reporter key)."""
        return await self._one(
            select(reports)
            .where(reports.c.reporter_key == phone, reports.c.phone == phone, reports.c.channel == "call",
                   reports.c.received_at >= since)
            .order_by(reports.c.received_at.desc(), reports.c.id.desc())
            .limit(1)
        )

    async def recent_reports(self, channels: Sequence[str], since: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Reports of these doors updated since `since`, newest first (migration 0004's index): what a worker
        left unfinished at a stop."""
        return await self._all(
            select(reports)
            .where(reports.c.channel.in_(sorted(channels)), reports.c.updated_at >= since)
            .order_by(reports.c.updated_at.desc(), reports.c.id.desc())
            .limit(limit)
        )
