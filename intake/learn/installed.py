"""Which text model the server uses: the one `intake classifier train` installed, else the package's."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from intake.config import Settings
from intake.core.textmodel import TextModel


def installed_path(settings: Settings) -> Path:
    return Path(settings.classifier_model)


def installed_model(settings: Settings) -> TextModel | Literal["default"]:
    """The installed model when there is one (a broken file is an error: it was installed on purpose)."""
    path = installed_path(settings)
    return TextModel.load(path) if path.is_file() else "default"
