"""One setting's declaration: its name, parser, default, documentation, and where it applies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import Invalid, SettingsError
from .parsers import Parser

T = TypeVar("T")


@dataclass(frozen=True)
class Derived(Generic[T]):
    """A default computed from the settings declared before it (their values by attribute)."""

    compute: Callable[[Mapping[str, Any]], T]
    doc: str  # the settings table's default column


@dataclass(frozen=True)
class OnlyIn:
    """A setting that has an effect only in these ASYNC_MODEs, where `honoured_by` reads it."""

    modes: tuple[str, ...]
    honoured_by: str


@dataclass(frozen=True)
class Setting(Generic[T]):
    """An environment variable; its value is the Settings attribute named `attribute`.

    Unset, or blank when `blank_is_default`, it takes its default; otherwise `parse` must accept
    it. `default_doc` replaces the default's own text in the settings table (a secret's)."""

    name: str
    parse: Parser[T]
    default: T | Derived[T]
    doc: str
    default_doc: str | None = None
    blank_is_default: bool = True
    only_in: OnlyIn | None = None

    @property
    def attribute(self) -> str:
        return self.name.lower()

    def given(self, source: Mapping[str, str]) -> bool:
        """Whether `source` sets it rather than leaving it to its default."""
        raw = source.get(self.name)
        return raw is not None and (raw != "" or not self.blank_is_default)

    def read(self, source: Mapping[str, str], earlier: Mapping[str, Any]) -> T:
        """Its value from `source`, or its default given the `earlier` settings' values.
        Raises SettingsError naming it when `parse` refuses the text."""
        if not self.given(source):
            return self.default_value(earlier)
        try:
            return self.parse(source[self.name])
        except Invalid as problem:
            raise SettingsError(f"{self.name} {problem}") from None

    def default_value(self, earlier: Mapping[str, Any]) -> T:
        if isinstance(self.default, Derived):
            return self.default.compute(earlier)
        return self.default
