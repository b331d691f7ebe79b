"""The optional `.env` file: KEY=VALUE lines beneath the process environment."""

from __future__ import annotations

from pathlib import Path

from .errors import SettingsError


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; `#` starts a comment line; values may be quoted."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
