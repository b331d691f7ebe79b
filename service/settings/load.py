"""Reading the settings: `.env` beneath the environment, each setting of the table, the rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import rules
from .dotenv import read_dotenv
from .model import Settings
from .table import TABLE


def load_settings(environ: Mapping[str, str] | None = None,
                  dotenv: Path | None = None) -> Settings:
    """Settings from `.env` (if present; DOTENV_PATH moves it) overlaid by the process
    environment (or `environ`).

    Every value passed its setting's parser and every rule between settings holds; otherwise
    SettingsError, whose message names the setting (or settings)."""
    environ = dict(os.environ if environ is None else environ)
    dotenv = dotenv or Path(environ.get("DOTENV_PATH", ".env"))
    source: dict[str, str] = read_dotenv(dotenv) if dotenv.is_file() else {}
    source.update(environ)
    values: dict[str, Any] = {}
    for setting in TABLE:
        values[setting.attribute] = setting.read(source, values)
    settings = Settings(**values)
    rules.check(settings, frozenset(setting.name for setting in TABLE if setting.given(source)))
    return settings
