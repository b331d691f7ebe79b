"""Accounts: a hash per user, `user:{name}` (the user's slot, with the inbox)."""

from __future__ import annotations

import time
from typing import Any

from . import keys
from .failures import redis_errors


class Accounts:
    def __init__(self, client: Any):
        self.client = client

    def create(self, username: str, password_hash: str) -> bool:
        """Create an account; False if the name is taken."""
        key = keys.account(username)
        with redis_errors():
            created = self.client.hsetnx(key, "pw", password_hash)
            if created:
                self.client.hset(key, "created", int(time.time() * 1000))
        return bool(created)

    def password_hash(self, username: str) -> str | None:
        with redis_errors():
            return self.client.hget(keys.account(username), "pw")

    def exists(self, username: str) -> bool:
        with redis_errors():
            return bool(self.client.exists(keys.account(username)))
