"""The live bed: a real Asterisk 22 built from shared/asterisk/ (cached outside the checkout), run from
`dialplans/` with only machine-specific values changed; sipp phones as callers, call-taker seat and call-back
phones; `intake serve` as a process. `make test` builds Asterisk and installs sipp; where they cannot be had
these tests fail with the reason (they are the point of the suite), unless INTAKE_SKIP_LIVE=1 says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from intake.testbed.asterisk import AsteriskUnavailable, asterisk_prefix, sipp_binary
from intake.testbed.bed import Bed


def _unavailable() -> str | None:
    try:
        asterisk_prefix()
        sipp_binary()
    except AsteriskUnavailable as exc:
        return str(exc)
    return None


_REASON = _unavailable()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/live/" in str(item.fspath):
            item.add_marker(pytest.mark.live)
            if _REASON and os.environ.get("INTAKE_SKIP_LIVE") == "1":
                item.add_marker(pytest.mark.skip(reason=_REASON))


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[Bed]:
    if _REASON:
        pytest.fail(f"the live bed cannot run here: {_REASON}")
    async with Bed(tmp_path / "bed") as b:
        yield b
