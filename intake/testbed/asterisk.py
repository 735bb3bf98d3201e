"""A real Asterisk 22, built once from `shared/asterisk/`, run as a test's own process from `dialplans/`.

The configuration is the project's `dialplans/` with only machine-specific values changed: the SIP bind address
and port, the trunk's address (the operator's SBC is a local phone here), the AMI port and secret, the call-takers'
passwords and the AudioSocket address. Every change is a substitution that must match exactly once, so a dialplan
edit that the bed no longer understands fails loudly instead of testing something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

VERSION = "22.10.1"
DEFAULT_PREFIX = Path("/var/cache/hotline-asterisk") / VERSION
REPO = Path(__file__).resolve().parents[2]
DIALPLANS = REPO / "dialplans"
#: The operator's SBC (callers come from it, call-backs go to it); call-takers' phones are on 127.0.0.1.
TRUNK_IP = "127.0.0.2"


class AsteriskUnavailable(RuntimeError):
    """No Asterisk can be built or found here; the message says why."""


def shared_dir() -> Path | None:
    """The workplace's shared/ folder: INTAKE_SHARED_DIR, beside the checkout, or /work/shared."""
    for c in (os.environ.get("INTAKE_SHARED_DIR"), REPO.parent / "shared", "/work/shared"):
        if c and (Path(c) / "asterisk" / "build.sh").is_file():
            return Path(c)
    return None


def asterisk_prefix(*, build: bool = True) -> Path:
    """Where the Asterisk build lives: INTAKE_ASTERISK_PREFIX, else shared/asterisk/build.sh's (built once, cached)."""
    given = os.environ.get("INTAKE_ASTERISK_PREFIX")
    if given:
        prefix = Path(given)
        if not (prefix / "sbin" / "asterisk").is_file():
            raise AsteriskUnavailable(f"INTAKE_ASTERISK_PREFIX={given} has no sbin/asterisk")
        return prefix
    if (DEFAULT_PREFIX / ".built-from").is_file() and (DEFAULT_PREFIX / "sbin" / "asterisk").is_file():
        return DEFAULT_PREFIX
    shared = shared_dir()
    if shared is None:
        raise AsteriskUnavailable("shared/asterisk/build.sh was not found (set INTAKE_SHARED_DIR)")
    if not build:
        raise AsteriskUnavailable(f"Asterisk is not built yet: run {shared / 'asterisk' / 'build.sh'}")
    done = subprocess.run([str(shared / "asterisk" / "build.sh")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AsteriskUnavailable(f"shared/asterisk/build.sh failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP now (SIP listens on UDP, AMI and AudioSocket on TCP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no free port")


def _sub(text: str, pattern: str, repl: str, what: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n == 0:
        raise AsteriskUnavailable(f"dialplans/{what}: the test bed did not find {pattern!r} to rewrite")
    return new


@dataclass
class Ports:
    sip: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    ami: int = field(default_factory=free_port)
    trunk: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))  # the "operator": call-back phones
    rtp_start: int = 0

    def __post_init__(self) -> None:
        if not self.rtp_start:
            # A range of its own per bed (two beds on one machine must not share RTP ports), below Linux's
            # ephemeral ports (32768 and up), where the phones' and the server's own sockets come from.
            self.rtp_start = 10000 + (self.sip % 180) * 100


class LiveAsterisk:
    """An Asterisk process with its own directories under `root`."""

    def __init__(self, root: Path, *, audiosocket: str, prefix: Path | None = None, dialplans: Path = DIALPLANS,
                 ports: Ports | None = None, ami_secret: str | None = None, seats: tuple[str, ...] = ("1001",)
                 ) -> None:
        self.root = root
        self.prefix = prefix or asterisk_prefix()
        self.dialplans = dialplans
        self.audiosocket = audiosocket
        self.ports = ports or Ports()
        self.ami_secret = ami_secret or secrets.token_hex(16)
        self.seat_passwords = {seat: secrets.token_hex(8) for seat in seats}
        self.conf = root / "etc" / "asterisk.conf"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def binary(self) -> Path:
        return self.prefix / "sbin" / "asterisk"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def recordings(self) -> Path:
        """Where MixMonitor writes a relative file name (astspooldir/monitor)."""
        return self.spool / "monitor"

    @property
    def messages_log(self) -> Path:
        return self.root / "log" / "messages.log"

    # --- configuration -----------------------------------------------------------------------

    def write_config(self) -> None:
        etc = self.root / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        dirs = {"astetcdir": etc, "astvarlibdir": self.root / "varlib", "astdbdir": self.root / "db",
                "astkeydir": self.root / "keys", "astdatadir": self.prefix / "var" / "lib" / "asterisk",
                "astagidir": self.root / "agi", "astspooldir": self.spool, "astrundir": self.root / "run",
                "astlogdir": self.root / "log", "astsbindir": self.prefix / "sbin",
                "astmoddir": self.prefix / "lib" / "asterisk" / "modules"}
        for name, d in dirs.items():
            if name not in ("astdatadir", "astsbindir", "astmoddir"):
                d.mkdir(parents=True, exist_ok=True)
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "[directories]\n" + "".join(f"{k} => {v}\n" for k, v in dirs.items())
            + "[options]\nverbose = 3\ndebug = 0\nnocolor = yes\ndontwarn = yes\n"
            "defaultlanguage = en\nhideconnect = yes\n")
        (etc / "modules.conf").write_text("[modules]\nautoload = yes\nnoload => res_ari.so\nnoload => app_stasis.so\n"
                                          "noload => res_stasis.so\n")
        (etc / "logger.conf").write_text("[general]\ndateformat = %F %T.%3q\n[logfiles]\n"
                                         "console => notice,warning,error\n"
                                         "messages.log => notice,warning,error,verbose(3),dtmf\n")
        (etc / "rtp.conf").write_text(f"[general]\nrtpstart = {self.ports.rtp_start}\n"
                                      f"rtpend = {self.ports.rtp_start + 99}\n")
        for name in ("extensions.conf", "manager.conf", "pjsip.conf", "queues.conf"):
            text = (self.dialplans / name).read_text()
            (etc / name).write_text(self._localise(name, text))

    def _localise(self, name: str, text: str) -> str:
        p = self.ports
        if name == "extensions.conf":
            return _sub(text, r"^AUDIOSOCKET_SERVER=.*$", f"AUDIOSOCKET_SERVER={self.audiosocket}", name)
        if name == "manager.conf":
            text = _sub(text, r"^port = 5038$", f"port = {p.ami}", name)
            return _sub(text, r"^secret = \S+", f"secret = {self.ami_secret}", name)
        if name == "pjsip.conf":
            text = _sub(text, r"^bind = 0\.0\.0\.0:5060$", f"bind = 127.0.0.1:{p.sip}", name)
            text = _sub(text, r"^match = 203\.0\.113\.10", f"match = {TRUNK_IP}", name)
            text = _sub(text, r"^contact = sip:operator-sbc\.example\.invalid:5060$",
                        f"contact = sip:{TRUNK_IP}:{p.trunk}", name)
            for seat in self.seat_passwords:
                if f"[{seat}]" not in text:
                    raise AsteriskUnavailable(f"dialplans/pjsip.conf has no seat {seat}")
            return _sub(text, r"^password = change-me$", f"password = {self.seat_passwords['1001']}", name)
        return text

    # --- process -----------------------------------------------------------------------------

    async def start(self, within_s: float = 30.0) -> None:
        if self.process is not None and self.process.returncode is None:
            return
        if not self.conf.exists():
            self.write_config()
        with open(self.root / "log" / "console.log", "ab") as out:  # noqa: ASYNC230 (the child keeps its copy)
            self.process = await asyncio.create_subprocess_exec(
                str(self.binary), "-C", str(self.conf), "-f", "-n", "-q", stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True)
        self.starts += 1
        async with asyncio.timeout(within_s):
            while True:
                if self.process.returncode is not None:
                    raise AsteriskUnavailable(f"Asterisk exited with {self.process.returncode}: "
                                              f"{self.console_tail()}")
                with contextlib.suppress(AsteriskUnavailable):
                    if "fully booted" in (await self.cli("core waitfullybooted", within_s=5)).lower():
                        break
                await asyncio.sleep(0.1)

    async def cli(self, command: str, within_s: float = 10.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(self.binary), "-C", str(self.conf), "-rx", command, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), within_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AsteriskUnavailable(f"asterisk -rx {command!r} did not answer within {within_s:g} s") from None
        text = out.decode(errors="replace")
        if proc.returncode != 0 or "Unable to connect to remote asterisk" in text:
            raise AsteriskUnavailable(f"asterisk -rx {command!r}: {text.strip()}")
        return text

    async def stop(self, within_s: float = 15.0) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(AsteriskUnavailable):
            await self.cli("core stop now", within_s=5)
        try:
            await asyncio.wait_for(proc.wait(), within_s)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL: Asterisk dies with its calls, as in a crash."""
        proc = self.process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def console_tail(self, lines: int = 30) -> str:
        path = self.root / "log" / "console.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def messages(self) -> str:
        return self.messages_log.read_text(errors="replace") if self.messages_log.exists() else ""

    async def __aenter__(self) -> LiveAsterisk:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise AsteriskUnavailable("sipp is not installed (Debian: apt-get install sip-tester)")
    return found


__all__ = ["AsteriskUnavailable", "LiveAsterisk", "Ports", "asterisk_prefix", "free_port", "sipp_binary"]
