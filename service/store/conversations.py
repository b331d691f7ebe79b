"""Direct conversations: each user's inbox read back, by conversation, with read positions.

Guarantees
- Every direct message is in both users' inboxes (messages.py) and, with the same id, in each
  user's stream of that conversation (`inbox:{user}:with:<other>`), written by the same script:
  a conversation's history is complete for as long as retention keeps it (ROOM_HISTORY_MAX
  messages per conversation, so a busy inbox does not push a quiet conversation out).
- Ids within a user's inbox, and so within each of its conversations, strictly increase.
- `inbox` resumes like a room's `join`: the messages after `since`, oldest first, and
  `truncated` when any after it are gone.
- A read position never moves backwards or past the conversation's newest message. Unread
  counts live beside the conversations, in the same slot: the script that stores a message
  counts it for its recipient, the one that moves a read position counts again what is left
  (at most UNREAD_MAX messages read for it), so `conversations` costs one lookup per
  conversation and every device sees the same counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ServiceError
from . import keys
from .accounts import Accounts
from .failures import redis_errors
from .members import UNREAD_MAX, ReadMoved, read_answer
from .messages import RESUME_LIMIT, Messages, Resumed, direct_message
from .scripts import Scripts

CONVERSATIONS_MAX = 500  # the most recent conversations listed


class Conversation(NamedTuple):
    with_user: str
    last: dict[str, Any] | None
    unread: int


class Conversations:
    def __init__(self, client: Any, scripts: Scripts, messages: Messages, accounts: Accounts,
                 *, app_users: bool = False):
        self.client = client
        self.scripts = scripts
        self.messages = messages
        self.accounts = accounts
        self.app_users = app_users  # any user name is a user, not only accounts

    def _known(self, user: str) -> None:
        if not self.app_users and not self.accounts.exists(user):
            raise ServiceError("not_found", f"no user named {user}")

    def inbox(self, user: str, since: str | None) -> Resumed:
        """Direct messages to or from `user` after id `since`; without it the newest
        RESUME_LIMIT. Oldest first."""
        if since is not None:
            return self.messages.resume_inbox(user, since)
        with redis_errors():
            entries = self.client.xrevrange(keys.inbox(user), "+", "-", count=RESUME_LIMIT)
        messages = [direct_message(entry) for entry in reversed(entries)]
        return Resumed(messages, False, messages[-1]["id"] if messages else None)

    def history(self, owner: str, other: str, before: str | None,
                limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages between `owner` and `other` before id `before`, oldest
        first. ServiceError('not_found') when `other` is no user (an account, unless
        `app_users`)."""
        if before == "0-0":
            self._known(other)
            return []  # nothing is before the first id (and `(0-0` is no bound to Redis)
        newest = "(" + before if before else "+"
        with redis_errors():
            entries = self.client.xrevrange(keys.conversation(owner, other), newest, "-",
                                            count=limit)
        if not entries:
            self._known(other)
        return [direct_message(entry) for entry in reversed(entries)]

    def list(self, owner: str) -> list[Conversation]:
        """The users `owner` exchanged direct messages with, most recent first, each with the
        newest message and how many of theirs `owner` has not read."""
        with redis_errors():
            others = self.client.zrevrange(keys.conversations(owner), 0, CONVERSATIONS_MAX - 1)
            if not others:
                return []
            replies = self.scripts.run(
                "conversations",
                [keys.conversation_unread(owner),
                 *(keys.conversation(owner, other) for other in others)],
                others)
        return [Conversation(other, direct_message(newest) if newest else None, int(unread))
                for other, (unread, newest) in zip(others, replies, strict=True)]

    def read(self, owner: str, other: str, message_id: str) -> ReadMoved:
        """Move `owner`'s read position in the conversation with `other` to `message_id`
        (clamped to the newest; never backwards). ServiceError('not_found') when `other` is no
        user."""
        with redis_errors():
            reply = self.scripts.run(
                "read", [keys.conversation(owner, other), keys.conversation_reads(owner),
                         keys.conversation_reads(owner), keys.conversation_unread(owner)],
                [other, message_id, "", owner, UNREAD_MAX])
        answer = read_answer(reply, "")
        if answer.id is None:
            self._known(other)
        return answer
