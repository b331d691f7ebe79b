"""The front door's nginx configuration as the local launcher renders it (make run, the tests): it
loads in nginx (`nginx -t`), and it is the lean front door of issue 25. Socket.IO's location relays
WebSockets through 1k buffers while pages and the API keep nginx's default; every proxying location
sends the nodes the same headers (nginx inherits `proxy_set_header` lines into a location only
when it sets none of its own); `reuseport` spreads clients over the workers; the workers' slots
and open files hold 15,000 WebSockets (two connections each) under the 20,000 open-file hard limit.
test_kubernetes.py runs the same checks on the Kubernetes front door's files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from cluster import Cluster, render  # noqa: E402

WEBSOCKETS = 15_000  # the target through one front door
OPEN_FILE_HARD_LIMIT = 20_000  # here, and what the workers' worker_rlimit_nofile may ask
# what a node relies on from every request the front door passes on
NODE_HEADERS = {"upgrade": "$http_upgrade", "connection": "$connection_upgrade",
                "host": "$http_host", "x-forwarded-for": "$proxy_add_x_forwarded_for",
                "x-forwarded-proto": "$scheme", "x-rooms-front-door": "1"}


# ---- a small reader of nginx's configuration syntax ------------------------------------------

Block = list[tuple[str, list[str], "Block | None"]]  # (directive, arguments, block or None)

TOKEN = re.compile(r"""\s+|\#[^\n]*              # space, comments
                       |'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"  # quoted
                       |([{};])|([^\s{};'"\#]+)""", re.VERBOSE)


def parse(text: str) -> Block:
    """nginx's configuration as nested (directive, arguments, block) entries."""
    tokens: list[tuple[str, bool]] = []  # (text, is punctuation)
    for match in TOKEN.finditer(text):
        single, double, punct, word = match.groups()
        if punct:
            tokens.append((punct, True))
        elif word is not None or single is not None or double is not None:
            tokens.append((word if word is not None else (single or double or ""), False))
    position = 0

    def block() -> Block:
        nonlocal position
        entries: Block = []
        words: list[str] = []
        while position < len(tokens):
            token, punct = tokens[position]
            position += 1
            if not punct:
                words.append(token)
            elif token == ";":
                entries.append((words[0], words[1:], None))
                words = []
            elif token == "{":
                entries.append((words[0], words[1:], block()))
                words = []
            else:  # "}"
                return entries
        assert not words, f"unterminated directive {words}"
        return entries

    return block()


def directives(entries: Block, name: str) -> list[list[str]]:
    return [args for directive, args, _ in entries if directive == name]


def one(entries: Block, name: str) -> list[str] | None:
    found = directives(entries, name)
    assert len(found) <= 1, f"{name} is set {len(found)} times"
    return found[0] if found else None


def blocks(entries: Block, name: str) -> list[tuple[list[str], Block]]:
    return [(args, inner) for directive, args, inner in entries
            if directive == name and inner is not None]


# ---- the checks, shared with test_kubernetes.py -------------------------------------------------

def front_door_server(server_conf: str) -> Block:
    """The server block that proxies to the nodes (not the status server)."""
    servers = [inner for _, inner in blocks(parse(server_conf), "server")
               if any(one(location, "proxy_pass") for _, location in blocks(inner, "location"))]
    assert len(servers) == 1, f"{len(servers)} servers proxy to the nodes"
    return servers[0]


def effective(server: Block, location: Block, name: str) -> list[list[str]]:
    """A list directive as nginx applies it in `location`: its own lines, else the server's."""
    return directives(location, name) or directives(server, name)


def check_lean_server(server_conf: str) -> None:
    server = front_door_server(server_conf)
    [listen] = directives(server, "listen")
    assert "reuseport" in listen[1:], f"listen {listen}: no reuseport"
    assert one(server, "proxy_buffer_size") is None, "pages and the API keep nginx's default"
    locations = {tuple(args): inner for args, inner in blocks(server, "location")}
    proxying = {args: inner for args, inner in locations.items() if one(inner, "proxy_pass")}
    assert set(proxying) == {("/socket.io/",), ("/",)}, sorted(proxying)
    assert one(proxying[("/socket.io/",)], "proxy_buffer_size") == ["1k"]
    assert one(proxying[("/",)], "proxy_buffer_size") is None
    for args, location in proxying.items():
        headers = {name.lower(): value
                   for name, value in effective(server, location, "proxy_set_header")}
        assert headers == NODE_HEADERS, f"location {args[0]}: the nodes get {headers}"
        for name, value in (("proxy_http_version", ["1.1"]), ("proxy_buffering", ["off"]),
                            ("proxy_request_buffering", ["off"])):
            assert (one(location, name) or one(server, name)) == value, (args, name)
        assert one(location, "limit_req") and one(location, "limit_conn"), args


def check_workers(main_conf: str) -> dict[str, int]:
    """Slots for 15,000 proxied WebSockets (two connections each) with room for an uneven
    split, each worker's slots within its open files, those within the hard limit."""
    main = parse(main_conf)
    workers = int(one(main, "worker_processes")[0])
    nofile = int(one(main, "worker_rlimit_nofile")[0])
    [(_, events)] = blocks(main, "events")
    slots = int(one(events, "worker_connections")[0])
    assert workers >= 2  # reuseport has something to spread over
    assert slots * workers >= 2 * WEBSOCKETS * 1.2, (workers, slots)
    assert slots <= nofile - 100 <= OPEN_FILE_HARD_LIMIT, (slots, nofile)  # logs, listeners
    return {"workers": workers, "slots": slots, "nofile": nofile}


def nginx_binary() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: scripts/bootstrap.sh cluster installs it"
    return nginx


# ---- the local launcher's files ----------------------------------------------------------------

def render_local(folder: Path) -> tuple[Path, Path]:
    """The two files as scripts/cluster.py renders them for front door 1."""
    cluster = Cluster(run_dir=folder)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    upstreams = "\n".join(f"    server 127.0.0.1:{cluster.node_port(i)} max_fails=1 "
                          "fail_timeout=5s;" for i in cluster.indexes())
    server, main = folder / "cluster.conf", folder / "nginx.conf"
    render(ROOT / "nginx" / "cluster.conf.template", server,
           {"LISTEN_PORT": "127.0.0.1:8080", "STATUS_PORT": "127.0.0.1:9080",
            "UPSTREAM_SERVERS": upstreams, **cluster.front_door_limits()})
    render(ROOT / "nginx" / "local.conf.template", main,
           {"RUN_DIR": str(folder), "LOG_DIR": str(folder), "NAME": "nginx"})
    return server, main


def nginx_test(folder: Path, main: Path) -> subprocess.CompletedProcess:
    return subprocess.run([nginx_binary(), "-t", "-q", "-e", "stderr", "-p", str(folder), "-c",
                           str(main)], capture_output=True, text=True, check=False, timeout=60)


def test_the_local_front_door_loads_in_nginx(tmp_path):
    server, main = render_local(tmp_path)
    result = nginx_test(tmp_path, main)
    assert result.returncode == 0, result.stderr
    assert "${" not in server.read_text() + main.read_text()  # every variable rendered


def test_the_local_front_door_is_lean(tmp_path):
    server, main = render_local(tmp_path)
    check_lean_server(server.read_text())
    assert check_workers(main.read_text())["workers"] == 2


BROKEN: dict[str, tuple[str, str, str, str]] = {
    # (file, text, changed to, what the check says)
    "a header set in one location only": (
        "cluster.conf", "proxy_buffer_size 1k;",
        "proxy_buffer_size 1k;\n        proxy_set_header X-Extra 1;",
        "location /socket.io/: the nodes get"),
    "the socket location at nginx's default": ("cluster.conf", "proxy_buffer_size 1k;", "",
                                               r"None == \['1k'\]"),
    "the buffer at server level": (
        "cluster.conf", "server_tokens off;", "server_tokens off;\n    proxy_buffer_size 1k;",
        "pages and the API keep nginx's default"),
    "no reuseport": ("cluster.conf", " reuseport;", ";", "no reuseport"),
    "slots for fewer WebSockets": ("nginx.conf", "worker_connections 19000;",
                                   "worker_connections 12000;", r"\(2, 12000\)"),
    "more slots than open files": ("nginx.conf", "worker_connections 19000;",
                                   "worker_connections 19950;", r"\(19950, 20000\)"),
}


@pytest.mark.parametrize("breakage", list(BROKEN))
def test_each_check_fails_on_a_front_door_broken_on_purpose(tmp_path, breakage):
    server, main = render_local(tmp_path)
    name, old, new, message = BROKEN[breakage]
    path = server if name == "cluster.conf" else main
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(AssertionError, match=message):
        check_lean_server(server.read_text())
        check_workers(main.read_text())


def test_the_reader_takes_nginx_syntax():
    parsed = parse("a 1 '2 3'; # note {\nb { c \"x;y\"; d { } }\n")
    assert parsed == [("a", ["1", "2 3"], None), ("b", [], [("c", ["x;y"], None), ("d", [], [])])]
    assert blocks(parsed, "b")[0][0] == [] and directives(parsed, "a") == [["1", "2 3"]]

