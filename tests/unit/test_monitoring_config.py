"""The monitoring profile's configuration agrees with itself and with what the nodes export:
Prometheus finds every node replica and the nginx exporter, the exporter reads the front door's
status port, and every metric a Grafana panel queries exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"

# What a node exports at /metrics (PROTOCOL.md, Operations): name -> type.
NODE_METRICS = {
    "rooms_connections": "gauge",
    "rooms_rooms": "gauge",
    "rooms_bus_channels": "gauge",
    "rooms_bus_up": "gauge",
    "rooms_bus_lost_channels": "gauge",
    "rooms_bus_resubscribes_total": "counter",
    "rooms_bus_replayed_total": "counter",
    "rooms_messages_accepted_total": "counter",
    "rooms_messages_delivered_total": "counter",
    "rooms_publish_seconds": "histogram",
    "rooms_delivery_seconds": "histogram",
    "rooms_errors_total": "counter",
    "rooms_rate_limited_total": "counter",
    "rooms_draining": "gauge",
    "rooms_redis_up": "gauge",
    "rooms_canary_lag_seconds": "gauge",
    "rooms_canary_lost_total": "counter",
    "rooms_canary_heard_age_seconds": "gauge",
    "rooms_canary_sent_total": "counter",
    "rooms_node_info": "gauge",
    "rooms_redis_master_up": "gauge",
    "rooms_redis_replicas_in_sync": "gauge",
    "rooms_redis_writes_degraded": "gauge",
    "rooms_redis_memory_full": "gauge",
    "rooms_redis_memory_used_bytes": "gauge",
    "rooms_redis_maxmemory_bytes": "gauge",
    "rooms_redis_oom_refusals_total": "counter",
    "rooms_cut_off": "gauge",
    "rooms_handed_over_total": "counter",
    "rooms_hook_calls_total": "counter",
    "rooms_hook_seconds": "histogram",
    "rooms_webhook_batches_total": "counter",
    "rooms_webhook_events_total": "counter",
    "rooms_webhook_retries_total": "counter",
    "rooms_webhook_dropped_total": "counter",
    "rooms_webhook_pending_outboxes": "gauge",
    "rooms_webhook_oldest_pending_seconds": "gauge",
    "rooms_transport_tasks": "gauge",
    "rooms_transport_paused": "gauge",
}
# What the nginx exporter makes of stub_status (the same names in 0.11 and 1.x).
NGINX_METRICS = {
    "nginx_up", "nginx_connections_accepted", "nginx_connections_active",
    "nginx_connections_handled", "nginx_connections_reading", "nginx_connections_waiting",
    "nginx_connections_writing", "nginx_http_requests_total",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "grafana" / "dashboards" / "rooms.json").read_text())


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found += [panel] if panel["type"] != "row" else panel.get("panels", [])
    return found


def queried_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads; a histogram's series count as the histogram."""
    names = set()
    for name in re.findall(r"\b(?:rooms|nginx)_[a-z_]+\b", expr):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES
                     if name.endswith(s) and NODE_METRICS.get(name.removesuffix(s)) == "histogram"),
                    name)
        names.add(base)
    return names


def test_every_panel_queries_only_metrics_that_exist():
    unknown, used = {}, set()
    for panel in panels():
        assert panel.get("targets"), f"panel {panel['title']!r} queries nothing"
        for target in panel["targets"]:
            names = queried_metrics(target["expr"])
            assert names, f"{panel['title']!r}: {target['expr']!r} reads no metric"
            missing = names - set(NODE_METRICS) - NGINX_METRICS
            if missing:
                unknown[panel["title"]] = sorted(missing)
            used |= names
    assert not unknown, f"panels query metrics no node or exporter exports: {unknown}"
    assert set(NODE_METRICS) <= used, f"not on the dashboard: {sorted(set(NODE_METRICS) - used)}"


def test_histograms_are_read_through_their_series_and_counters_through_rates():
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for name in re.findall(r"\brooms_[a-z_]+\b", expr):
                if NODE_METRICS.get(name) == "histogram":
                    raise AssertionError(f"{expr!r} reads histogram {name} without a series")
                if NODE_METRICS.get(name) == "counter":
                    assert re.search(rf"(rate|increase)\({name}\[", expr), expr


def test_panels_use_the_provisioned_datasource():
    provisioned = load_yaml(MONITORING / "grafana" / "provisioning" / "datasources"
                            / "prometheus.yml")["datasources"]
    assert [(d["type"], d["url"]) for d in provisioned] == [("prometheus", "http://prometheus:9090")]
    uid = provisioned[0]["uid"]
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_grafana_loads_the_dashboard_folder_compose_mounts():
    provider = load_yaml(MONITORING / "grafana" / "provisioning" / "dashboards" / "rooms.yml")
    [entry] = provider["providers"]
    grafana = compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./monitoring/grafana/dashboards"] == entry["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_prometheus_finds_every_node_replica_and_the_exporter():
    services = compose()["services"]
    config = load_yaml(MONITORING / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [dns] = jobs["rooms-nodes"]["dns_sd_configs"]
    node_port = int(services["node"]["environment"]["BIND"].rsplit(":", 1)[1])
    assert (dns["names"], dns["type"], dns["port"]) == (["node"], "A", node_port)
    assert "node" in services and services["node"]["deploy"]["replicas"] >= 1
    [exporter_target] = jobs["nginx"]["static_configs"][0]["targets"]
    assert exporter_target == "nginx-exporter:9113"
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    assert mounts["./monitoring/prometheus.yml"] == "/etc/prometheus/prometheus.yml"


def test_the_exporter_reads_the_front_doors_status_port():
    services = compose()["services"]
    [flag] = services["nginx-exporter"]["command"]
    status_port = services["nginx"]["environment"]["STATUS_PORT"]
    assert flag == f"--nginx.scrape-uri=http://nginx:{status_port}/nginx_status"
    assert "STATUS_PORT" in services["nginx"]["environment"]["NGINX_ENVSUBST_FILTER"]
    template = (ROOT / "nginx" / "cluster.conf.template").read_text()
    assert re.search(r"listen \$\{STATUS_PORT\};.*location = /nginx_status \{\s*stub_status;",
                     template, re.S)


def test_monitoring_runs_only_with_its_profile():
    services = compose()["services"]
    monitoring = {name for name, s in services.items() if s.get("profiles")}
    assert monitoring == {"prometheus", "nginx-exporter", "grafana"}
    assert all(services[name]["profiles"] == ["monitoring"] for name in monitoring)


def test_the_list_here_is_what_the_nodes_export():
    from service.node.node_metrics import NAMES

    assert set(NODE_METRICS) == set(NAMES)
