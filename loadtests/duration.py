"""DURATION, as people type it: plain seconds (`45`) or locust's own forms (`30s`, `2m`, `1h30m`).

The forms are those of locust's `--run-time` (locust.util.timespan.parse_timespan): whole hours,
minutes and seconds, each at most once and in that order, written without spaces; the total must
be positive.
"""

from __future__ import annotations

import os
import re

FORMS = "seconds (45) or locust's forms (30s, 2m, 1h, 1h30m, 1m30s, 1h30m10s)"
_SPAN = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration(value: str, name: str = "DURATION") -> int:
    """The seconds `value` stands for; ValueError naming `name` and the accepted forms."""
    if value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        match = _SPAN.fullmatch(value)
        if not value or match is None:
            raise ValueError(f"{name} must be {FORMS}, got {value!r}")
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 1:
        raise ValueError(f"{name} must be a positive duration, {FORMS}, got {value!r}")
    return seconds


def env_duration(name: str, default: int) -> int:
    """Seconds from the environment variable `name` (`default` when unset or empty); exits with a
    message naming it and the accepted forms when it is neither."""
    value = os.environ.get(name) or str(default)
    try:
        return parse_duration(value, name)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def readable(seconds: int) -> str:
    """`45 s`, `2 min`, `1 h 30 min`, `1 min 30 s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"
