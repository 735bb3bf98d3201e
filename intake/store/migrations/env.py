"""Alembic environment.

The store runs migrations through a connection it already holds
(`config.attributes["connection"]`), so they work from inside the running
event loop and on both SQLite and PostgreSQL. Run by hand with
`intake db upgrade`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from intake.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # autogenerate from the command line: a plain synchronous SQLite URL
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///var/alembic-autogen.db")
    with engine.begin() as conn:
        _run(conn)
