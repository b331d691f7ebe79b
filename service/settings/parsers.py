"""Parsers: each turns one setting's text into its value or raises Invalid saying why.

A parser also says, for the documentation, which values it accepts (`accepts`) and how a value is
written (`show`): `parse(show(value)) == value` for every value it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from ..primitives.names import USERNAME
from .errors import Invalid
from .model import Address

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
NODE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ORIGIN = re.compile(r"^https?://[^/\s]+$")
NODE_URL = re.compile(r"^https?://[^/\s]+:\d{1,5}$")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Parser(Protocol[T_co]):
    @property
    def accepts(self) -> str:
        """The values it takes, in Markdown, for the settings table."""
        ...

    def __call__(self, text: str) -> T_co: ...

    def show(self, value: Any) -> str:
        """`value` as it is written in the environment."""
        ...


def either(options: tuple[str, ...]) -> str:
    """`a, b or c`."""
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Integer:
    low: int
    high: int

    @property
    def accepts(self) -> str:
        return f"integer, {self.low} to {self.high}"

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise Invalid(f"must be an integer, got {text!r}") from None
        if not self.low <= value <= self.high:
            raise Invalid(f"must be between {self.low} and {self.high}, got {value}")
        return value

    def show(self, value: int) -> str:
        return str(value)


@dataclass(frozen=True)
class Number:
    low: float
    high: float

    @property
    def accepts(self) -> str:
        return f"number, {number_text(self.low)} to {number_text(self.high)}"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise Invalid(f"must be a number, got {text!r}") from None
        if not self.low <= value <= self.high:
            raise Invalid(f"must be between {self.low} and {self.high}, got {value}")
        return value

    def show(self, value: float) -> str:
        return number_text(value)


@dataclass(frozen=True)
class Boolean:
    TRUE = ("1", "true", "yes", "on")
    FALSE = ("0", "false", "no", "off")

    @property
    def accepts(self) -> str:
        return "`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)"

    def __call__(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in self.TRUE:
            return True
        if lowered in self.FALSE:
            return False
        raise Invalid(f"must be true or false, got {text!r}")

    def show(self, value: bool) -> str:
        return "true" if value else "false"


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    fold_case: bool = False  # `INFO` is `info`

    @property
    def accepts(self) -> str:
        return either(tuple(f"`{option}`" for option in self.options))

    def __call__(self, text: str) -> str:
        value = text.lower() if self.fold_case else text
        if value not in self.options:
            raise Invalid(f"must be {either(self.options)}, got {text!r}")
        return value

    def show(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class Text:
    """Any text of at least `min_length` characters; a refused one is not repeated (a secret)."""

    min_length: int = 0

    @property
    def accepts(self) -> str:
        return f"at least {self.min_length} characters" if self.min_length else "text"

    def __call__(self, text: str) -> str:
        if len(text) < self.min_length:
            raise Invalid(f"must be at least {self.min_length} characters")
        return text

    def show(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class Format(Generic[T]):
    """A value of a shape of its own: `check` parses it (raising Invalid), `show` writes it."""

    check: Callable[[str], T]
    accepts: str
    show: Callable[[T], str] = str

    def __call__(self, text: str) -> T:
        return self.check(text)


def redis_url(text: str) -> str:
    if not text.startswith(REDIS_SCHEMES):
        raise Invalid(f"must start with redis://, rediss:// or unix://: {text!r}")
    return text


def addresses(text: str) -> tuple[Address, ...]:
    """`host:port,host:port`; blank is none."""
    if not text.strip():
        return ()
    found = []
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise Invalid(f"must be host:port entries separated by commas, got {part.strip()!r}")
        found.append((host, int(port)))
    return tuple(found)


def show_addresses(value: tuple[Address, ...]) -> str:
    return ",".join(f"{host}:{port}" for host, port in value)


def bind(text: str) -> str:
    """`host:port` where a node listens (an empty host or `0.0.0.0`: every address)."""
    host, sep, port = text.rpartition(":")
    if (not sep or not port.isdigit() or not 0 < int(port) < 65536
            or re.search(r"[\s/]", host)):
        raise Invalid(f"must be host:port (the address and port this node listens on), "
                      f"got {text!r}")
    return text


def node_name(text: str) -> str:
    if not NODE_NAME_PATTERN.match(text):
        raise Invalid(f"must be 1-64 characters of A-Za-z0-9_.-, got {text!r}")
    return text


def node_url(text: str) -> str:
    url = text.rstrip("/")
    if not NODE_URL.match(url):
        raise Invalid(f"must look like http(s)://host:port (how the other nodes reach this one), "
                      f"got {url!r}")
    return url


def http_url(text: str) -> str:
    """An http(s) URL the node POSTs to (a hook or the webhook receiver)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", text):
        raise Invalid(f"must be an http:// or https:// URL, got {text!r}")
    return text


def readable_file(text: str) -> str:
    """A path to a file this node can read."""
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise Invalid(f"must name a readable file, got {text!r}")
    return text


def origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins, without a trailing slash; blank is none."""
    found = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in found:
        if origin != "*" and not ORIGIN.match(origin):
            raise Invalid(f"entries must look like http(s)://host[:port], got {origin!r}")
    return found


def usernames(text: str) -> frozenset[str]:
    """Comma-separated usernames; blank is none."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if not USERNAME.fullmatch(name):
            raise Invalid(f"must be usernames (3-32 characters of A-Za-z0-9_.-) separated by "
                          f"commas, got {name!r}")
    return frozenset(names)


def show_words(value: tuple[str, ...] | frozenset[str]) -> str:
    return ",".join(sorted(value) if isinstance(value, frozenset) else value)
