"""Who is asking: API tokens (machines) and console users with browser sessions (people).

A token is shown once, at creation; only its SHA-256 is stored. Roles:
  admin       everything
  calltaker   read, notes, merge, split, change category; the console's report and call actions
  dispatcher  read; claim / release / ack / close the incidents of its agency
  app         POST /reports only (the city's mobile app)

Console users (calltaker, dispatcher, admin) log in with a name and a password. There is no
default account and no default password: the first admin is made with `intake users create`.
A password is kept as scrypt (hashlib, n=2^14, r=8, p=1) with a salt of its own. A login opens a
session: the browser holds a random token in an HttpOnly, SameSite=Strict cookie, the server keeps
its SHA-256 and a CSRF token that every state-changing request must echo in the X-CSRF-Token header.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from intake.core.model import AGENCIES
from intake.store import Store
from intake.store.tables import console_sessions, console_users
from intake.types import ChannelError

ROLES = ("admin", "calltaker", "dispatcher", "app")
USER_ROLES = ("calltaker", "dispatcher", "admin")
TOKEN_PREFIX = "hi_"
SESSION_COOKIE = "intake_session"
LOGIN_CSRF_COOKIE = "intake_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
PASSWORD_MIN_LENGTH = 10
#: scrypt cost: about 50 ms and 16 MB a check on a small server; high enough that a stolen table is slow to guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class TokenError(ValueError):
    pass


class UserError(ValueError):
    pass


class TooManyAttempts(ChannelError):
    status = 429
    code = "too_many_attempts"


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    agency: str | None
    user_id: int | None = None  # a console user (a browser session) rather than an API token
    session_id: int | None = None
    csrf_token: str | None = None

    def can(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles

    @property
    def client(self) -> str:
        """Who sent a report, for idempotency keys: one namespace per token or per user."""
        return f"u{self.user_id}" if self.user_id is not None else f"t{self.token_id}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str, agency: str | None, roles: tuple[str, ...], what: str) -> None:
    if role not in roles:
        raise TokenError(f"role must be one of {', '.join(roles)}")
    agencies = [a.value for a in AGENCIES]
    if role == "dispatcher":
        if agency not in agencies:
            raise TokenError(f"a dispatcher {what} needs --agency, one of {', '.join(agencies)}")
    elif agency is not None:
        raise TokenError(f"only dispatcher {what}s belong to an agency")


async def create_token(store: Store, *, role: str, name: str, agency: str | None, now: datetime) -> str:
    _check_role(role, agency, ROLES, "token")
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


# --- passwords -------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(key) // 2, maxmem=128 * int(r) * int(n) * 2)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), key)


#: Checked when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_new_password(name: str, password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise UserError(f"the password must be at least {PASSWORD_MIN_LENGTH} characters long")
    if password.strip().lower() == name.strip().lower():
        raise UserError("the password must not be the user's name")


# --- console users ------------------------------------------------------------------------------

async def create_user(store: Store, *, name: str, role: str, agency: str | None, password: str,
                      now: datetime) -> int:
    name = name.strip()
    if not name or len(name) > 120:
        raise UserError("the name must be 1 to 120 characters")
    try:
        _check_role(role, agency, USER_ROLES, "user")
    except TokenError as exc:
        raise UserError(str(exc)) from exc
    check_new_password(name, password)
    hashed = await asyncio.to_thread(hash_password, password)
    async with store.transaction() as repo:
        if await repo._one(select(console_users.c.id).where(console_users.c.name == name)) is not None:
            raise UserError(f"a user named {name!r} already exists")
        result = await repo.conn.execute(insert(console_users).values(
            name=name, role=role, agency=agency, password_hash=hashed, created_at=now).returning(console_users.c.id))
        return int(result.scalar_one())


async def list_users(store: Store) -> list[dict[str, Any]]:
    async with store.read() as repo:
        rows = await repo._all(select(console_users).order_by(console_users.c.id))
    return [{k: v for k, v in r.items() if k != "password_hash"} for r in rows]


async def set_password(store: Store, name: str, password: str, now: datetime) -> None:
    check_new_password(name, password)
    hashed = await asyncio.to_thread(hash_password, password)
    async with store.transaction() as repo:
        result = await repo.conn.execute(
            update(console_users).where(console_users.c.name == name).values(password_hash=hashed))
        if not result.rowcount:
            raise UserError(f"no user named {name!r}")
        # A new password ends the sessions opened with the old one.
        user_id = select(console_users.c.id).where(console_users.c.name == name).scalar_subquery()
        await repo.conn.execute(update(console_sessions).where(
            console_sessions.c.user_id == user_id, console_sessions.c.ended_at.is_(None)).values(ended_at=now))


async def disable_user(store: Store, name: str, now: datetime) -> None:
    async with store.transaction() as repo:
        result = await repo.conn.execute(
            update(console_users).where(console_users.c.name == name, console_users.c.disabled_at.is_(None))
            .values(disabled_at=now))
        if not result.rowcount:
            raise UserError(f"no active user named {name!r}")
        user_id = select(console_users.c.id).where(console_users.c.name == name).scalar_subquery()
        await repo.conn.execute(update(console_sessions).where(
            console_sessions.c.user_id == user_id, console_sessions.c.ended_at.is_(None)).values(ended_at=now))


# --- sessions -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # the cookie's value, never stored
    principal: Principal
    expires_at: datetime


async def login(store: Store, name: str, password: str, *, now: datetime, ttl: timedelta,
                remote: str | None) -> NewSession | None:
    """Check a name and password; a new session on success, None otherwise (whatever was wrong)."""
    async with store.read() as repo:
        row = await repo._one(select(console_users).where(console_users.c.name == name.strip()))
    stored = row["password_hash"] if row is not None else _DUMMY_HASH
    good = await asyncio.to_thread(verify_password, password, stored)
    if row is None or not good or row["disabled_at"] is not None:
        return None
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + ttl
    async with store.transaction() as repo:
        result = await repo.conn.execute(insert(console_sessions).values(
            token_sha256=digest(token), user_id=row["id"], csrf_token=csrf, created_at=now, expires_at=expires,
            remote=(remote or "")[:64] or None).returning(console_sessions.c.id))
        session_id = int(result.scalar_one())
    return NewSession(token, _principal(row, session_id, csrf), expires)


def _principal(user: dict[str, Any], session_id: int, csrf: str) -> Principal:
    return Principal(0, user["name"], user["role"], user["agency"], user_id=user["id"], session_id=session_id,
                     csrf_token=csrf)


async def session_principal(store: Store, token: str, now: datetime) -> Principal | None:
    """The user behind a session cookie, while the session is open and the user enabled."""
    stmt = (select(console_sessions.c.id.label("session_id"), console_sessions.c.csrf_token,
                   console_sessions.c.expires_at, console_users)
            .join(console_users, console_users.c.id == console_sessions.c.user_id)
            .where(console_sessions.c.token_sha256 == digest(token), console_sessions.c.ended_at.is_(None),
                   console_users.c.disabled_at.is_(None)))
    async with store.read() as repo:
        row = await repo._one(stmt)
    if row is None or row["expires_at"] <= now:
        return None
    return _principal(row, row["session_id"], row["csrf_token"])


async def logout(store: Store, session_id: int, now: datetime) -> None:
    async with store.transaction() as repo:
        await repo.conn.execute(update(console_sessions).where(console_sessions.c.id == session_id)
                                .values(ended_at=now))


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


class LoginThrottle:
    """At most `limit` failed logins per name and per address in `window` seconds (in this process)."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window]
        self._failures[key] = times
        return times

    def check(self, name: str, remote: str | None) -> None:
        now = time.monotonic()
        for key in (f"n:{name.strip().lower()}", f"r:{remote}"):
            times = self._recent(key, now)
            if len(times) >= self.limit:
                wait = int(self.window - (now - times[0])) + 1
                raise TooManyAttempts(f"too many failed logins; try again in {wait} s")

    def failed(self, name: str, remote: str | None) -> None:
        now = time.monotonic()
        for key in (f"n:{name.strip().lower()}", f"r:{remote}"):
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # forget the oldest keys rather than grow without bound
            for key in list(self._failures)[:5000]:
                del self._failures[key]

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"n:{name.strip().lower()}", None)
