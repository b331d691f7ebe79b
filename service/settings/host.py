"""Defaults taken from the host: a node's name and the address its peers reach it at."""

from __future__ import annotations

import re
import socket

FALLBACK_NODE_NAME = "node-1"


def default_node_url(bind: str) -> str:
    """How peers reach this node, from where it listens (BIND): a wildcard address becomes the
    address the host's name resolves to (a container's or pod's own)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - read, not bound
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"http://{host}:{port}"


def default_node_name() -> str:
    """The host's name made a valid node name (a container's or pod's name is unique)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or FALLBACK_NODE_NAME
