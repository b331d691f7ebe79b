"""The Kubernetes manifests (k8s/), checked without a cluster.

Every overlay is rendered by kubectl's kustomize (offline), every object is validated against the
Kubernetes API's schemas (kubernetes-validate, strict: an unknown field fails) or, for the
ServiceMonitor, against the Prometheus Operator's CRD kept in k8s/schemas, and the properties the
service relies on are checked; each check is also shown to fail on a manifest broken on purpose.
The front door's ConfigMap must carry nginx/'s template and follow-nodes.sh byte for byte, read
from nginx/ when kustomize runs (nginx/kustomization.yaml), with no copy of them under k8s/.
Nothing here reaches an API server: kubectl's client-side dry run cannot run without one (it asks
the server for its API groups and OpenAPI schema), so it is not run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import re
import runpy
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.settings import NODE_NAME_PATTERN, load_settings
from tests.unit.test_front_door_config import check_lean_server, check_workers

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
NGINX = ROOT / "nginx"  # the front door's files: k8s/base takes them as a base (../../nginx)
# the oldest Kubernetes release the manifests are for, and the newest kubernetes-validate knows
KUBERNETES_VERSIONS = ("1.30", "1.37")
OVERLAYS = ("single-redis", "redis-cluster", "external-redis")
NODE = "rooms-node"
FRONT_DOOR = "rooms-front-door"
# The front door's ConfigMap, key by key: the file (from the repository's root) it carries byte for
# byte. nginx/'s are the ones make run and docker-compose.yml use; nginx/kustomization.yaml makes
# the ConfigMap of them, and k8s/base merges its own nginx.conf into it.
FRONT_DOOR_FILES = {"default.conf.template": "nginx/cluster.conf.template",
                    "follow-nodes.sh": "nginx/follow-nodes.sh",
                    "nginx.conf": "k8s/base/front-door/nginx.conf"}
Objects = list[dict[str, Any]]


def throwaway_secrets(overlay: str) -> dict[str, str]:
    """What a user puts in the overlay's secrets.env: fresh random values, never committed."""
    password = secrets.token_hex(16)
    values = {"SECRET_KEY": secrets.token_hex(32), "API_KEY": secrets.token_hex(32)}
    if overlay == "external-redis":
        values["REDIS_URL"] = f"redis://:{password}@redis.example.internal:6379/0"
    else:
        values["REDIS_PASSWORD"] = password
    return values


def kustomize(folder: Path) -> Objects:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/bootstrap.sh k8s installs it"
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True,
                            check=False, timeout=120,
                            env={**os.environ, "KUBECONFIG": os.devnull})  # never a real cluster
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


@pytest.fixture(scope="module")
def given_secrets() -> dict[str, dict[str, str]]:
    return {overlay: throwaway_secrets(overlay) for overlay in OVERLAYS}


def copy_sources(destination: Path) -> Path:
    """k8s/ and nginx/ side by side, as in the repository (k8s/base reads ../../nginx), without
    any secrets.env; returns the copy of k8s/."""
    for folder in (K8S, NGINX):
        shutil.copytree(folder, destination / folder.name,
                        ignore=shutil.ignore_patterns("secrets.env"))
    return destination / K8S.name


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, given_secrets) -> dict[str, Objects]:
    """Each overlay (and k8s/monitoring) rendered from a copy of k8s/ and nginx/ with throwaway
    secrets."""
    copy_root = copy_sources(tmp_path_factory.mktemp("sources"))
    out = {}
    for overlay, values in given_secrets.items():
        folder = copy_root / "overlays" / overlay
        (folder / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        out[overlay] = kustomize(folder)
    out["monitoring"] = kustomize(copy_root / "monitoring")
    return out


def find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    """The object of that kind whose name is `name` or a generated `name-<hash>`."""
    found = [o for o in objects if o["kind"] == kind
             and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", o["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def env_of(objects: Objects, kind: str, name: str) -> dict[str, str]:
    """A container's environment as its pod gets it: envFrom, then env with $(VAR) expanded."""
    spec = container(objects, kind, name)
    values: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            values.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            data = find(objects, "Secret", source["secretRef"]["name"])["data"]
            values.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    for item in spec.get("env", []):
        if "value" in item:
            values[item["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                          lambda m: values.get(m[1], m[0]), item["value"])
    return values


# The checks, as functions so that test_each_check_fails_on_a_broken_manifest can break them.

def check_node_probes(objects: Objects) -> None:
    node = container(objects, "Deployment", NODE)
    ports = {port["name"]: port["containerPort"] for port in node["ports"]}
    assert node["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert node["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert ports.get(node[probe]["httpGet"]["port"]) == 8000, probe


def prestop_seconds(spec: dict[str, Any]) -> int:
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


def check_node_drains_before_it_is_killed(objects: Objects) -> None:
    """SIGTERM comes after preStop; gunicorn then allows DRAIN_TIMEOUT_S + HANDOVER_SPREAD_S +
    10 s: the pod's grace period must cover both, or the kubelet kills the node in the middle of
    its drain."""
    pod = find(objects, "Deployment", NODE)["spec"]["template"]["spec"]
    sleep = prestop_seconds(pod["containers"][0])
    assert sleep >= 5, "the front doors need a few seconds to stop routing to the pod"
    env = env_of(objects, "Deployment", NODE)
    drain = {name: env[name] for name in ("DRAIN_TIMEOUT_S", "HANDOVER_SPREAD_S")}
    gunicorn = _gunicorn_settings(drain)
    assert sum(map(float, drain.values())) < gunicorn["graceful_timeout"]
    assert pod["terminationGracePeriodSeconds"] > sleep + gunicorn["graceful_timeout"]


def _gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return runpy.run_path(str(ROOT / "service" / "node" / "gunicorn_conf.py"))
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def check_pdb_and_hpa_govern_the_nodes(objects: Objects) -> None:
    deployment = find(objects, "Deployment", NODE)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    pdb = find(objects, "PodDisruptionBudget", NODE)["spec"]
    assert selects(pdb["selector"]["matchLabels"], labels)
    assert pdb.get("maxUnavailable") == 1
    hpa = find(objects, "HorizontalPodAutoscaler", NODE)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NODE}
    assert 3 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert "cpu" in deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert "replicas" not in deployment["spec"], "the HPA owns the count; apply would reset it"


def check_headless_service_finds_the_nodes(objects: Objects) -> None:
    service = find(objects, "Service", NODE)
    labels = find(objects, "Deployment", NODE)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None"
    assert selects(service["spec"]["selector"], labels)
    assert not service["spec"].get("publishNotReadyAddresses"), "draining nodes must leave DNS"
    ports = {port["name"]: port["containerPort"]
             for port in container(objects, "Deployment", NODE)["ports"]}
    (port,) = service["spec"]["ports"]
    assert ports[port["targetPort"]] == 8000
    front_door = env_of(objects, "Deployment", FRONT_DOOR)
    assert front_door["NODES_DNS_NAME"] == service["metadata"]["name"]
    assert front_door["NODES_PORT"] == str(port["port"])


def check_front_door_files(objects: Objects, root: Path = ROOT) -> None:
    """The front door's ConfigMap holds exactly FRONT_DOOR_FILES, each byte for byte as the file
    under `root` (the repository, or the copy it was rendered from)."""
    config = find(objects, "ConfigMap", FRONT_DOOR)
    assert "binaryData" not in config
    assert set(config["data"]) == set(FRONT_DOOR_FILES)
    for key, source in FRONT_DOOR_FILES.items():
        assert config["data"][key].encode() == (root / source).read_bytes(), \
            f"the ConfigMap's {key} is not {source}"


def check_front_door(objects: Objects) -> None:
    """The front door mounts its ConfigMap's template and follow-nodes.sh where the nginx image
    reads them, and renders every variable the template uses."""
    data = find(objects, "ConfigMap", FRONT_DOOR)["data"]
    spec = find(objects, "Deployment", FRONT_DOOR)["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    template = mounts["/etc/nginx/templates/default.conf.template"]
    assert template["subPath"] == "default.conf.template"
    assert mounts["/docker-entrypoint.d/40-follow-nodes.sh"]["subPath"] == "follow-nodes.sh"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    config = volumes[mounts["/docker-entrypoint.d/40-follow-nodes.sh"]["name"]]["configMap"]
    assert config["defaultMode"] & 0o111 == 0o111, "the entrypoint runs executable scripts only"
    env = env_of(objects, "Deployment", FRONT_DOOR)
    used = set(re.findall(r"\$\{([A-Z_]+)\}", data["default.conf.template"]))
    rendered = set(re.fullmatch(r"\^\((.*)\)\$", env["NGINX_ENVSUBST_FILTER"])[1].split("|"))
    assert used == rendered, "the template's variables are exactly those envsubst renders"
    assert used <= set(env)
    ports = {port["name"]: str(port["containerPort"]) for port in pod["containers"][0]["ports"]}
    assert (env["LISTEN_PORT"], env["STATUS_PORT"]) == (ports["http"], ports["status"])
    (public,) = find(objects, "Service", FRONT_DOOR)["spec"]["ports"]
    assert ports[public["targetPort"]] == env["LISTEN_PORT"], "the status port stays private"
    # follow-nodes.sh writes the nodes' addresses into the file the upstream includes
    nodes_file = re.fullmatch(r"include (/\S+);", env["UPSTREAM_SERVERS"])[1]
    assert "emptyDir" in volumes[mounts[str(Path(nodes_file).parent)]["name"]]


def check_no_copy_of_nginx_files(k8s: Path, nginx: Path) -> None:
    """No file under k8s/ has the name or the bytes of a file the front door takes from nginx/:
    there is one of each, and kustomize reads nginx/'s."""
    names = {Path(source).name for source in FRONT_DOOR_FILES.values()
             if source.startswith("nginx/")}
    digests = {hashlib.sha256((nginx / name).read_bytes()).hexdigest(): name for name in names}
    for path in sorted(k8s.rglob("*")):
        if path.is_file():
            assert path.name not in names, f"{path}: a copy of nginx/{path.name}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest not in digests, f"{path}: a copy of nginx/{digests.get(digest)}"


def check_no_secret_is_committed(root: Path) -> None:
    for path in root.rglob("*"):
        if path.suffix in (".yaml", ".yml"):
            for item in yaml.safe_load_all(path.read_text()):
                if item and item.get("kind") == "Secret":
                    raise AssertionError(f"{path}: a Secret in the repository")
        if path.name.endswith(".env.example"):
            for line in path.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    assert "change-me" in line.partition("=")[2], f"{path}: {line}"
        assert path.name != "secrets.env" or _git_ignored(path), f"{path} is not git-ignored"


def _git_ignored(path: Path) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT,
                          check=False).returncode == 0


NODE_CHECKS = (check_node_probes, check_node_drains_before_it_is_killed,
               check_pdb_and_hpa_govern_the_nodes, check_headless_service_finds_the_nodes,
               check_front_door_files, check_front_door)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", NODE_CHECKS, ids=lambda check: check.__name__)
def test_the_nodes_and_the_front_door(rendered, overlay, check):
    check(rendered[overlay])


def _set(path: str, value: Any):
    """A change to the rendered objects: `Kind/name:dotted.path` set to value (None: deleted)."""
    def change(objects: Objects) -> None:
        target, _, fields = path.partition(":")
        kind, name = target.split("/")
        item: Any = find(objects, kind, name)
        *parents, last = fields.split(".")
        for part in parents:
            item = item[int(part)] if part.isdigit() else item[part]
        if value is None:
            del item[last]
        else:
            item[last] = value
    return change


def _change_data(key: str, change):
    def breakage(objects: Objects) -> None:
        data = find(objects, "ConfigMap", FRONT_DOOR)["data"]
        data[key] = change(data.get(key, ""))
    return breakage


NODE_POD = "Deployment/rooms-node:spec.template.spec"
FRONT_DOOR_POD = "Deployment/rooms-front-door:spec.template.spec"
BREAKAGES = [
    (check_node_probes, _set(f"{NODE_POD}.containers.0.readinessProbe.httpGet.path", "/healthz")),
    (check_node_probes, _set(f"{NODE_POD}.containers.0.readinessProbe.httpGet.port", 8080)),
    (check_node_drains_before_it_is_killed, _set(f"{NODE_POD}.containers.0.lifecycle", None)),
    (check_node_drains_before_it_is_killed, _set(f"{NODE_POD}.terminationGracePeriodSeconds", 20)),
    (check_node_drains_before_it_is_killed,
     _set("ConfigMap/rooms-node-settings:data.DRAIN_TIMEOUT_S", "30")),
    (check_pdb_and_hpa_govern_the_nodes,
     _set("PodDisruptionBudget/rooms-node:spec.selector.matchLabels", {"app": "other"})),
    (check_pdb_and_hpa_govern_the_nodes,
     _set("HorizontalPodAutoscaler/rooms-node:spec.scaleTargetRef.name", "rooms")),
    (check_pdb_and_hpa_govern_the_nodes, _set("Deployment/rooms-node:spec.replicas", 3)),
    (check_headless_service_finds_the_nodes, _set("Service/rooms-node:spec.clusterIP", "10.0.0.9")),
    (check_headless_service_finds_the_nodes,
     _set("Service/rooms-node:spec.selector", {"app.kubernetes.io/name": "rooms-nodes"})),
    (check_front_door_files,
     _change_data("default.conf.template", lambda text: text.replace("consistent", "", 1))),
    (check_front_door_files, _change_data("follow-nodes.sh", lambda text: text + "\n")),
    (check_front_door_files,
     _change_data("follow-nodes.sh", lambda text: text.replace("\n", "\r\n"))),
    (check_front_door_files, _change_data("extra.conf", lambda text: "server {}\n")),
    (check_front_door, _set("Deployment/rooms-front-door:spec.replicas", 1)),
    (check_front_door, _set(f"{FRONT_DOOR_POD}.volumes.0.configMap.defaultMode", 0o444)),
    (check_front_door, _set(f"{FRONT_DOOR_POD}.containers.0.env.0.value", "8000")),
]


@pytest.mark.parametrize("check, breakage", BREAKAGES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(BREAKAGES)])
def test_each_check_fails_on_a_broken_manifest(rendered, check, breakage):
    objects = copy.deepcopy(rendered["single-redis"])
    breakage(objects)
    with pytest.raises((AssertionError, KeyError)):
        check(objects)


def render_single_redis(k8s: Path) -> Objects:
    overlay = k8s / "overlays" / "single-redis"
    values = throwaway_secrets("single-redis")
    (overlay / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return kustomize(overlay)


def test_the_front_door_takes_nginx_files_as_they_are(tmp_path):
    """What is in nginx/ when kustomize runs is what the ConfigMap carries: a change there (a line
    added to each file) shows up in the render, and the render no longer matches the repository."""
    k8s = copy_sources(tmp_path)
    for source in FRONT_DOOR_FILES.values():
        if source.startswith("nginx/"):
            with open(tmp_path / source, "a") as file:
                file.write(f"# changed in {tmp_path.name}\n")
    objects = render_single_redis(k8s)
    check_front_door_files(objects, root=tmp_path)
    with pytest.raises(AssertionError, match="is not nginx/"):
        check_front_door_files(objects)


def test_no_copy_of_nginx_files_under_k8s(tmp_path):
    check_no_copy_of_nginx_files(K8S, NGINX)
    k8s = copy_sources(tmp_path)
    shutil.copy(NGINX / "follow-nodes.sh", k8s / "base" / "front-door" / "follow.sh")
    with pytest.raises(AssertionError, match=re.escape("follow.sh: a copy of nginx/follow-nodes")):
        check_no_copy_of_nginx_files(k8s, NGINX)


def test_a_copy_under_k8s_fails(tmp_path):
    """The layout this replaced, put back in a copy: k8s/base generating the ConfigMap from its own
    copies of nginx/'s files. An exact copy renders the same ConfigMap but fails the check for
    copies; a copy that differs (a change nginx/ has and it lacks) fails the ConfigMap's check."""
    k8s = copy_sources(tmp_path)
    front_door = k8s / "base" / "front-door"
    for name in ("cluster.conf.template", "follow-nodes.sh"):
        shutil.copy(NGINX / name, front_door / name)
    kustomization = yaml.safe_load((k8s / "base" / "kustomization.yaml").read_text())
    del kustomization["bases"]
    (generator,) = [g for g in kustomization["configMapGenerator"] if g["name"] == FRONT_DOOR]
    del generator["behavior"]
    generator["files"] = ["front-door/nginx.conf",
                          "default.conf.template=front-door/cluster.conf.template",
                          "front-door/follow-nodes.sh"]
    (k8s / "base" / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    check_front_door_files(render_single_redis(k8s))
    with pytest.raises(AssertionError, match=re.escape("a copy of nginx/cluster.conf.template")):
        check_no_copy_of_nginx_files(k8s, NGINX)
    template = front_door / "cluster.conf.template"
    behind = template.read_text().replace("hash $sticky_key consistent;", "hash $sticky_key;")
    assert behind != template.read_text()
    template.write_text(behind)
    with pytest.raises(AssertionError, match=re.escape("default.conf.template is not nginx/")):
        check_front_door_files(render_single_redis(k8s))


def test_no_secret_is_committed():
    check_no_secret_is_committed(K8S)
    for overlay in OVERLAYS:
        assert _git_ignored(K8S / "overlays" / overlay / "secrets.env"), overlay


def test_the_secret_check_fails_on_a_committed_secret(tmp_path):
    broken = tmp_path / "k8s"
    shutil.copytree(K8S, broken, ignore=shutil.ignore_patterns("secrets.env"))
    (broken / "base" / "secret.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata:\n"
                                                 "  name: rooms-secrets\nstringData: {A: b}\n")
    with pytest.raises(AssertionError, match="a Secret in the repository"):
        check_no_secret_is_committed(broken)
    (broken / "base" / "secret.yaml").unlink()
    example = broken / "overlays" / "single-redis" / "secrets.env.example"
    example.write_text(example.read_text().replace("change-me-redis-password", "hunter2hunter2"))
    with pytest.raises(AssertionError, match="hunter2"):
        check_no_secret_is_committed(broken)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_secret_holds_only_what_the_user_gave(rendered, given_secrets, overlay):
    """The generated Secret is made of secrets.env alone, and the example names the same keys."""
    secret = find(rendered[overlay], "Secret", "rooms-secrets")
    given = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert given == given_secrets[overlay]
    example = (K8S / "overlays" / overlay / "secrets.env.example").read_text()
    assert set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE)) == set(given)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_node_accepts_its_settings(rendered, overlay):
    """The environment a node pod gets passes the node's own checks, in production mode."""
    env = env_of(rendered[overlay], "Deployment", NODE)
    pod_name = f"{NODE}-{'b' * 10}-{'x' * 5}"  # a Deployment's longest pod name
    assert NODE_NAME_PATTERN.fullmatch(pod_name)
    env["NODE_NAME"] = pod_name
    settings = load_settings(environ=env, dotenv=Path(os.devnull))
    assert settings.production and settings.node_name == pod_name
    assert settings.redis_target.cluster == (overlay == "redis-cluster")
    if overlay == "redis-cluster":
        assert settings.ack_replicas == 1
        statefulset = find(rendered[overlay], "StatefulSet", "rooms-redis-cluster")["spec"]
        assert {host for host, _ in settings.redis_cluster_nodes} == {
            f"rooms-redis-cluster-{i}.{statefulset['serviceName']}"
            for i in range(statefulset["replicas"])}
    if overlay == "single-redis":
        assert settings.redis_url.endswith("@rooms-redis:6379/0")
        find(rendered[overlay], "Service", "rooms-redis")


def test_the_redis_cluster_is_three_masters_with_a_replica_each(rendered):
    objects = rendered["redis-cluster"]
    assert find(objects, "StatefulSet", "rooms-redis-cluster")["spec"]["replicas"] == 6
    assert find(objects, "Service", "rooms-redis-cluster")["spec"]["clusterIP"] == "None"
    job = " ".join(container(objects, "Job", "rooms-redis-cluster-init")["args"])
    assert "--cluster-replicas 1" in job and "for i in 0 1 2 3 4 5;" in job


def shell_scripts(objects: Objects) -> list[str]:
    """Every `sh -c` script of every container: its command, and its postStart hook."""
    scripts = []
    for item in objects:
        for each in item.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            hook = each.get("lifecycle", {}).get("postStart", {}).get("exec", {}).get("command")
            for command in (each.get("command", []) + each.get("args", []), hook or []):
                if command[:2] == ["sh", "-c"]:
                    scripts.append(command[2])
    return scripts


def test_the_redis_cluster_scripts_parse_and_read_redis_right(rendered):
    """The scripts parse; their test of `cluster_known_nodes` takes Redis's CRLF lines as numbers
    (a fresh server knows 1 node: it must be joined; one of a cluster knows more)."""
    scripts = shell_scripts(rendered["redis-cluster"])
    assert len(scripts) == 3
    for script in scripts:
        result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stderr
    programs = {match for script in scripts for match in re.findall(r"awk -F: '([^']+)'", script)}
    assert len(programs) == 1
    for info, in_a_cluster in (("cluster_known_nodes:1\r\n", False),
                               ("cluster_known_nodes:6\r\n", True),
                               ("cluster_known_nodes:12\r\n", True), ("", False)):
        result = subprocess.run(["awk", "-F:", *programs], input=f"cluster_state:ok\r\n{info}",
                                text=True, check=False)
        assert (result.returncode == 0) == in_a_cluster, info


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(rendered, overlay, version):
    for item in rendered[overlay]:
        kubernetes_validate.validate(item, version, strict=True)


def test_strict_validation_refuses_an_unknown_field(rendered):
    deployment = copy.deepcopy(find(rendered["single-redis"], "Deployment", NODE))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def crd_validator(kind: str) -> jsonschema.Validator:
    """The CRD's schema, strict: where it lists properties, no others are allowed (the API server
    prunes unknown fields silently, which would hide a typo)."""
    crd = next(item for item in yaml.safe_load_all(
        (K8S / "schemas" / "monitoring.coreos.com_servicemonitors.yaml").read_text()) if item)
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]

    def strict(schema: Any) -> Any:
        if isinstance(schema, list):
            return [strict(item) for item in schema]
        if not isinstance(schema, dict):
            return schema
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema

    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft4Validator(schema)


def test_the_servicemonitor_validates_against_its_crd(rendered):
    (monitor,) = rendered["monitoring"]
    crd_validator("ServiceMonitor").validate(monitor)
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        crd_validator("ServiceMonitor").validate(broken)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_servicemonitor_scrapes_the_node_pods(rendered, overlay):
    (monitor,) = rendered["monitoring"]
    service = find(rendered[overlay], "Service", NODE)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_unprivileged(rendered, overlay):
    for item in rendered[overlay]:
        if "template" not in item.get("spec", {}):
            continue
        pod = item["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, item["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, item["metadata"]["name"]
        for each in pod["containers"]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in each["resources"]["limits"]


@pytest.mark.parametrize("broken", [False, True], ids=["as-is", "broken"])
def test_the_front_door_configuration_loads_in_nginx(rendered, tmp_path, broken):
    """nginx.conf and the rendered template, as the front door's pod has them, pass `nginx -t`
    (Debian's nginx; the image runs 1.27), with the paths moved into a temporary folder."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: scripts/bootstrap.sh cluster installs it"
    objects = rendered["single-redis"]
    data = find(objects, "ConfigMap", FRONT_DOOR)["data"]
    env = env_of(objects, "Deployment", FRONT_DOOR)
    conf_d, nodes = tmp_path / "conf.d", tmp_path / "nodes"
    conf_d.mkdir()
    nodes.mkdir()
    (nodes / "upstream.conf").write_text("server 10.0.0.1:8000 max_fails=1 fail_timeout=5s;\n")
    server = re.sub(r"\$\{([A-Z_]+)\}", lambda m: env[m[1]], data["default.conf.template"])
    if broken:
        server = server.replace("hash $sticky_key consistent;", "hash $sticky_key consistently;")
    (conf_d / "default.conf").write_text(server.replace("/etc/nginx/nodes", str(nodes)))
    main = data["nginx.conf"].replace("/tmp/", f"{tmp_path}/")
    (tmp_path / "nginx.conf").write_text(main.replace("/etc/nginx/conf.d", str(conf_d)))
    result = subprocess.run([nginx, "-T", "-e", "stderr", "-p", str(tmp_path), "-c",
                             str(tmp_path / "nginx.conf")], capture_output=True, text=True,
                            check=False, timeout=60)
    assert (result.returncode != 0) == broken, result.stderr
    if not broken:  # the server and the nodes' file were included, not an empty glob
        assert "server 10.0.0.1:8000" in result.stdout and "upstream rooms_nodes" in result.stdout
        # the lean front door of nginx/local.conf.template: 1k relay buffers for Socket.IO,
        # every location's headers, reuseport, slots for 15,000 WebSockets (test_front_door_config)
        check_lean_server(server)
        assert check_workers(main)["workers"] == 2


def test_bootstrap_installs_kubectl_from_debian(tmp_path):
    """`scripts/bootstrap.sh k8s` (make test, make k8s-validate) names kubectl's Debian package;
    its kubectl 1.20 embeds kustomize v2, which renders the overlays the same as kubectl 1.32."""
    for tool in ("dirname", "id"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "bootstrap.sh"), "k8s"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60,
                            env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "kubectl (Debian package kubernetes-client)" in result.stderr
