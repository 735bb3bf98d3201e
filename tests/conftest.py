"""Shared fixtures: a real store on a SQLite file and on the local PostgreSQL server.

Every store/ingest/API test runs on both backends (the `store` fixture is
parametrised). PostgreSQL is not optional: `make test` starts it; if it is down
these tests fail rather than skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from intake.config import Settings
from intake.pipeline import Intake
from intake.store import Store, open_store


def _shared_dir() -> Path:
    """The workplace's shared/ folder (real Asterisk captures): beside the checkout, or named by INTAKE_SHARED_DIR."""
    candidates = [os.environ.get("INTAKE_SHARED_DIR"), Path(__file__).resolve().parents[2] / "shared", "/work/shared"]
    for c in candidates:
        if c and (Path(c) / "fixtures" / "asterisk").is_dir():
            return Path(c)
    raise RuntimeError(f"shared/ with fixtures/asterisk not found (looked in {candidates}); set INTAKE_SHARED_DIR")


SHARED = _shared_dir()
PG_URL = os.environ.get("INTAKE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TABLES = ("incident_events, outbox, location_fixes, reports, facility_devices, facilities, incidents, api_tokens, "
          "console_sessions, console_users")
_pg_schema_reset = False

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


async def make_pg_store() -> Store:
    global _pg_schema_reset
    store = Store(PG_URL)
    async with store.writer.begin() as conn:
        if not _pg_schema_reset:
            # A fresh schema once per run: migrations are tested from scratch, and old runs leave nothing.
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    if not _pg_schema_reset:
        await store.migrate()
        _pg_schema_reset = True
    async with store.writer.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = await open_store(f"sqlite+aiosqlite:///{tmp_path}/intake.db")
    else:
        s = await make_pg_store()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> Settings:
    # The package's text model, never one a developer installed under var/ with `intake classifier train`.
    return Settings(classifier_model=str(Path(__file__).parent / "no-installed-model.npz"))


@pytest.fixture
def intake(store: Store, settings: Settings, clock: Clock) -> Intake:
    return Intake(store, settings, clock=clock)
