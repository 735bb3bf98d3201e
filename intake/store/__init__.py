"""Persistence: the only package that imports SQLAlchemy."""

from intake.store.db import Store, open_store

__all__ = ["Store", "open_store"]
