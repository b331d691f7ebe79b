"""`python -m loadtests.app_receiver PORT`, with HOOK_SECRET in its environment: the app's
backend as `make bench PARTS=app` needs it, as lean as a backend can be, so that what is
measured is the service's side of hooks and webhooks.

- `POST /hooks/send` and `/hooks/join` check the signature and allow (a send hook that never
  replaces the text);
- `POST /webhooks` checks the signature and records, per `message` event, how long after it was
  stored it arrived (its lag: the event's `ts` is the stored id's milliseconds);
- `GET /stats` answers what was received: requests and events by kind, distinct message ids,
  duplicates, lag percentiles (ms) by quarter of the run, refusals.
One gevent process; its CPU is the app's, reported beside the service's, never in it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter

from gevent import socket
from gevent.pywsgi import WSGIServer

from service.hooks import signing


class Receiver:
    def __init__(self, secret: str):
        self.secret = secret
        self.counts: Counter[str] = Counter()
        self.message_ids: set[str] = set()
        self.duplicates = 0
        self.lags: list[tuple[float, float]] = []  # (received at, lag ms)

    def __call__(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if method == "GET" and path == "/stats":
            return self.answer(start_response, "200 OK", self.stats())
        body = environ["wsgi.input"].read()
        if method != "POST" or not signing.verify(
                self.secret, environ.get("HTTP_X_ROOMS_TIMESTAMP"),
                environ.get("HTTP_X_ROOMS_SIGNATURE"), body):
            self.counts["refused"] += 1
            return self.answer(start_response, "403 Forbidden", {"error": "unsigned"})
        if path in ("/hooks/send", "/hooks/join"):
            self.counts[path] += 1
            return self.answer(start_response, "200 OK", {"allow": True})
        if path == "/webhooks":
            self.record(json.loads(body)["events"])
            start_response("204 No Content", [])
            return [b""]
        return self.answer(start_response, "404 Not Found", {"error": "no such path"})

    def record(self, events: list[dict]) -> None:
        now = time.time()
        self.counts["batches"] += 1
        for event in events:
            self.counts[event["type"]] += 1
            if event["type"] != "message":
                continue
            if event["id"] in self.message_ids:
                self.duplicates += 1
                continue
            self.message_ids.add(event["id"])
            self.lags.append((now, now * 1000 - event["ts"]))

    def stats(self) -> dict:
        quarters = []
        if self.lags:
            first, last = self.lags[0][0], self.lags[-1][0]
            span = max(last - first, 1e-9)
            for quarter in range(4):
                lags = sorted(lag for at, lag in self.lags
                              if quarter <= (at - first) / span * 4 < quarter + 1
                              or (quarter == 3 and at == last))
                quarters.append({"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99),
                                 "max": lags[-1] if lags else None, "events": len(lags)})
        return {"counts": dict(self.counts), "messages": len(self.message_ids),
                "duplicates": self.duplicates, "lag_ms_by_quarter": quarters}

    @staticmethod
    def answer(start_response, status: str, payload: dict) -> list[bytes]:
        body = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))])
        return [body]


def percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def listener(port: int) -> socket.socket:
    """The listening socket; its connections inherit TCP_NODELAY, so that an answer's headers
    and body, written apart, do not wait for the client's delayed ACK (40 ms a request)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


if __name__ == "__main__":
    WSGIServer(listener(int(sys.argv[1])), Receiver(os.environ["HOOK_SECRET"]),
               log=None).serve_forever()
