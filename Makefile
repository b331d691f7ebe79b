# The one interface for people and CI. `make run` starts the local cluster; `make test` tests it.
# Each target first installs what it needs and is missing (scripts/bootstrap.sh, by part); when
# nothing is missing that is a few file checks, and no apt.
NODES ?= 3
FRONT_DOORS ?= 1
REDIS ?= single
PORT ?= 8080
STATUS_PORT ?=
REDIS_PORT ?=
NODE_BASE_PORT ?= 8081
PYTEST_ARGS ?=
# tests on a Redis Cluster as well as on one Redis: those marked redis_cluster, or all
REDIS_CLUSTER_TESTS ?= marked
export REDIS_CLUSTER_TESTS
VENV := .venv/bin
SETUP := scripts/bootstrap.sh

SCENARIO ?= chat
USERS ?= 100
SPAWN_RATE ?= 50
DURATION ?= 45
HOST ?= http://127.0.0.1:8080
export SCENARIO USERS SPAWN_RATE DURATION HOST

# make capacity's idle connections through the front door (loadtests/idle_capacity.py): how many,
# this service and/or the Node reference, the Socket.IO location's relay buffers (1k, default...),
# the quiet window for the pings' CPU, the reconnect storm's size and its bound in seconds
MEMORY_CONNECTIONS ?= 3000,15000
MEMORY_SYSTEMS ?= rooms,node-reference
PROXY_BUFFER_SIZES ?= 1k
IDLE_WINDOW_S ?= 25
STORM_CONNECTIONS ?= 3000
STORM_BOUND_S ?= 30

.PHONY: help setup run test test-unit test-integration test-browser test-faults compose-test loadtest run-example example \
	loadtest-capacity loadtest-ui bench capacity profile soak lint typecheck lock clean

help:
	@echo "make run        start redis, $(NODES) nodes and nginx on http://127.0.0.1:$(PORT) (NODES=N, REDIS=cluster, FRONT_DOORS=2)"
	@echo "                ports: front door PORT=$(PORT) (door k: +100 each), nginx status STATUS_PORT (PORT + 1000),"
	@echo "                redis REDIS_PORT (8079; a Redis Cluster 8070-8075), nodes from NODE_BASE_PORT=$(NODE_BASE_PORT)"
	@echo "make test       lint and the whole test suite (starts its own cluster)"
	@echo "                REDIS_CLUSTER_TESTS=all: every cluster test on a Redis Cluster too (default: those"
	@echo "                marked redis_cluster, what differs there; the rest on one Redis)"
	@echo "make test-unit  unit tests only"
	@echo "make k8s-validate  render the Kubernetes manifests (k8s/) and check them, no cluster needed"
	@echo "make test-faults  outages, stops, cut subscriptions, bad input and attacks against the cluster"
	@echo "make test-browser  the pages in Debian's chromium (Playwright), screenshots in test-results/browser"
	@echo "make compose-test  bring docker-compose.yml up with podman, scale it 3 -> 5 -> 3 under traffic,"
	@echo "                check Prometheus scrapes every node, bring it down"
	@echo "make loadtest   locust, headless, all cores (SCENARIO=chat|fanout USERS SPAWN_RATE DURATION HOST)"
	@echo "                DURATION=$(DURATION): seconds, or locust's forms 30s, 2m, 1h30m (loadtest, bench, profile...)"
	@echo "make loadtest-capacity  users one locust process holds before it is the bottleneck"
	@echo "make loadtest-ui  locust's web UI on http://127.0.0.1:8089 against HOST"
	@echo "make bench      this service (1-3 nodes, eventlet) against Node Socket.IO and naive Flask-SocketIO"
	@echo "                PARTS=compare,scale,drops,app (default all); drops: network drops every DROPS_UP_S=3 s for"
	@echo "                DROPS_DOWN_S=2 s, delivered % against Socket.IO's connection state recovery;"
	@echo "                app: chat as it is, with a send hook and with webhooks, side by side"
	@echo "make capacity   idle connections one node holds (memory per connection), largest fan-out room under 200 ms;"
	@echo "                memory: MEMORY_CONNECTIONS=$(MEMORY_CONNECTIONS) idle in rooms through the front door beside the"
	@echo "                Node reference, their pings' CPU, a reconnect storm of STORM_CONNECTIONS within STORM_BOUND_S s"
	@echo "make profile    py-spy on every node under one load test: top costs per delivery, chart"
	@echo "make soak       chat load for SOAK_DURATION (30m) on its own 3-node cluster (ports 31001-31379):"
	@echo "                every process's memory over time, leaks flagged, p50/p99 per minute, losses"
	@echo "make run-example  make run, wired to the example app (hooks, webhooks, its JWTs)"
	@echo "make example    the example app on top, examples/team_chat, on http://127.0.0.1:8090"
	@echo "make lint       ruff, mypy over service/"
	@echo "make lock       regenerate uv.lock and the hashed pip locks from pyproject.toml"
	@echo "make setup      install everything that is missing (apt packages, .venv, npm packages)"

setup:
	@$(SETUP)

run:
	@$(SETUP) cluster venv npm
	$(VENV)/python scripts/cluster.py --nodes "$(NODES)" --front-doors "$(FRONT_DOORS)" \
		--redis "$(REDIS)" --port "$(PORT)" --status-port "$(STATUS_PORT)" \
		--redis-port "$(REDIS_PORT)" --node-base-port "$(NODE_BASE_PORT)"

# the example app on top (examples/team_chat): run-example starts the cluster wired to it, example
# the app itself on http://127.0.0.1:8090; both read run/team_chat.env (secrets made on first use)
TEAM_CHAT_ENV := run/team_chat.env

$(TEAM_CHAT_ENV):
	@$(SETUP) venv
	$(VENV)/python -m examples.team_chat.env $(TEAM_CHAT_ENV)

run-example: $(TEAM_CHAT_ENV)
	set -a && . ./$(TEAM_CHAT_ENV) && set +a && $(MAKE) run

example: $(TEAM_CHAT_ENV)
	set -a && . ./$(TEAM_CHAT_ENV) && set +a && $(VENV)/gunicorn -b 127.0.0.1:8090 --threads 8 \
		--access-logfile - 'examples.team_chat.app:create_app()'

lint:
	@$(SETUP) venv
	$(VENV)/ruff check .
	$(VENV)/mypy

typecheck:
	@$(SETUP) venv
	$(VENV)/mypy

lock:
	@$(SETUP) venv
	scripts/lock.sh

test: lint
	@$(SETUP) cluster k8s browser venv npm
	$(VENV)/pytest -q $(PYTEST_ARGS)

test-unit:
	@$(SETUP) cluster k8s venv
	$(VENV)/pytest -q tests/unit $(PYTEST_ARGS)

test-integration:
	@$(SETUP) cluster venv npm
	$(VENV)/pytest -q tests/integration $(PYTEST_ARGS)

test-faults:
	@$(SETUP) cluster venv npm
	$(VENV)/pytest -q tests/faults $(PYTEST_ARGS)

test-browser:
	@$(SETUP) cluster browser venv npm
	$(VENV)/pytest -q tests/browser $(PYTEST_ARGS)

compose-test:
	tests/compose/run.sh

loadtest:
	@$(SETUP) cluster venv npm
	$(VENV)/python loadtests/run.py

loadtest-capacity:
	@$(SETUP) cluster venv npm
	$(VENV)/python loadtests/capacity.py

bench:
	@$(SETUP) cluster venv npm
	$(VENV)/python loadtests/bench.py

capacity:
	@$(SETUP) cluster venv npm
	MEMORY_CONNECTIONS="$(MEMORY_CONNECTIONS)" MEMORY_SYSTEMS="$(MEMORY_SYSTEMS)" \
		PROXY_BUFFER_SIZES="$(PROXY_BUFFER_SIZES)" IDLE_WINDOW_S="$(IDLE_WINDOW_S)" \
		STORM_CONNECTIONS="$(STORM_CONNECTIONS)" STORM_BOUND_S="$(STORM_BOUND_S)" \
		$(VENV)/python loadtests/node_capacity.py

profile:
	@$(SETUP) cluster venv npm
	$(VENV)/python loadtests/profile.py

soak:
	@$(SETUP) cluster venv npm
	$(VENV)/python loadtests/soak.py

loadtest-ui:
	@$(SETUP) venv
	PYTHONPATH=. $(VENV)/locust -f loadtests/locustfile.py --class-picker --host $(HOST) \
		--web-host 127.0.0.1

# the Kubernetes manifests (k8s/), rendered and checked without a cluster (k8s/README.md)
.PHONY: k8s-validate
k8s-validate:
	@$(SETUP) cluster k8s venv
	$(VENV)/pytest -q tests/unit/test_kubernetes.py $(PYTEST_ARGS)

clean:
	rm -rf run test-results .pytest_cache .ruff_cache .mypy_cache
