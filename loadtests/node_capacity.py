"""`make capacity`: how many idle connections one node holds, at what memory per connection, the
same beside the Node.js reference, and the largest fan-out room whose cross-node deliveries keep
p99 under 200 ms.

- idle: a one-node cluster; lean clients (lean_client.py) connect straight to the node in steps
  of IDLE_STEP (1000) up to IDLE_MAX (10000) connections and stay idle, answering pings. After each
  step the node's resident memory is read; memory per connection is the slope over all steps. A
  step whose connections fail ends the probe there, with the reason.
- memory: this service and the Node.js Socket.IO reference (MEMORY_SYSTEMS), each one node behind
  the same nginx configuration; MEMORY_CONNECTIONS (3000,15000) lean clients through the front
  door, each joining a room of 30 and staying idle: memory per connection by part (node, nginx,
  Redis) and in all, the CPU their pings cost, a reconnect storm of STORM_CONNECTIONS (3000)
  timed against STORM_BOUND_S, against issue 25's targets (idle_capacity.py has the details);
  the load generator's CPU is reported next to each figure.
- fanout: a cluster of FANOUT_NODES (3) behind nginx; receivers, spread over the nodes by their
  sticky keys, join one room in steps (ROOM_SIZES, default 250,500,1000,2000,4000,6000,8000). At
  each step one sender sends RATE (2) messages/s for SEND_S (10) s; every receiver times every
  message from the send time it carries in client_id, and counts what it missed and what it got
  twice. A send whose ack is lost is sent again with the same client_id (`retries`, resend.py).
  The answer is the largest room whose cross-node p99 (same-node with one node) stays under
  P99_LIMIT_MS (200) with nothing lost or duplicated; the probe stops at the first step over the
  limit.

Fails (exit 1) when a fan-out delivery was lost or repeated, or when this service did not hold its
idle connections or a reconnect storm was not all served within its bound.

The receivers run in RECEIVER_PROCESSES (2) processes on this machine, so they share its cores
with the cluster: on a small machine the figures bound the whole system, not the node alone.
Writes CAPACITY_RESULTS (default bench-results/capacity-<time>/): capacity.json, capacity.png.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

ACCOUNTS = 50  # connections share accounts: presence and joins stay cheap, deliveries do not


def env_number(name: str, default: float) -> float:
    value = os.environ.get(name) or str(default)
    try:
        number = float(value)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {value!r}") from None
    if number <= 0:
        raise SystemExit(f"{name} must be positive, got {value!r}")
    return number


# ---- receiver processes: `python loadtests/node_capacity.py receiver`, commands on stdin --------

def receiver_main() -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from loadtests.lean_client import LeanClient

    clients: list[LeanClient] = []
    seen: list[dict[str, list[tuple[str, float]]]] = []  # per client: client_id -> receipts
    made: list[tuple[int, str | None]] = []  # per client: its index and room, to make it again

    def source_of(url: str, index: int, front_door: bool) -> str | None:
        """The client's own loopback address, straight to a node: one source address holds about
        28,000 connections to one address and port. Through a front door, none: the kernel then
        picks each client's port when it connects, per destination, so clients and nginx's own
        connections to the node (from 127.0.0.1) share the range; a socket bound to an address
        with port 0 instead holds its port against every connect() on the machine, whatever the
        address (Linux skips ports bound that way), and 15,000 clients, their TIME_WAITs and a
        storm's retries would leave nginx no port to reach the node ("99: Cannot assign requested
        address", seen in a 15,000 run)."""
        if "//127.0.0.1:" not in url or front_door:
            return None
        return f"127.0.0.{1 + index // 25000}"

    def made_client(url: str, tokens: list[str], index: int, room: str | None,
                    front_door: bool, timeout: float = 30) -> tuple[LeanClient, dict]:
        got: dict[str, list[tuple[str, float]]] = {}

        def on_message(message: dict[str, Any], received: float) -> None:
            got.setdefault(message.get("client_id", ""), []).append((message["node"], received))

        client = LeanClient(url, tokens[index % len(tokens)], node_key=f"cap{index}",
                            on_message=on_message,
                            source_address=source_of(url, index, front_door))
        try:
            client.connect(timeout=timeout)
            if room is not None:
                answer = client.call("join", {"room": room.format(n=index // 30)},
                                     timeout=timeout)
                if not answer.get("ok"):
                    raise RuntimeError(f"join refused: {answer}")
        except BaseException:
            client.close()
            raise
        return client, got

    def until_served(url: str, tokens: list[str], index: int, room: str | None,
                     front_door: bool, deadline: float) -> tuple[LeanClient, dict, int]:
        """A client connected and in its room, as a Socket.IO client would get there: again
        after a refusal or a timeout (jittered backoff, backoff.py) until `deadline` (wall clock),
        then the last error; with the number of attempts."""
        from loadtests import backoff

        waits = backoff.delays()
        tries = 0
        while True:
            tries += 1
            try:
                client, got = made_client(url, tokens, index, room, front_door,
                                          timeout=max(0.5, min(30, deadline - time.time())))
                return client, got, tries
            except (Exception, gevent.Timeout) as exc:  # refused, reset, timed out: again
                if time.time() >= deadline:
                    exc.attempts = tries  # type: ignore[union-attr]
                    raise
                gevent.sleep(min(next(waits), max(0.0, deadline - time.time())))

    def grow(url: str, tokens: list[str], count: int, room: str | None, first: int,
             front_door: bool = False, retry_s: float = 0) -> dict:
        """`count` more clients at once; with `retry_s`, each tries again after a refusal for
        that long (`retries` counts the extra attempts)."""
        retries = 0

        def one(index: int) -> None:
            nonlocal retries
            if retry_s:
                client, got, tries = until_served(url, tokens, index, room, front_door,
                                                  time.time() + retry_s)
                retries += tries - 1
            else:
                client, got = made_client(url, tokens, index, room, front_door)
            clients.append(client)
            seen.append(got)
            made.append((index, room))

        jobs = [gevent.spawn(one, first + i) for i in range(count)]
        gevent.joinall(jobs, timeout=300 + retry_s)
        errors = [str(job.exception) for job in jobs if job.exception is not None]
        nodes: dict[str, int] = {}
        for client in clients:
            nodes[client.node or "?"] = nodes.get(client.node or "?", 0) + 1
        return {"connected": len(clients), "open": sum(not c.closed for c in clients),
                "errors": errors[:5], "failed": len(errors), "nodes": nodes, "retries": retries}

    def collect(client_ids: list[str], sender_node: str) -> dict:
        """These messages' latencies (cross-node, same-node) and how many receipts are missing
        or repeated."""
        cross, same, missing, duplicates = [], [], 0, 0
        for client, got in zip(clients, seen, strict=True):
            for client_id in client_ids:
                receipts = got.pop(client_id, [])
                if not receipts:
                    missing += 1
                duplicates += max(0, len(receipts) - 1)
                for _node, received in receipts:
                    latency = (received - float(client_id.split(":")[1])) * 1000
                    (same if client.node == sender_node else cross).append(round(latency, 2))
        return {"cross": cross, "same": same, "missing": missing, "duplicates": duplicates}

    def storm(url: str, tokens: list[str], count: int, give_up_s: float) -> dict:
        """A reconnect storm: the first `count` clients' connections all cut at once (closed by
        the clients, so nginx and the node see them end together), then every one connects again
        at once and rejoins its room (until_served) until `give_up_s` after the cut. Returns when
        each was served (connected, welcomed and joined), as wall-clock times, and what failed."""
        positions = list(range(min(count, len(clients))))
        cpu_before = sum(os.times()[:2])
        cut_at = time.time()
        for position in positions:
            clients[position].close()
        served: list[float] = []
        attempts: list[int] = []
        errors: list[str] = []

        def again(position: int) -> None:
            index, room = made[position]
            try:
                client, got, tries = until_served(url, tokens, index, room, True,
                                                  cut_at + give_up_s)
            except (Exception, gevent.Timeout) as exc:
                errors.append(repr(exc))
                attempts.append(getattr(exc, "attempts", 1))
                return
            served.append(time.time())
            attempts.append(tries)
            clients[position], seen[position] = client, got

        jobs = [gevent.spawn(again, position) for position in positions]
        gevent.joinall(jobs, timeout=give_up_s + 30)
        return {"clients": len(positions), "cut_at": cut_at, "served_at": served,
                "attempts": sum(attempts), "failed": len(positions) - len(served),
                "errors": errors[:5], "load_generator_cpu_s": sum(os.times()[:2]) - cpu_before}

    from gevent.fileobject import FileObject

    for line in FileObject(sys.stdin.fileno(), "r"):  # cooperative: receivers read meanwhile
        command = json.loads(line)
        if command["cmd"] == "grow":
            answer = grow(command["url"], command["tokens"], command["count"], command["room"],
                          command["first"], command.get("front_door", False),
                          command.get("retry_s", 0))
        elif command["cmd"] == "collect":
            answer = collect(command["client_ids"], command["sender_node"])
        elif command["cmd"] == "open":
            answer = {"open": sum(not client.closed for client in clients)}
        elif command["cmd"] == "storm":
            answer = storm(command["url"], command["tokens"], command["count"],
                           command["give_up_s"])
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# ---- the probes ----------------------------------------------------------------------------

def main() -> int:
    if sys.argv[1:] == ["receiver"]:
        receiver_main()
        return 0
    from gevent import monkey

    monkey.patch_all()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import psutil
    from cluster import Cluster

    from loadtests.idle_capacity import idle_memory_probe, summary_lines
    from loadtests.lean_client import LeanClient, LeanSender
    from loadtests.resend import Unacknowledged
    from loadtests.run import env_int, prepare_tokens

    folder = Path(os.environ.get("CAPACITY_RESULTS") or ROOT / "bench-results" /
                  time.strftime("capacity-%Y%m%d-%H%M%S")).resolve()  # nginx needs absolute paths
    folder.mkdir(parents=True, exist_ok=True)
    probes = (os.environ.get("PROBES") or "idle,memory,fanout").split(",")
    processes = env_int("RECEIVER_PROCESSES", 2)
    results: dict[str, Any] = {"machine_cores": psutil.cpu_count()}

    class Receivers:
        """The receiver processes, each holding a share of the connections."""

        def __init__(self) -> None:
            from gevent import subprocess

            self.children = [subprocess.Popen([sys.executable, __file__, "receiver"],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              cwd=ROOT, text=True) for _ in range(processes)]
            self.total = 0

        def ask(self, commands: list[dict]) -> list[dict]:
            for child, command in zip(self.children, commands, strict=True):
                child.stdin.write(json.dumps(command) + "\n")
                child.stdin.flush()
            return [json.loads(child.stdout.readline()) for child in self.children]

        def shares(self, count: int) -> list[int]:
            return [count // processes + (1 if i < count % processes else 0)
                    for i in range(processes)]

        def grow(self, url: str, tokens: list[str], count: int, room: str | None,
                 front_door: bool = False, retry_s: float = 0) -> dict:
            shares = self.shares(count)
            answers = self.ask([{"cmd": "grow", "url": url, "tokens": tokens, "count": share,
                                 "room": room, "first": self.total + sum(shares[:i]),
                                 "front_door": front_door, "retry_s": retry_s}
                                for i, share in enumerate(shares)])
            self.total += count
            nodes: dict[str, int] = {}
            for answer in answers:
                for node, n in answer["nodes"].items():
                    nodes[node] = nodes.get(node, 0) + n
            return {"connected": sum(a["connected"] for a in answers),
                    "open": sum(a["open"] for a in answers),
                    "failed": sum(a["failed"] for a in answers),
                    "retries": sum(a.get("retries", 0) for a in answers),
                    "errors": [e for a in answers for e in a["errors"]][:5], "nodes": nodes}

        def open(self) -> int:
            """How many of the connections are still open."""
            return sum(a["open"] for a in self.ask([{"cmd": "open"}] * processes))

        def storm(self, url: str, tokens: list[str], count: int, give_up_s: float) -> dict:
            """`count` clients, shared over the processes, cut and reconnected at once."""
            answers = self.ask([{"cmd": "storm", "url": url, "tokens": tokens, "count": share,
                                 "give_up_s": give_up_s} for share in self.shares(count)])
            return {"clients": sum(a["clients"] for a in answers),
                    "cut_at": min(a["cut_at"] for a in answers),
                    "served_at": sorted(t for a in answers for t in a["served_at"]),
                    "attempts": sum(a["attempts"] for a in answers),
                    "failed": sum(a["failed"] for a in answers),
                    "errors": [e for a in answers for e in a["errors"]][:5],
                    "load_generator_cpu_s": sum(a["load_generator_cpu_s"] for a in answers)}

        def collect(self, client_ids: list[str], sender_node: str) -> dict:
            answers = self.ask([{"cmd": "collect", "client_ids": client_ids,
                                 "sender_node": sender_node}] * processes)
            return {"cross": [x for a in answers for x in a["cross"]],
                    "same": [x for a in answers for x in a["same"]],
                    "missing": sum(a["missing"] for a in answers),
                    "duplicates": sum(a.get("duplicates", 0) for a in answers)}

        def stop(self) -> None:
            for child in self.children:
                child.stdin.close()
                child.wait(timeout=30)

    def rss_mb(pid: int) -> float:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]
                   ) / 2**20

    def percentile(values: list[float], share: float) -> float | None:
        if not values:
            return None
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    limits = {"CONNECT_RATE_PER_S": "5000", "CONNECT_BURST": "20000",
              "CONNECTIONS_PER_ADDRESS": "50000", "RATE_LIMIT_PER_S": "1000",
              "RATE_LIMIT_BURST": "2000"}

    if "idle" in probes:
        step, most = env_int("IDLE_STEP", 1000), env_int("IDLE_MAX", 10000)
        cluster = Cluster(nodes=1, port=18380, redis_port=16380, node_base_port=15380,
                          run_dir=folder / "idle-cluster",
                          env={**limits, "WORKER_CONNECTIONS": str(most + 1000)})
        cluster.start()
        receivers = Receivers()
        steps = []
        try:
            tokens = json.loads(prepare_tokens(cluster.url, ACCOUNTS, folder).read_text())
            node_pid = cluster.processes["node-1"].pid
            steps.append({"connections": 0, "rss_mb": round(rss_mb(node_pid), 1)})
            print(f"idle: 0 connections, node RSS {steps[0]['rss_mb']} MB", flush=True)
            while receivers.total < most:
                started = time.monotonic()
                grown = receivers.grow(cluster.node_url(1), tokens, step, None)
                time.sleep(2)  # let the node settle before reading its memory
                row = {"connections": grown["open"], "rss_mb": round(rss_mb(node_pid), 1),
                       "connect_s": round(time.monotonic() - started, 1),
                       "failed": grown["failed"]}
                steps.append(row)
                print(f"idle: {row['connections']} connections open, node RSS {row['rss_mb']} MB"
                      f", {step} connected in {row['connect_s']} s, {row['failed']} failed",
                      flush=True)
                if grown["failed"] or grown["open"] < receivers.total:
                    row["stopped_because"] = grown["errors"] or ["connections closed"]
                    break
        finally:
            receivers.stop()
            cluster.stop()
        first, last = steps[0], steps[-1]
        per_connection_kb = ((last["rss_mb"] - first["rss_mb"]) * 1024
                             / max(last["connections"], 1))
        results["idle"] = {"steps": steps, "held": last["connections"],
                           "cap": most, "rss_kb_per_connection": round(per_connection_kb, 1)}
        print(f"idle: one node held {last['connections']} connections (cap {most}); "
              f"{per_connection_kb:.1f} KB per connection", flush=True)

    if "memory" in probes:
        results["memory"], results["memory_targets"] = idle_memory_probe(folder, limits,
                                                                         Receivers)
        (folder / "capacity.json").write_text(json.dumps(results, indent=2) + "\n")
        for line in summary_lines(results["memory"], results["memory_targets"]):
            print(line, flush=True)

    if "fanout" in probes:
        sizes = [int(size) for size in (os.environ.get("ROOM_SIZES")
                                        or "250,500,1000,2000,4000,6000,8000").split(",")]
        rate, send_s = env_number("RATE", 2), env_number("SEND_S", 10)
        limit_ms = env_number("P99_LIMIT_MS", 200)
        nodes = env_int("FANOUT_NODES", 3)
        cluster = Cluster(nodes=nodes, port=18370, redis_port=16370, node_base_port=15370,
                          run_dir=folder / "fanout-cluster", env=limits)
        cluster.start()
        receivers = Receivers()
        steps = []
        try:
            tokens = json.loads(prepare_tokens(cluster.url, ACCOUNTS, folder).read_text())
            room = f"capacity-{os.getpid()}"
            sender = LeanSender(lambda: LeanClient(cluster.url, tokens[0],
                                                   node_key="capacity-sender"), room)
            for size in sizes:
                grown = receivers.grow(cluster.url, tokens, size - receivers.total, room)
                if grown["failed"]:
                    steps.append({"room_size": size, "failed_connections": grown["failed"],
                                  "errors": grown["errors"]})
                    print(f"fanout: {size}: {grown['failed']} receivers could not connect: "
                          f"{grown['errors'][:2]}", flush=True)
                    break
                client_ids, refused = [], []
                retries_before = sender.retries
                try:
                    for index in range(int(rate * send_s)):
                        client_id = f"cap{index}:{time.time():.6f}"
                        answer = sender.send({"room": room, "text": "capacity probe",
                                              "client_id": client_id})
                        (client_ids if answer.get("ok") else refused).append(client_id)
                        time.sleep(1 / rate)
                except Unacknowledged as exc:
                    steps.append({"room_size": size, "sender_failed": repr(exc.error),
                                  "retries": sender.retries - retries_before})
                    print(f"fanout: {size}: the sender failed: {exc}", flush=True)
                    break
                time.sleep(2)  # the last broadcast reaches everyone
                got = receivers.collect(client_ids, sender.node)
                if nodes == 1:  # every delivery is same-node: measure those against the limit
                    got["cross"], got["same"] = got["same"], []
                row = {"room_size": size, "nodes": grown["nodes"], "messages": len(client_ids),
                       "sends_refused": len(refused),
                       "deliveries": len(got["cross"]) + len(got["same"]),
                       "missing": got["missing"], "duplicates": got["duplicates"],
                       "retries": sender.retries - retries_before,
                       "cross_node_p50_ms": percentile(got["cross"], 0.50),
                       "cross_node_p99_ms": percentile(got["cross"], 0.99),
                       "same_node_p99_ms": percentile(got["same"], 0.99)}
                steps.append(row)
                print(f"fanout: room of {size} ({grown['nodes']}): cross-node p50 "
                      f"{row['cross_node_p50_ms']} ms, p99 {row['cross_node_p99_ms']} ms, "
                      f"{row['missing']} missing, {row['duplicates']} duplicated, "
                      f"{row['retries']} resent", flush=True)
                if (row["missing"] or row["duplicates"]
                        or (row["cross_node_p99_ms"] or 0) > limit_ms):
                    break
            sender.close()
        finally:
            receivers.stop()
            cluster.stop()
        within = [row["room_size"] for row in steps if "missing" in row and not row["missing"]
                  and not row["duplicates"] and (row["cross_node_p99_ms"] or 0) <= limit_ms]
        results["fanout"] = {"steps": steps, "nodes": nodes, "p99_limit_ms": limit_ms,
                             "rate_per_s": rate,
                             "largest_room_within_limit": max(within, default=0),
                             "largest_size_tried": sizes[-1]}
        print(f"fanout: the largest room within {limit_ms:g} ms cross-node p99: "
              f"{max(within, default=0)} (sizes tried up to {steps[-1]['room_size']})",
              flush=True)

    (folder / "capacity.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(plt, results, folder / "capacity.png")
    print(f"written to {folder}")
    lost = any(row.get("missing") or row.get("duplicates")
               for row in results.get("fanout", {}).get("steps", []))
    missed_targets = not results.get("memory_targets", {"ok": True})["ok"]
    if missed_targets:
        print("memory: this service did not hold its connections, or a reconnect storm was not "
              "all served within its bound (memory_targets in capacity.json)", flush=True)
    return 1 if lost or missed_targets else 0


def chart(plt: Any, results: dict[str, Any], path: Path) -> None:
    from loadtests.idle_capacity import chart as memory_chart

    panels = [name for name in ("idle", "memory", "fanout") if results.get(name)]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        if name == "memory":
            memory_chart(axis, results["memory"])
            continue
        steps = results[name]["steps"]
        if name == "idle":
            axis.plot([s["connections"] for s in steps], [s["rss_mb"] for s in steps], "o-")
            axis.set_xlabel("idle connections on one node")
            axis.set_ylabel("node resident memory (MB)")
            axis.set_title(f"idle: {results['idle']['rss_kb_per_connection']} KB per connection")
        else:
            rows = [s for s in steps if s.get("cross_node_p99_ms") is not None]
            axis.plot([s["room_size"] for s in rows], [s["cross_node_p99_ms"] for s in rows],
                      "o-", label="cross-node p99")
            axis.plot([s["room_size"] for s in rows], [s["cross_node_p50_ms"] for s in rows],
                      "o-", label="cross-node p50")
            axis.axhline(results["fanout"]["p99_limit_ms"], color="tab:red", linestyle="--",
                         label="limit")
            if rows:
                axis.set_xscale("log")
            axis.set_xlabel(f"room size (receivers, {results['fanout']['nodes']} nodes)")
            axis.set_ylabel("delivery latency (ms)")
            axis.set_title(f"fan-out at {results['fanout']['rate_per_s']:g} messages/s")
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
