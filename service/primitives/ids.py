"""Stream ids (`<ms>-<seq>`, Redis's): strictly increasing within a room or an inbox."""

from __future__ import annotations


def parse_id(message_id: str) -> tuple[int, int]:
    """The id as (milliseconds, sequence), which compare in stored order."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)
