"""The hooks' Prometheus metrics: calls by hook and outcome, and how long they took.

Registered in the node's registry (realtime/metrics.py makes them), so `/metrics` exports them
with the rest; the cluster page reads `totals()`. The hook's URL and secret are never a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

HOOKS = ("join", "send")
OUTCOMES = ("allow", "deny", "error", "timeout")
FAILURES = ("error", "timeout")
BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HookMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.calls = Counter("rooms_hook_calls", "Calls of the app's hooks, by hook and outcome "
                             "(allow, deny, error, timeout)", ["hook", "outcome"],
                             registry=registry)
        self.seconds = Histogram("rooms_hook_seconds", "How long a hook call took, answered or "
                                 "not", ["hook"], buckets=BUCKETS, registry=registry)
        self._counts: dict[tuple[str, str], int] = {}
        for hook in HOOKS:
            self.seconds.labels(hook)
            for outcome in OUTCOMES:
                self.calls.labels(hook, outcome)
                self._counts[(hook, outcome)] = 0

    def observe(self, hook: str, outcome: str, seconds: float) -> None:
        self.calls.labels(hook, outcome).inc()
        self.seconds.labels(hook).observe(seconds)
        self._counts[(hook, outcome)] = self._counts.get((hook, outcome), 0) + 1

    def totals(self) -> dict[str, int]:
        """Calls and failed calls (error or timeout) since the node started, of both hooks."""
        calls = sum(self._counts.values())
        failed = sum(count for (_, outcome), count in self._counts.items()
                     if outcome in FAILURES)
        return {"calls": calls, "failed": failed}
