from pathlib import Path

import pytest

from intake.config import ConfigError, load_settings


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "intake.toml"
    f.write_text('port = 9000\ndatabase_url = "sqlite+aiosqlite:///x.db"\ntelegram_bot_token = "t"\n')
    s = load_settings({"INTAKE_PORT": "9100"}, f)
    assert s.port == 9100 and s.database_url == "sqlite+aiosqlite:///x.db"
    assert s.extra["telegram_bot_token"] == "t"


def test_defaults_use_the_embedded_sqlite_file() -> None:
    s = load_settings({})
    assert s.is_sqlite and s.database_url.endswith("var/intake.db")


def test_a_bad_number_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"INTAKE_PORT|port"):
        load_settings({"INTAKE_PORT": "eighty"})


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, tmp_path / "none.toml")
