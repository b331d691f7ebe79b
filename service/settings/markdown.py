"""The settings table of docs/operating.md, generated from the declaration (table.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .setting import Derived, Setting
from .table import TABLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "operating.md"
BEGIN = ("<!-- the settings table: generated from service/settings/table.py by "
         "`python -m service.settings --write-doc`; edit it there -->")
END = "<!-- end of the generated settings table -->"


def default_text(setting: Setting[Any]) -> str:
    if setting.default_doc is not None:
        return setting.default_doc
    if isinstance(setting.default, Derived):
        return setting.default.doc
    value = setting.default
    if value is None or value == ():
        return "unset"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return setting.parse.show(value)
    return f"`{setting.parse.show(value)}`"


def meaning(setting: Setting[Any]) -> str:
    only = setting.only_in
    if only is None:
        return setting.doc
    modes = " or ".join(f"`ASYNC_MODE={mode}`" for mode in only.modes)
    return f"{setting.doc}. Only with {modes} ({only.honoured_by}); refused in another mode"


def markdown_table() -> str:
    """The table, one row per setting in the declaration's order, ending with a newline."""
    rows = ["| setting | default | values | meaning |", "|---|---|---|---|"]
    for setting in TABLE:
        cells = (f"`{setting.name}`", default_text(setting), setting.parse.accepts,
                 meaning(setting))
        if any("|" in cell for cell in cells):
            raise ValueError(f"{setting.name}: a | in its row would split a cell")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def split_doc(text: str) -> tuple[str, str, str]:
    """The doc before its table (up to BEGIN's line), the table, and the rest (from END's
    line on). Raises ValueError when the markers are missing."""
    head, begin, rest = text.partition(BEGIN + "\n")
    table, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the settings table's markers are missing: {BEGIN} ... {END}")
    return head + begin, table, end + tail


def write_doc(path: Path = DOC) -> None:
    """Replace the table in `path` (between the markers) with the generated one."""
    head, _, tail = split_doc(path.read_text())
    path.write_text(head + markdown_table() + tail)
