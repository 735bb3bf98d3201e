"""Engines, transactions and migrations.

SQLite (the embedded default) allows one writer at a time: write transactions
go through a one-connection engine and start with BEGIN IMMEDIATE, so two
writers queue instead of deadlocking on a lock upgrade, and reads use a
second engine that never blocks on them (WAL). PostgreSQL uses one pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from intake.store.repo import Repo

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x1A7A  # advisory lock key: one node migrates at a time


class StoreError(RuntimeError):
    pass


class Notifier:
    """Wakes every waiter when outbox rows were committed (here, or on another node via NOTIFY)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _sqlite_engine(url: str, *, writer: bool, synchronous: str) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=1 if writer else 4,
        max_overflow=0,
        pool_timeout=120,
        connect_args={"timeout": 30},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # The default 2 MB page cache makes every candidate lookup a system call once the file outgrows it.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class Store:
    """Opens transactions; every repository function runs inside one."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
                raise StoreError(f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {sqlite_synchronous}")
            self.writer = _sqlite_engine(url, writer=True, synchronous=sqlite_synchronous.upper())
            self.reader = _sqlite_engine(url, writer=False, synchronous=sqlite_synchronous.upper())
        elif self.dialect == "postgresql":
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            self.reader = self.writer
        else:
            raise StoreError(f"unsupported database {self.dialect!r}: use sqlite+aiosqlite or postgresql+asyncpg")
        self.outbox = Notifier()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repo]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        async with self.writer.begin() as conn:
            repo = Repo(conn, self.dialect)
            yield repo
        if repo.wrote_outbox:
            self.outbox.notify()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Repo]:
        async with self.reader.connect() as conn:
            yield Repo(conn, self.dialect)

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to run on every start)."""
        async with self.writer.begin() as conn:
            if self.is_postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.run_sync(_upgrade)

    async def current_revision(self) -> str | None:
        async with self.reader.connect() as conn:
            return await conn.run_sync(_current)

    async def listen(self, stop: asyncio.Event) -> None:
        """Relay PostgreSQL NOTIFYs from other nodes to local waiters until `stop` is set."""
        if not self.is_postgres:
            await stop.wait()
            return
        async with self.writer.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None

            def _on_notify(*_args: Any) -> None:
                self.outbox.notify()

            await driver.add_listener("intake_outbox", _on_notify)
            try:
                await stop.wait()
            finally:
                await driver.remove_listener("intake_outbox", _on_notify)

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def open_store(url: str, *, migrate: bool = True, sqlite_synchronous: str = "FULL") -> Store:
    store = Store(url, sqlite_synchronous=sqlite_synchronous)
    if migrate:
        await store.migrate()
    return store

