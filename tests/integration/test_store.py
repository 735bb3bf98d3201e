"""The store itself: migrations, time zones, and cross-node wake-ups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from intake.store import Store
from tests.conftest import PG_URL, make_pg_store

EXPECTED_TABLES = {"incidents", "reports", "incident_events", "facilities", "facility_devices", "outbox",
                   "api_tokens", "location_fixes", "console_users", "console_sessions", "alembic_version"}


async def test_migrations_create_every_table_at_head(store: Store) -> None:
    assert await store.current_revision() is not None
    async with store.read() as repo:
        names = await repo.conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert names >= EXPECTED_TABLES


async def test_migrating_twice_is_harmless(store: Store) -> None:
    before = await store.current_revision()
    await store.migrate()
    assert await store.current_revision() == before


async def test_times_come_back_aware_and_in_utc(store: Store) -> None:
    hanoi = timezone(timedelta(hours=7))
    when = datetime(2026, 11, 22, 15, 0, tzinfo=hanoi)
    async with store.transaction() as repo:
        ids = await repo.write_outbox([{"at": when, "topic": "t", "kind": "k", "payload": {}}])
    async with store.read() as repo:
        row = (await repo.outbox_after(ids[0] - 1))[0]
    assert row["at"] == when and row["at"].tzinfo is not None and row["at"].utcoffset() == timedelta(0)


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive"):
        async with store.transaction() as repo:
            await repo.write_outbox([{"at": datetime(2026, 1, 1), "topic": "t", "kind": "k", "payload": {}}])
    async with store.read() as repo:
        assert await repo.outbox_head() == 0  # the transaction left nothing behind


@pytest.mark.postgres
async def test_a_commit_on_one_node_wakes_the_stream_of_another() -> None:
    writer = await make_pg_store()
    listener = Store(PG_URL)
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(listener.listen(stop))
            await asyncio.sleep(0.3)  # LISTEN registered
            woken = tg.create_task(listener.outbox.wait(10))
            async with writer.transaction() as repo:
                await repo.write_outbox([{"at": datetime.now(UTC), "topic": "t", "kind": "k", "payload": {}}])
            assert await woken is True
            stop.set()
    finally:
        await writer.close()
        await listener.close()
