"""Bytes on the wire: WebSocket frames, packet checks, the JSON codec, and every reliance on a
library's internals (compat)."""
