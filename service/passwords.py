"""Salted slow password hashes (werkzeug's scrypt), computed off the event loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from werkzeug.security import check_password_hash, generate_password_hash

T = TypeVar("T")
# Compared against when the user does not exist, so a wrong name costs as long as a wrong password.
_ABSENT_USER_HASH = generate_password_hash("absent-user-placeholder")


def _off_loop(fn: Callable[..., T], *args: object) -> T:
    """Run CPU-heavy work in a real thread so other connections keep being served (gevent's
    thread pool, or eventlet's tpool when the node runs under eventlet)."""
    if "eventlet" in sys.modules:
        from eventlet.patcher import is_monkey_patched

        if is_monkey_patched("socket"):
            from eventlet import tpool

            return tpool.execute(fn, *args)
    try:
        from gevent import get_hub
        from gevent.monkey import is_module_patched
    except ImportError:  # pragma: no cover - gevent is a dependency
        return fn(*args)
    if is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)


def hash_password(password: str) -> str:
    return _off_loop(generate_password_hash, password)


def check_password(stored_hash: str | None, password: str) -> bool:
    return _off_loop(check_password_hash, stored_hash or _ABSENT_USER_HASH, password) and (
        stored_hash is not None
    )
