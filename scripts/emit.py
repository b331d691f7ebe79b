"""Emit a Socket.IO event to a room's, a user's or every connection, on every node, from a
separate process (a worker, a cron job): the example of service/bus/emitter.py.

    REDIS_URL=redis://127.0.0.1:8079/0 .venv/bin/python scripts/emit.py \\
        --room lobby --event announcement --data '{"text": "maintenance at 18:00"}'

It reads Redis from the same settings as a node (REDIS_URL, or REDIS_CLUSTER_NODES with
REDIS_PASSWORD), from the environment or `.env`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.bus.emitter import Emitter
from service.settings import SettingsError, load_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--room", help="every connection that joined this room")
    target.add_argument("--user", help="every connection of this user")
    parser.add_argument("--event", required=True)
    parser.add_argument("--data", default="{}", help="JSON")
    args = parser.parse_args()
    try:
        settings = load_settings()
        data = json.loads(args.data)
    except (SettingsError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    target_ = settings.redis_target
    emitter = Emitter.connect(target_.url, cluster_nodes=list(target_.cluster_nodes),
                              password=target_.password, username=target_.username)
    try:
        emitter.emit(args.event, data, room=args.room, user=args.user)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
