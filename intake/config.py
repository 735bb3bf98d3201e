"""One settings object, from the environment (INTAKE_*) and an optional TOML file.

The environment wins over the file, so a deployment can keep secrets out of it.
`INTAKE_CONFIG` names the TOML file; keys there are the setting names in lower
case without the prefix (`database_url = "postgresql+asyncpg://..."`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("var/intake.db")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    host: str = "127.0.0.1"
    port: int = 8080
    default_region: str = "VN"
    default_province: str = "Hà Nội"
    max_body_bytes: int = 1_000_000  # a report is small; photos go by reference
    lease_seconds: int = 120  # how long a dispatcher's claim on an incident lasts without renewal
    sqlite_synchronous: str = "FULL"  # an acknowledged report survives a power cut
    classify_threshold: float = 0.5
    classifier_model: str = "var/classifier/textmodel.npz"  # installed by `intake classifier train`; else the package's
    log_level: str = "INFO"
    # Calls: the AMI bridge runs when ami_secret is set; the AudioSocket listener when audiosocket_port is.
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "intake"
    ami_secret: str = ""
    callback_ring_s: float = 30.0  # how long a call-back rings the caller's phone before Asterisk gives up
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 0
    asr_model: str = ""  # a Vosk model directory; default: the first one installed (see asr_models/)
    asr_workers: int = 0  # recognizer processes; 0 = one per CPU
    asr_warmup: str = ""  # a WAV of speech (best: in the model's language) to warm the recognizers at start
    extra: dict[str, str] = field(default_factory=dict)  # other INTAKE_* values, for the doors

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _coerce(name: str, value: Any, kind: Any) -> Any:
    try:
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {value!r} is not a number") from exc
    return str(value)


def load_settings(env: dict[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = config_file or env.get("INTAKE_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    extra: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith("INTAKE_") or key == "INTAKE_CONFIG":
            continue
        name = key[len("INTAKE_"):].lower()
        if name in known:
            values[name] = value
        else:
            extra[name] = value
    for name in list(values):
        if name not in known:
            extra[name] = str(values.pop(name))
    kwargs = {name: _coerce(name, v, known[name].type) for name, v in values.items()}
    return Settings(**kwargs, extra=extra)
