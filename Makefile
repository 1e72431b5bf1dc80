# rates: every command of the project. `make` (or `make help`) lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

COMPOSE ?= docker compose
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: up-ha down-ha reset-ha ps-ha switchover failover-drill deploy bench-ha
.PHONY: monitor graph
.PHONY: help bootstrap env build up down reset logs ps psql lint test bench bench-up lock dump venv clean docs \
        ingest bench-ingest bench-scale audit bench-hostile

help: ## list the commands
	@echo "rates: make COMMAND"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## prepare this machine (root): Docker engine, Compose v2, local base images if no registry
	scripts/bootstrap

env: ## create .env from .env.example with a random password and token, or complete an existing one
	scripts/init-env

build: ## build the API image and the migrate image (the API's code plus psql)
	@scripts/stage-build-ca >/dev/null
	$(COMPOSE) build api migrate
	@echo "built $$($(COMPOSE) config --images | sort -u | tr '\n' ' ')"

up: ## build, start db + migrate + api, wait until healthy, print the URL
	scripts/up

down: ## stop and remove the containers, keep the database volume
	$(COMPOSE) down --remove-orphans
	@echo "stopped; the database volume is kept (make reset wipes it)"

reset: ## wipe the database volume, then start again (the dump is loaded afresh)
	$(COMPOSE) down --volumes --remove-orphans
	@echo "removed containers, network and the database volume"
	scripts/up

logs: ## follow the logs of every service
	$(COMPOSE) logs --follow --tail=100

ps: ## list the containers of the stack and their health
	$(COMPOSE) ps --all

psql: ## open psql on the rates database inside the db container
	$(COMPOSE) exec db sh -c 'psql -U "$$POSTGRES_USER" rates'

up-ha: ## start the highly available stack (etcd x3, Patroni x HA_PG_NODES, HAProxy, API replicas), print endpoints and primary
	scripts/up-ha

down-ha: ## stop and remove the HA stack's containers, keep its volumes
	scripts/ha-down
	@echo "HA stack stopped; its volumes are kept (make reset-ha wipes them)"

reset-ha: ## wipe the HA stack's volumes (etcd, every PostgreSQL node), then start it again
	scripts/ha-down --volumes
	@echo "removed the HA stack's containers, network and volumes"
	scripts/up-ha

ps-ha: ## the HA stack's containers, and the Patroni cluster (leader, synchronous standbys, lag)
	scripts/ha-compose ps --all
	@scripts/ha-compose exec -T "$$(scripts/ha-leader)" patronictl -c /etc/patroni/patroni.yml list

switchover: ## planned change of primary in the HA stack (to the synchronous standby Patroni picks)
	scripts/switchover

failover-drill: venv ## kill the HA stack's primary under load; print write gap, read errors, rejoin time
	$(PY) scripts/failover_drill.py

deploy: ## roll the HA stack's API replicas to a freshly built image, one container at a time (a new one in rotation before an old one drains), losing nothing
	scripts/deploy

bench-ha: venv ## HA figures: failovers (5 kills), switchover gap, read throughput with 1 and 2 API replicas, reads during upload bursts, commit latency with 3 and 5 nodes
	$(PY) scripts/bench_ha.py

monitor: ## add Prometheus, Alertmanager, exporters (Grafana with GRAFANA_IMAGE) to the running stack(s), print URLs
	scripts/monitor

graph: ## render Prometheus's graph page of the running monitoring to PNG (docs/img; headless chromium in a container)
	scripts/render-graph

lint: venv ## hadolint every Dockerfile, validate the compose files, ruff the Python code
	$(VENV)/bin/hadolint $$(git ls-files '*Dockerfile*')
	$(COMPOSE) config --quiet
	scripts/ha-compose config --quiet
	HA_COMPOSE_MONITORING=1 HA_PG_NODES=5 scripts/ha-compose config --quiet
	$(COMPOSE) -f compose.yaml -f compose.monitoring.yaml config --quiet
	$(VENV)/bin/ruff check rates tests scripts tools
	@echo "lint: Dockerfiles, the compose files and the Python code are clean"

test: venv ## run the whole test suite (unit, integration, environment) against real containers
	$(VENV)/bin/pytest

audit: venv ## pip-audit the locked dependencies; says so in one line (exit 0) when no advisory source answers
	$(PY) scripts/audit.py $(AUDIT_FLAGS)

bench: ## read-path benchmark: API (wrk) against the database's own limit (pgbench), same queries
	$(PY) scripts/bench_api.py

ingest: ## load a batch file into the running stack's API container: make ingest FILE=prices.csv[.gz] KEY=name
	@if [ -z "$(FILE)" ] || [ -z "$(KEY)" ]; then echo "usage: make ingest FILE=path/to/prices.csv KEY=unique-batch-name" >&2; exit 2; fi
	@if [ ! -f "$(FILE)" ]; then echo "ingest: no such file: $(FILE)" >&2; exit 2; fi
	$(COMPOSE) exec -T api python -m rates ingest - --key "$(KEY)" --filename "$(notdir $(FILE))" < "$(FILE)"

bench-ingest: venv ## batch ingestion benchmark (50k and 1M rows): COPY limit, naive inserts, POST /batches
	$(PY) scripts/bench_ingest.py

bench-scale: venv ## ingestion at scale (30 M rows): load rate, WAL per row, the attach path, its cost to reads
	$(PY) scripts/bench_scale.py

bench-hostile: venv ## gzip ratios of real batches; time to refuse 1 GiB gzip bombs, before and now (DB_PORT=...)
	$(PY) scripts/bench_hostile.py

bench-up: ## measure `make up` time (first build and cached) and the API and migrate image sizes
	$(PY) scripts/bench_up.py

docs: ## render the diagrams of docs/diagrams (*.dot, *.mmd) to SVG with scripts/render-docs
	scripts/render-docs

lock: ## re-resolve the pinned dependencies (rates/requirements.txt, tests/requirements.txt)
	uv pip compile rates/requirements.in --generate-hashes --python-version 3.11 \
	  --custom-compile-command "make lock" -o rates/requirements.txt
	uv pip compile tests/requirements.in --generate-hashes --python-version 3.11 \
	  --custom-compile-command "make lock" -o tests/requirements.txt

dump: ## regenerate db/rates.sql from the seeded generator
	$(PYTHON) tools/dumpgen.py --output db/rates.sql
	@echo "wrote db/rates.sql"

venv: $(VENV)/.installed ## create .venv with the locked test and lint tools

# pip's output goes to $(VENV)/pip.log, shown only when pip fails: extra package indexes in a
# machine's pip configuration make it print screens of warnings that are not about this project.
$(VENV)/.installed: tests/requirements.txt
	@$(PYTHON) -m venv $(VENV)
	@if ! $(VENV)/bin/pip install --disable-pip-version-check --require-hashes -r tests/requirements.txt \
	    >$(VENV)/pip.log 2>&1; then cat $(VENV)/pip.log >&2; echo "venv: pip install failed (log above: $(VENV)/pip.log)" >&2; exit 1; fi
	@touch $@
	@echo "venv: $(VENV) has the locked test dependencies (pip's log: $(VENV)/pip.log)"

clean: ## remove the virtualenv and build leftovers (not containers: see down/reset)
	rm -rf $(VENV) .build .pytest_cache .ruff_cache
	@echo "removed $(VENV), .build and caches"
