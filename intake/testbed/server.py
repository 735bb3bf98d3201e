"""`intake serve` as a process of the test bed: started, stopped (SIGTERM), killed and restarted like in production."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import aiohttp

from intake.testbed.asterisk import free_port


class IntakeProcess:
    """One `intake serve`, its log in `root/intake.log`, its settings from the environment only."""

    def __init__(self, root: Path, env: dict[str, str], *, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        self.env.update(env)
        self.env.setdefault("INTAKE_LOG_LEVEL", "INFO")
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = root / "intake.log"
        self.exit_codes: list[int] = []
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, within_s: float = 60.0) -> None:
        with open(self.log_path, "ab") as out:  # noqa: ASYNC230 (handed to the process)
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "intake.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                env=self.env, cwd=self.root, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        async with aiohttp.ClientSession() as session, asyncio.timeout(within_s):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"intake serve exited with {self.process.returncode}: {self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM, within_s: float = 20.0) -> int:
        """Send `sig` and wait for the exit; its exit code (killed with SIGKILL after `within_s`)."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc is not None and proc.returncode is not None else 0
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), within_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = await proc.wait()
        self.exit_codes.append(code)
        return code

    async def kill(self) -> int:
        return await self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


__all__ = ["IntakeProcess"]
