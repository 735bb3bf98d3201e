"""Incident actions: claim (a lease), release, acknowledge, close, merge, split, notes.

Every action appends an audit event and an outbox row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from intake.core.model import Category, IncidentStatus
from intake.pipeline import IngestError, Intake, NotFound
from intake.store.repo import Repo


class Conflict(IngestError):
    """The action collides with the incident's state (someone else holds it, it is closed, ...)."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


class Invalid(IngestError):
    pass


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str  # 'admin' | 'calltaker' | 'dispatcher'
    agency: str | None = None


class Queue:
    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.store = intake.store

    @property
    def now(self) -> datetime:
        return self.intake.clock()

    async def _load(self, repo: Repo, incident_id: int) -> dict[str, Any]:
        row = await repo.incident(incident_id, for_update=True)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist")
        return row

    def _lease_held_by_other(self, row: dict[str, Any], actor: Actor, now: datetime) -> bool:
        return bool(
            row["lease_holder"]
            and row["lease_holder"] != actor.name
            and row["lease_expires_at"] is not None
            and row["lease_expires_at"] > now
        )

    async def _finish(self, repo: Repo, incident_id: int, kind: str, actor: Actor, now: datetime,
                      data: dict[str, Any], values: dict[str, Any] | None = None) -> dict[str, Any]:
        if values:
            await repo.update_incident(incident_id, {**values, "updated_at": now})
        await repo.add_event(incident_id, kind, actor=actor.name, at=now, data=data)
        row = await repo.incident(incident_id)
        assert row is not None
        await self.intake.publish_incident(repo, f"incident.{kind}", row, now, extra={"actor": actor.name, **data})
        return row

    async def claim(self, incident_id: int, actor: Actor, seconds: int | None = None) -> dict[str, Any]:
        now = self.now
        ttl = timedelta(seconds=seconds or self.intake.settings.lease_seconds)
        async with self.store.transaction() as repo:
            row = await self._load(repo, incident_id)
            if not IncidentStatus(row["status"]).is_active:
                raise Conflict(f"incident {incident_id} is {row['status']}", {"status": row["status"]})
            if self._lease_held_by_other(row, actor, now):
                raise Conflict(
                    f"incident {incident_id} is claimed by {row['lease_holder']}",
                    {"holder": row["lease_holder"], "expires_at": row["lease_expires_at"].isoformat()},
                )
            renew = row["lease_holder"] == actor.name and row["lease_expires_at"] and row["lease_expires_at"] > now
            return await self._finish(
                repo, incident_id, "lease_renewed" if renew else "claimed", actor, now,
                {"expires_at": (now + ttl).isoformat()},
                {"lease_holder": actor.name, "lease_expires_at": now + ttl},
            )

    async def release(self, incident_id: int, actor: Actor) -> dict[str, Any]:
        now = self.now
        async with self.store.transaction() as repo:
            row = await self._load(repo, incident_id)
            if self._lease_held_by_other(row, actor, now) and actor.role != "admin":
                raise Conflict(f"incident {incident_id} is claimed by {row['lease_holder']}",
                               {"holder": row["lease_holder"]})
            return await self._finish(repo, incident_id, "released", actor, now, {},
                                      {"lease_holder": None, "lease_expires_at": None})

    async def ack(self, incident_id: int, actor: Actor) -> dict[str, Any]:
        now = self.now
        async with self.store.transaction() as repo:
            row = await self._load(repo, incident_id)
            if row["status"] != IncidentStatus.OPEN.value:
                raise Conflict(f"incident {incident_id} is {row['status']}, not open", {"status": row["status"]})
            if self._lease_held_by_other(row, actor, now):
                raise Conflict(f"incident {incident_id} is claimed by {row['lease_holder']}",
                               {"holder": row["lease_holder"]})
            return await self._finish(repo, incident_id, "acknowledged", actor, now, {"agency": actor.agency},
                                      {"status": IncidentStatus.ACKNOWLEDGED.value, "acked_by": actor.name,
                                       "acked_at": now})

    async def close(self, incident_id: int, actor: Actor, reason: str) -> dict[str, Any]:
        now = self.now
        async with self.store.transaction() as repo:
            row = await self._load(repo, incident_id)
            if not IncidentStatus(row["status"]).is_active:
                raise Conflict(f"incident {incident_id} is already {row['status']}", {"status": row["status"]})
            if self._lease_held_by_other(row, actor, now) and actor.role != "admin":
                raise Conflict(f"incident {incident_id} is claimed by {row['lease_holder']}",
                               {"holder": row["lease_holder"]})
            return await self._finish(repo, incident_id, "closed", actor, now, {"reason": reason},
                                      {"status": IncidentStatus.CLOSED.value, "closed_at": now,
                                       "closed_by": actor.name, "close_reason": reason,
                                       "lease_holder": None, "lease_expires_at": None})

    async def note(self, incident_id: int, actor: Actor, text: str) -> dict[str, Any]:
        now = self.now
        async with self.store.transaction() as repo:
            await self._load(repo, incident_id)
            return await self._finish(repo, incident_id, "note", actor, now, {"text": text})

    async def set_category(self, incident_id: int, actor: Actor, category: Category) -> dict[str, Any]:
        now = self.now
        async with self.store.transaction() as repo:
            row = await self._load(repo, incident_id)
            if row["category"] == category.value:
                return row
            return await self._finish(repo, incident_id, "category_changed", actor, now,
                                      {"from": row["category"], "to": category.value},
                                      {"category": category.value})

    async def merge(self, incident_id: int, into_id: int, actor: Actor) -> dict[str, Any]:
        if incident_id == into_id:
            raise Invalid("an incident cannot be merged into itself")
        now = self.now
        async with self.store.transaction() as repo:
            # Lock in id order: two opposite merges must not wait on each other.
            for i in sorted((incident_id, into_id)):
                row = await self._load(repo, i)
                if not IncidentStatus(row["status"]).is_active:
                    raise Conflict(f"incident {i} is {row['status']}", {"status": row["status"], "incident": i})
            await self.intake._merge(repo, incident_id, into_id, now, actor=actor.name,
                                     reasons=[{"code": "manual", "points": 0, "detail": f"merged by {actor.name}"}])
            target = await repo.incident(into_id)
            assert target is not None
            return target

    async def split(self, incident_id: int, report_ids: list[int], actor: Actor) -> dict[str, Any]:
        """Move reports out into a new incident of their own (the new incident is returned)."""
        if not report_ids:
            raise Invalid("report_ids must name at least one report")
        now = self.now
        async with self.store.transaction() as repo:
            await self._load(repo, incident_id)
            reports = {r["id"]: r for r in await repo.reports_of_incident(incident_id)}
            missing = [r for r in report_ids if r not in reports]
            if missing:
                raise Invalid(f"reports {missing} do not belong to incident {incident_id}")
            if len(set(report_ids)) >= len(reports):
                raise Invalid("a split must leave at least one report in the incident")
            moved = [reports[r] for r in sorted(set(report_ids))]
            new_id = await repo.insert_incident(self.intake.incident_columns_from_reports(moved, now))
            for rep in moved:
                await repo.update_report(rep["id"], {"incident_id": new_id, "updated_at": now})
            kept = [r for r in reports.values() if r["id"] not in set(report_ids)]
            await repo.update_incident(incident_id, self.intake.incident_refresh_from_reports(kept, now))
            await repo.add_event(new_id, "split_from", actor=actor.name, at=now,
                                 data={"from": incident_id, "reports": [r["id"] for r in moved]})
            await self._finish(repo, incident_id, "split", actor, now,
                               {"into": new_id, "reports": [r["id"] for r in moved]})
            new_row = await repo.incident(new_id)
            assert new_row is not None
            await self.intake.publish_incident(repo, "incident.opened", new_row, now,
                                               extra={"actor": actor.name, "split_from": incident_id})
            return new_row
