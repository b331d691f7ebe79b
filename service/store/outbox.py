"""The webhook outbox: what happened, kept in Redis until a sender delivered it (WEBHOOK_URL).

Where events wait
- A room's stream (`room:{r}:log`) is the outbox of its `message` events, and a user's inbox
  (`inbox:{u}`) of its `direct` events (the entries addressed to the user: the copies a user
  sent are in its inbox too, and are no events there). Each has a webhook hash in its own slot
  (keys.room_webhook, keys.inbox_webhook) whose `cursor` is the newest id delivered.
- A room's other events (`presence`, `member`) go into a side stream in the room's slot
  (keys.room_webhook_events); each entry is deleted once delivered.
- A pending marker in the same slot (keys.room_webhook_pending, keys.inbox_webhook_pending) is
  set while anything there is undelivered.
- One index for the whole cluster (keys.WEBHOOK_DUE) lists the rooms and inboxes with the time
  to try each next; senders on every node take what is due from it.

What is atomic with a message's append, and what is not
- Atomic (lua/append.lua, one script in the stream's slot): the entry, its publication, the
  marker, and (for the first event) the cursor. Likewise presence and membership changes and
  their side-stream events and marker (lua/join.lua, leave.lua, reap_room.lua, member_leave.lua,
  webhook_event.lua). An event is stored exactly when the thing it reports is.
- Not atomic: the index entry. On a Redis Cluster the index lives in a slot of its own, which a
  script of the room's slot may not touch, so the node adds it right after the script, and only
  when the script set the marker (a marker already set means the outbox is indexed, or about to
  be, or will be swept).
- Why nothing is lost in between: the marker is set with the event and cleared only by a
  sender's advance (lua/webhook_advance.lua), in the same slot, atomically with finding nothing
  left after the cursor. So a marker set is an outbox with something undelivered or about to be
  found empty, and an outbox with something undelivered has its marker set. A node that crashes
  between the script and the index write leaves a marker without an index entry: the sweep
  (`sweep`: SCAN of every master for markers, one node at a time under a lease, every
  WEBHOOK_SWEEP_S) indexes it again. A sender that removes an entry (the outbox was caught up)
  reads the marker after the removal and indexes the outbox again if an append set it meanwhile.
  The worst case is a delay of one sweep, never a loss.

Delivery
- A sender takes an outbox with a lease in its slot (SET NX PX), so no two senders have the
  same outbox's events in flight at once, and reads what follows the cursor in the same step
  (lua/webhook_take.lua). Only after the receiver answered 2xx does it move the cursor
  (lua/webhook_advance.lua, which checks the lease is still its own): delivery is at least once,
  in stored order per outbox, with ids that never change (`m:<room>:<id>`, `d:<user>:<id>`,
  `e:<room>:<id>`).
- Retention (ROOM_HISTORY_MAX) never trims an undelivered entry younger than WEBHOOK_RETRY_S
  while webhooks are on (lua/append.lua); an older one it trims is counted (`expired`) and the
  cursor moves past it, as the sender does for events it drops (service/hooks/webhooks.py).
- With WEBHOOK_URL unset nothing of this is written: the scripts get a flag that turns it off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis

from ..primitives.ids import parse_id
from . import keys
from .failures import redis_errors
from .payloads import direct_message, entry_fields, room_message
from .scripts import Scripts
from .topology import Topology

log = logging.getLogger("service.store")
ROOM, INBOX = "room", "inbox"
ROOM_EVENT_TYPES = {"presence": ("join", "leave"),
                    "member": ("added", "removed", "joined", "left")}
SCAN_COUNT = 1000


@dataclass(frozen=True)
class Outbox:
    """A room (its log and its side stream of other events) or a user's inbox."""

    kind: str  # ROOM or INBOX
    target: str

    @property
    def member(self) -> str:
        """Its name in the index."""
        return f"{self.kind}:{self.target}"

    @classmethod
    def of(cls, member: str) -> Outbox | None:
        kind, _, target = member.partition(":")
        return cls(kind, target) if kind in (ROOM, INBOX) and target else None

    def keys(self) -> list[str]:
        """Lease, webhook hash, marker, stream, side stream (an inbox's repeats its stream)."""
        if self.kind == ROOM:
            room = self.target
            return [keys.room_webhook_lease(room), keys.room_webhook(room),
                    keys.room_webhook_pending(room), keys.room_log(room),
                    keys.room_webhook_events(room)]
        user = self.target
        return [keys.inbox_webhook_lease(user), keys.inbox_webhook(user),
                keys.inbox_webhook_pending(user), keys.inbox(user), keys.inbox(user)]


def marker_outbox(key: str) -> Outbox | None:
    """The outbox whose pending marker `key` is (None for any other key SCAN matched)."""
    tag = keys.hash_tag(key)
    if key == keys.room_webhook_pending(tag):
        return Outbox(ROOM, tag)
    if key == keys.inbox_webhook_pending(tag):
        return Outbox(INBOX, tag)
    return None


class Entry(NamedTuple):
    """One undelivered entry of an outbox: `event` is None for an entry that is no event (a
    copy a user sent, in its own inbox), which the cursor still moves past."""

    source: str  # "log" (the room's log or the inbox) or "side" (a room's other events)
    stream_id: str
    event: dict[str, Any] | None

    @property
    def ms(self) -> int:
        return parse_id(self.stream_id)[0]


@dataclass
class Taken:
    """An outbox a sender holds the lease of, with what was undelivered when it took it."""

    outbox: Outbox
    token: str
    marked: bool  # whether the pending marker was set
    failures: int  # tries failed in a row before this one
    expired: int  # undelivered events retention dropped since the last take
    entries: list[Entry] = field(default_factory=list)  # oldest first, both streams merged


def log_entry(outbox: Outbox, raw: Any) -> Entry:
    """A room log's or an inbox's entry as a webhook event (None where it is none)."""
    stream_id, fields = entry_fields(raw)
    ms = parse_id(stream_id)[0]
    if outbox.kind == ROOM:
        room = outbox.target
        return Entry("log", stream_id, {
            "id": f"m:{room}:{stream_id}", "type": "message", "ts": ms, "room": room,
            "message": room_message(room, (stream_id, fields))})
    user = outbox.target
    if fields.get("to") != user:
        return Entry("log", stream_id, None)
    return Entry("log", stream_id, {"id": f"d:{user}:{stream_id}", "type": "direct", "ts": ms,
                                    "message": direct_message((stream_id, fields))})


def side_entry(room: str, raw: Any) -> Entry:
    """A room's side-stream entry as its webhook event."""
    stream_id, fields = entry_fields(raw)
    return Entry("side", stream_id, {
        "id": f"e:{room}:{stream_id}", "type": fields.get("k", ""),
        "ts": parse_id(stream_id)[0], "room": room, "user": fields.get("u", ""),
        "action": fields.get("a", "")})


def merged(log_entries: list[Entry], side_entries: list[Entry], limit: int) -> list[Entry]:
    """The oldest `limit` entries of two streams read `limit` deep each, in id order (an entry
    not read is newer than every one read from its stream)."""
    both = sorted([*log_entries, *side_entries], key=lambda entry: parse_id(entry.stream_id))
    return both[:limit]


class Advanced(NamedTuple):
    state: str  # "done" (nothing left), "more", or "lost" (the lease was not ours any more)
    oldest_left_ms: int | None  # with "more": the oldest entry left


class IndexFigures(NamedTuple):
    outboxes: int  # indexed (pending) rooms and inboxes
    earliest_due_ms: int | None
    oldest_event_ms: int | None  # of those whose last try left something


class Webhooks:
    """The store's side of webhooks: marking outboxes (with the scripts that append), the
    index, and the sender's steps, each one script in the outbox's or the index's slot.

    `retry_s` None: webhooks are off, and every method that writes does nothing."""

    def __init__(self, client: Any, scripts: Scripts, topology: Topology, node: str,
                 retry_s: int | None, on_indexed: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.scripts = scripts
        self.topology = topology
        self.node = node
        self.retry_s = retry_s
        self.on_indexed = on_indexed  # this node's sender wakes up
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.retry_s is not None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- marking (the appending scripts' flags) -----------------------------------------------

    def flag(self, event: bool = True) -> str:
        """The flag append.lua takes: '0' off, '1' an event, '2' on but no event."""
        if not self.enabled:
            return "0"
        return "1" if event else "2"

    @property
    def retry_ms(self) -> int:
        return (self.retry_s or 0) * 1000

    def marked(self, outbox: Outbox, set_now: Any) -> None:
        """After a script that may have set `outbox`'s marker: index it if it did (the step
        that is not atomic with the append; see the module's docstring)."""
        if self.enabled and set_now:
            self.index(outbox)

    def index(self, outbox: Outbox) -> bool:
        """List the outbox as due now, unless it is listed; whether it was not."""
        with redis_errors():
            added = self.scripts.run("webhook_index", [keys.WEBHOOK_DUE, keys.WEBHOOK_SINCE],
                                     ["add", outbox.member, self._now_ms(), ""])
        self.on_indexed()
        return bool(added)

    def record_room_event(self, room: str, event: dict[str, str]) -> None:
        """Record a room's webhook event other than a message: `{type: "presence", user,
        action: "join"|"leave"}` or `{type: "member", user, action: "added"|"removed"|"joined"|
        "left"}`. Nothing when webhooks are off. Joins, leaves and a user's first join or its
        leave are recorded by the store itself (presence.py, members.py), atomically with the
        change; this is for the changes made elsewhere (the app's HTTP calls). Raises ValueError
        for an unknown type or action."""
        kind, user, action = event.get("type", ""), event.get("user", ""), event.get("action", "")
        if action not in ROOM_EVENT_TYPES.get(kind, ()) or not user:
            raise ValueError(f"not a room webhook event: {event!r}")
        if not self.enabled:
            return
        with redis_errors():
            set_now = self.scripts.run(
                "webhook_event", [keys.room_webhook_events(room), keys.room_webhook_pending(room)],
                [kind, user, action])
        self.marked(Outbox(ROOM, room), set_now)

    # ---- the sender's steps ---------------------------------------------------------------------

    def due(self, limit: int, offset: int = 0) -> list[Outbox]:
        """Indexed outboxes whose time to try has come, longest due first (from `offset`)."""
        with redis_errors():
            members = self.client.zrangebyscore(keys.WEBHOOK_DUE, "-inf", self._now_ms(),
                                                start=offset, num=limit)
        return [outbox for member in members if (outbox := Outbox.of(member)) is not None]

    def take(self, outbox: Outbox, token: str, lease_ms: int, limit: int) -> Taken | None:
        """The outbox's lease and its oldest `limit` undelivered entries; None when another
        sender holds it, or the pause after its last failed try has not passed (its index
        entry then moves to the pause's end)."""
        with redis_errors():
            reply = self.scripts.run("webhook_take", outbox.keys(),
                                     [token, lease_ms, limit, "1" if outbox.kind == ROOM else "0"])
        if not reply:
            return None
        if reply[0] == "paused":
            with redis_errors():
                self.scripts.run("webhook_index", [keys.WEBHOOK_DUE, keys.WEBHOOK_SINCE],
                                 ["later", outbox.member, self._now_ms() + int(reply[1]), ""])
            return None
        is_marked, failures, expired, log_raw, side_raw = reply
        log_entries = [log_entry(outbox, raw) for raw in log_raw]
        side_entries = [side_entry(outbox.target, raw) for raw in side_raw]
        return Taken(outbox, token, bool(is_marked), int(failures), int(expired),
                     merged(log_entries, side_entries, limit))

    def advance(self, taken: Taken, through: list[Entry], lease: str) -> Advanced:
        """Move past `through` (delivered or dropped entries of `taken`, oldest first); `lease`
        'keep', 'release' or 'delivered' (released, and the failures in a row forgotten)."""
        logged = [entry.stream_id for entry in through if entry.source == "log"]
        side = [entry.stream_id for entry in through if entry.source == "side"]
        with redis_errors():
            reply = self.scripts.run("webhook_advance", taken.outbox.keys(),
                                     [taken.token, logged[-1] if logged else "", lease, *side])
        state = reply[0]
        return Advanced(state, parse_id(reply[1])[0] if state == "more" else None)

    def failed(self, taken: Taken, pause_ms: int) -> int | None:
        """Count a failed try, pause the outbox for `pause_ms` (no sender takes it before,
        whatever its list of due outboxes says) and give the lease back: the failures in a row
        now, or None when the lease was not this sender's any more."""
        with redis_errors():
            reply = self.scripts.run("webhook_failed", taken.outbox.keys()[:2],
                                     [taken.token, pause_ms])
        return None if reply is None or reply is False else int(reply)

    def schedule(self, outbox: Outbox, at_ms: int, oldest_ms: int) -> None:
        """Try the outbox again at `at_ms`; its oldest undelivered event is from `oldest_ms`."""
        with redis_errors():
            self.scripts.run("webhook_index", [keys.WEBHOOK_DUE, keys.WEBHOOK_SINCE],
                             ["schedule", outbox.member, at_ms, oldest_ms])

    def settled(self, outbox: Outbox) -> None:
        """The outbox was caught up: unlist it, then read its marker and list it again if an
        append set it meanwhile (its own index write found the entry still there)."""
        with redis_errors():
            self.scripts.run("webhook_index", [keys.WEBHOOK_DUE, keys.WEBHOOK_SINCE],
                             ["remove", outbox.member, "", ""])
            again = self.client.exists(outbox.keys()[2])
        if again:
            self.index(outbox)

    def figures(self) -> IndexFigures:
        """How many outboxes are pending, the earliest time one is due, and the oldest event
        a try left undelivered."""
        with redis_errors():
            count, due, since = self.scripts.run(
                "webhook_index", [keys.WEBHOOK_DUE, keys.WEBHOOK_SINCE], ["figures", "", "", ""])
        return IndexFigures(int(count), int(float(due)) if due else None,
                            int(float(since)) if since else None)

    # ---- the sweep ------------------------------------------------------------------------------

    def sweep(self, lease_ms: int) -> int | None:
        """If no node swept within `lease_ms`: list every outbox whose marker is set, by a SCAN
        of every master; how many were not listed (None: another node's turn)."""
        with redis_errors():
            if not self.client.set(keys.WEBHOOK_SWEEP, self.node, nx=True, px=lease_ms):
                return None
        found = 0
        for address in self.topology.masters():
            for key in self._markers(address):
                outbox = marker_outbox(key)
                if outbox is not None and self.index(outbox):
                    found += 1
        return found

    def _markers(self, address: Any) -> list[str]:
        try:
            connection = self.topology.connect(address, "webhook-sweep", timeout_s=5)
        except (redis.RedisError, OSError) as error:
            log.warning("node=%s webhook sweep could not reach %s:%s (%s)", self.node,
                        address[0], address[1], error.__class__.__name__)
            return []
        found: list[str] = []
        try:
            cursor = b"0"
            while True:
                connection.send_command("SCAN", cursor, "MATCH", keys.WEBHOOK_PENDING_PATTERN,
                                        "COUNT", SCAN_COUNT, "TYPE", "string")
                cursor, batch = connection.read_response()
                found += [key.decode() if isinstance(key, bytes) else key for key in batch]
                if cursor in (b"0", "0", 0):
                    return found
        except (redis.RedisError, OSError) as error:
            log.warning("node=%s webhook sweep of %s:%s stopped (%s)", self.node, address[0],
                        address[1], error.__class__.__name__)
            return found
        finally:
            connection.disconnect()
