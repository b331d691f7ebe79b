"""Who may join, and read, a room (PROTOCOL.md, "Rooms your app controls").

Guarantees
- A public room admits every authenticated user, as before.
- A private room admits a user the app added (`MEMBER`: the join checks it again in the same
  step as it joins, so a removal answered before the join completes wins), one whose token's
  `rooms` claim matches it, or one the join hook allows (`GRANTED`); everyone else gets
  `forbidden`. Either way the user may then send there until it leaves or is removed.
- The join hook is asked only when neither the app's membership nor the token admits the user,
  and not while its earlier `allow: true` for that user and room is remembered: JOIN_HOOK_CACHE_S,
  in Redis in the room's slot, so every node shares it and a removal forgets it.
- Reading a private room (`history`, `presence`) without being in it needs the same admission,
  short of asking the hook: added, admitted, granted by the token, or a remembered `allow`.
"""

from __future__ import annotations

from ..bus.broker import Broker
from ..errors import ServiceError
from ..hooks.hooks import Hooks
from ..primitives.names import grants
from ..store.rules import Access

PUBLIC, MEMBER, GRANTED = "", "member", "granted"  # how a join was admitted (lua/join.lua)


class Admission:
    def __init__(self, broker: Broker, hooks: Hooks, join_hook_cache_s: int):
        self.broker = broker
        self.hooks = hooks
        self.join_hook_cache_s = join_hook_cache_s

    def admit(self, user: str, room_grants: tuple[str, ...], room: str) -> str:
        """How `user` (with its token's `room_grants`) is admitted to `room`: PUBLIC, MEMBER or
        GRANTED. ServiceError('forbidden') when it is not, ('unavailable') when the join hook
        could not be asked."""
        access = self.broker.access(room, user)
        if not access.rules.private:
            return PUBLIC
        if access.added:
            return MEMBER
        if grants(room_grants, room) or access.hook_allowed:
            return GRANTED
        if not self.hooks.asks_joins:
            raise ServiceError("forbidden", f"room {room} is private: only its members may join")
        self.hooks.join(user, room)
        if self.join_hook_cache_s:
            self.broker.remember_join(room, user, self.join_hook_cache_s)
        return GRANTED

    def check_read(self, user: str, room_grants: tuple[str, ...], room: str) -> None:
        """ServiceError('forbidden') unless `user` may read `room` without being in it."""
        check_read(self.broker.access(room, user), room_grants, room)


def check_read(access: Access, room_grants: tuple[str, ...], room: str) -> None:
    """ServiceError('forbidden') unless a user whose `access` to `room` this is (with its
    token's `room_grants`) may read the room without being in it."""
    if (access.rules.private and not (access.added or access.admitted or access.hook_allowed)
            and not grants(room_grants, room)):
        raise ServiceError("forbidden", f"room {room} is private: only its members may read it")
