"""Settings from environment variables and an optional `.env` file, checked at start.

Every setting is declared once, in table.py (name, parser with its type and range, default,
meaning); `load_settings` reads them all into the frozen `Settings`, then checks the rules
between them (rules.py). Every problem raises `SettingsError` whose message names the setting,
so a node refuses to start with a sentence a person can act on instead of failing later on a
bad value. The settings table of docs/operating.md is generated from the declaration
(`python -m service.settings --write-doc`).

Importing this package imports no part of the application (gunicorn's master reads it).
"""

from .dotenv import read_dotenv
from .errors import SettingsError
from .host import default_node_name, default_node_url
from .load import load_settings
from .model import Address, RedisTarget, Settings
from .parsers import NODE_NAME_PATTERN
from .table import DEV_API_KEY, DEV_SECRET_KEY

__all__ = [
    "DEV_API_KEY",
    "DEV_SECRET_KEY",
    "NODE_NAME_PATTERN",
    "Address",
    "RedisTarget",
    "Settings",
    "SettingsError",
    "default_node_name",
    "default_node_url",
    "load_settings",
    "read_dotenv",
]
