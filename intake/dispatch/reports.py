"""A call-taker's decisions about one report: which incident it belongs to.

`attach` moves a report into an incident the call-taker chose (the console's
"same as #n"); when the report was alone in its incident, that incident is
merged into the chosen one, as an automatic match would have done. `new_incident`
takes a report out into an incident of its own. Both are one transaction with
their audit events and outbox rows, like every queue action.
"""

from __future__ import annotations

from typing import Any

from intake.core.model import IncidentStatus
from intake.dispatch.queue import Actor, Conflict, Queue
from intake.pipeline import NotFound

ATTACHED = "attached"


class ReportActions:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.intake = queue.intake
        self.store = queue.store

    async def attach(self, report_id: int, target_id: int, actor: Actor) -> dict[str, Any]:
        """Put the report in incident `target_id`; returns the target incident after the move."""
        now = self.queue.now
        intake = self.intake
        reasons = [{"code": "manual", "points": 0, "detail": f"attached by {actor.name}"}]
        async with self.store.transaction() as repo:
            report = await repo.report(report_id, for_update=True)
            if report is None:
                raise NotFound(f"report {report_id} does not exist")
            source_id: int | None = report["incident_id"]
            rows: dict[int, dict[str, Any]] = {}
            for i in sorted({target_id, *([source_id] if source_id is not None else [])}):
                rows[i] = await self.queue._load(repo, i)  # in id order, as merge locks them
            target = rows[target_id]
            if source_id == target_id:
                return target
            if not IncidentStatus(target["status"]).is_active:
                raise Conflict(f"incident {target_id} is {target['status']}", {"status": target["status"]})
            source = rows.get(source_id) if source_id is not None else None
            if source is not None and source["report_count"] <= 1 and IncidentStatus(source["status"]).is_active:
                # The report was its incident: the incident joins the chosen one (a merge, audited as such).
                await intake._merge(repo, source["id"], target_id, now, actor=actor.name, reasons=reasons)
            else:
                await self._move(repo, report, source, target, actor, reasons)
            await repo.update_report(report_id, {"updated_at": now, "match": {
                "outcome": ATTACHED, "score": 1.0, "manual": True, "reasons": reasons}})
            current = await repo.incident(target_id)
            assert current is not None
            await intake.publish_incident(repo, "incident.updated", current, now, report_id=report_id, extra={
                "actor": actor.name, "report": {"id": report_id, "channel": report["channel"], "outcome": ATTACHED}})
            return current

    async def _move(self, repo: Any, report: dict[str, Any], source: dict[str, Any] | None,
                    target: dict[str, Any], actor: Actor, reasons: list[dict[str, Any]]) -> None:
        """Move one report out of an incident that keeps others (or is no longer active)."""
        now = self.queue.now
        intake = self.intake
        report_id = report["id"]
        await repo.update_report(report_id, {"incident_id": target["id"], "updated_at": now})
        if source is not None:
            kept = await repo.reports_of_incident(source["id"])
            values = (intake.incident_refresh_from_reports(kept, now) if kept
                      else {"report_count": 0, "updated_at": now})
            await repo.update_incident(source["id"], values)
            await repo.add_event(source["id"], "report_moved", actor=actor.name, at=now, report_id=report_id,
                                 data={"into": target["id"]})
            refreshed = await repo.incident(source["id"])
            await intake.publish_incident(repo, "incident.updated", refreshed, now, report_id=report_id,
                                          extra={"actor": actor.name, "report": {
                                              "id": report_id, "channel": report["channel"], "outcome": "moved"}})
        # The report as an incident of one, merged in: the target takes what is better (place, priority, ...).
        alone = {**intake.incident_refresh_from_reports([report], now), "id": None}
        values = intake._merge_values(target, alone, 1, now)
        await repo.update_incident(target["id"], values)
        await repo.add_event(target["id"], "report_attached", actor=actor.name, at=now, report_id=report_id,
                             data={"from": source["id"] if source else None, "reasons": reasons,
                                   "channel": report["channel"]})
        await intake._changed_events(repo, target, values, now, report_id, actor.name)

    async def new_incident(self, report_id: int, actor: Actor) -> dict[str, Any]:
        """Take the report out into a new incident of its own (a split); returns the new incident."""
        async with self.store.read() as repo:
            report = await repo.report(report_id)
            if report is None:
                raise NotFound(f"report {report_id} does not exist")
            incident = await repo.incident(report["incident_id"]) if report["incident_id"] else None
        if incident is not None and incident["report_count"] <= 1:
            raise Conflict(f"report {report_id} is already the only report of incident {incident['id']}",
                           {"incident_id": incident["id"]})
        if incident is None:
            return await self._open_for(report_id, actor)
        return await self.queue.split(incident["id"], [report_id], actor)

    async def _open_for(self, report_id: int, actor: Actor) -> dict[str, Any]:
        now = self.queue.now
        async with self.store.transaction() as repo:
            report = await repo.report(report_id, for_update=True)
            assert report is not None
            if report["incident_id"] is not None:
                raise Conflict(f"report {report_id} has just been given incident {report['incident_id']}",
                               {"incident_id": report["incident_id"]})
            new_id = await repo.insert_incident(self.intake.incident_columns_from_reports([report], now))
            await repo.update_report(report_id, {"incident_id": new_id, "updated_at": now})
            await repo.add_event(new_id, "opened", actor=actor.name, at=now, report_id=report_id,
                                 data={"channel": report["channel"], "category": report["category"], "manual": True})
            row = await repo.incident(new_id)
            assert row is not None
            await self.intake.publish_incident(repo, "incident.opened", row, now, report_id=report_id,
                                               extra={"actor": actor.name})
            return row
