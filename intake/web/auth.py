"""API tokens with roles.

A token is shown once, at creation; only its SHA-256 is stored. Roles:
  admin       everything
  calltaker   read, notes, merge, split, change category
  dispatcher  read; claim / release / ack / close the incidents of its agency
  app         POST /reports only (the city's mobile app)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from intake.core.model import AGENCIES
from intake.store import Store

ROLES = ("admin", "calltaker", "dispatcher", "app")
TOKEN_PREFIX = "hi_"


class TokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    agency: str | None

    def can(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(store: Store, *, role: str, name: str, agency: str | None, now: datetime) -> str:
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    agencies = [a.value for a in AGENCIES]
    if role == "dispatcher":
        if agency not in agencies:
            raise TokenError(f"a dispatcher token needs --agency, one of {', '.join(agencies)}")
    elif agency is not None:
        raise TokenError("only dispatcher tokens belong to an agency")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with store.transaction() as repo:
        await repo.insert_token(
            {"token_sha256": digest(token), "name": name, "role": role, "agency": agency, "created_at": now}
        )
    return token


async def authenticate(store: Store, token: str) -> Principal | None:
    async with store.read() as repo:
        row: dict[str, Any] | None = await repo.token_by_hash(digest(token))
    if row is None:
        return None
    return Principal(row["id"], row["name"], row["role"], row["agency"])
