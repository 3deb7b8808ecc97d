# Quickstart: `make demo` then `make test`. Both (re)build .venv when requirements change.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# 5,000 accounts: every report section and nightly mechanism shows (the first night's model is promoted),
# and the demo's work stays a few minutes on 2 cores (history ingest dominates and grows with the book).
DEMO_ACCOUNTS ?= 5000
DEMO_DAYS ?= 365
DEMO_END ?= 2026-11-25
DEMO_SEED ?= 7
# 43 nights, one a day (a night runs only after the one before it): the report's trends span six weeks and
# the test cells assigned on the first 13 nights have a matured 30-day outcome window (`riskline cells`). The
# first night is 6 weeks before the last, so a retrain on the last night finds all but six of its weekly
# training snapshots already built by the first night's (snapshots are counted back from the night, 7 days apart).
DEMO_NIGHTS ?= 43
DEMO_START := $(shell date -d '$(DEMO_END) - $(DEMO_DAYS) days + 1 day' +%F)
# The demo runs its last DEMO_NIGHTS nights in order: the first trains the first champion (serving from that
# date, so Airflow backfills of the demo week find one), the others reuse it (a manual run from the Airflow
# UI shows the retrain). They run through the CLI: `airflow dags test` added a minute of Airflow start-up.
DEMO_FIRST_NIGHT := $(shell date -d '$(DEMO_END) - $(DEMO_NIGHTS) days + 1 day' +%F)
DEMO_SECOND_NIGHT := $(shell date -d '$(DEMO_FIRST_NIGHT) + 1 day' +%F)
DEMO_HISTORY_END := $(shell date -d '$(DEMO_FIRST_NIGHT) - 1 day' +%F)
export RISKLINE_DATA_ROOT ?= $(CURDIR)/data

# xgboost >= 3.3 and numpy 2.5 need Python 3.12; on pyenv machines it may not be the global default.
PYTHON312 := $(shell for c in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null); do \
	$$c -c 'import sys; assert sys.version_info[:2]==(3,12)' >/dev/null 2>&1 && { echo $$c; break; }; done)

.PHONY: venv demo test freeze clean-data help airflow airflow-cluster cluster-deps backfill shell bench screenshots

help:
	@echo "make demo   - generate a demo portfolio and run the nightly job on it"
	@echo "make test   - run the test suite"
	@echo "make bench  - time one nightly run per stage on 100k and 1M generated books (minutes; not in make test)"
	@echo "make airflow - start a local Airflow (UI on 127.0.0.1:8080; RISKLINE_AIRFLOW_PORT=8081 for another port)"
	@echo "make airflow-cluster - the production shape locally: PostgreSQL, Redis, CeleryExecutor, 2 workers, lake on S3"
	@echo "make backfill FROM=2026-11-20 TO=2026-11-22 - rebuild those business dates through the running Airflow"
	@echo "make shell  - a shell with airflow and riskline on PATH, AIRFLOW_HOME and the data root set (after make airflow)"

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "error: python3.12 not found (needed by xgboost>=3.3 and numpy 2.5)"; exit 1; }
	@test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# The demo: generate a book, ingest its history, run the first night (it trains), then the others in one
# `riskline run` (one process: imports and the GX engine load once). Each step prints its wall time.
demo: $(STAMP)
	@test "$(DEMO_NIGHTS)" -ge 1 || { echo "error: DEMO_NIGHTS must be >= 1"; exit 2; }
	@echo "== demo: $(DEMO_ACCOUNTS) accounts, $(DEMO_START) .. $(DEMO_END); nights $(DEMO_FIRST_NIGHT) .. $(DEMO_END)"
	@TIMEFORMAT='   (generate: %R s)'; time $(VENV)/bin/riskline generate --accounts $(DEMO_ACCOUNTS) \
	    --days $(DEMO_DAYS) --end-date $(DEMO_END) --seed $(DEMO_SEED)
	@TIMEFORMAT='   (history ingest: %R s)'; time $(VENV)/bin/riskline ingest --from-date $(DEMO_START) \
	    --to-date $(DEMO_HISTORY_END)
	@if [[ "$(DEMO_FIRST_NIGHT)" < "$(DEMO_END)" ]]; then TIMEFORMAT='   (first night, trains: %R s)'; \
	    time $(VENV)/bin/riskline run --as-of $(DEMO_FIRST_NIGHT); fi
	@if [[ "$(DEMO_FIRST_NIGHT)" < "$(DEMO_END)" ]]; then TIMEFORMAT='   (nights in order: %R s)'; \
	    time $(VENV)/bin/riskline run --from-date $(DEMO_SECOND_NIGHT) --to-date $(DEMO_END) --no-retrain; \
	else TIMEFORMAT='   (the night, trains: %R s)'; time $(VENV)/bin/riskline run --as-of $(DEMO_END); fi
	$(VENV)/bin/riskline summary --as-of $(DEMO_END)
	@echo "report: $(RISKLINE_DATA_ROOT)/reports/as_of_date=$(DEMO_END)/report.html  (make airflow: the UI over this data)"

# lint-imports: the layer contract of pipelines/ (.importlinter); tests/unit/test_architecture.py checks it too.
test: $(STAMP) cluster-deps
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

# The screenshots in docs/ from the demo's last night (after `make demo`): the report's first screen, trends and
# test cells, and the what-if page of docs/candidate-example.yaml (tools/screenshots.py; Chinese text needs a CJK
# font: apt-get install fonts-noto-cjk).
screenshots: $(STAMP)
	$(PY) -m tools.screenshots --as-of $(DEMO_END) --candidate docs/candidate-example.yaml

# Books are cached under benchmarks/cache/ (git-ignored); results land in benchmarks/results/.
bench: $(STAMP)
	$(VENV)/bin/riskline bench $(BENCH_ARGS)

# Local Airflow UI on 127.0.0.1:8080 (login required; the generated admin password is printed). Another port:
# RISKLINE_AIRFLOW_PORT=8081 make airflow. It writes airflow_home/env.sh: `source airflow_home/env.sh` (or
# `make shell`) runs `airflow ...` and `riskline ...` against this deployment from any shell.
airflow: $(STAMP)
	AIRFLOW_HOME=$(CURDIR)/airflow_home $(PY) -m tools.airflow_local

# The production shape (tools/airflow_cluster.py, docs/operations.md): PostgreSQL, Redis as the Celery broker, two
# Celery workers with nothing on disk in common, the lake on the S3 API (moto's server, in memory, unless
# RISKLINE_DATA_ROOT is an s3:// URL). Same port setting as `make airflow`; its home is airflow_cluster/.
airflow-cluster: $(STAMP) cluster-deps
	AIRFLOW_HOME=$(CURDIR)/airflow_cluster $(PY) -m tools.airflow_cluster

# Debian's redis-server and PostgreSQL, for make airflow-cluster and tests/e2e/test_airflow_cluster.py (run by make test):
# installed when missing if we are root (CI starts from a fresh Debian machine as root); otherwise say what to install
# and go on (that one test then fails saying the same).
cluster-deps:
	@missing=""; command -v redis-server >/dev/null || missing="redis-server"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "warning: missing $$missing (sudo apt-get install $$missing)" >&2; exit 0; fi; \
	echo "installing $$missing (apt-get)"; apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# Rebuild business dates FROM..TO (YYYY-MM-DD) through the running `make airflow`, one night at a time in order
# (the API server creates the runs; `airflow backfill create` meets "database is locked" on SQLite).
backfill:
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD (business dates)"; exit 2; }
	@AIRFLOW_HOME=$${AIRFLOW_HOME:-$(CURDIR)/airflow_home} $(PY) -m tools.airflow_local backfill --from-date $(FROM) --to-date $(TO)

shell:
	@test -f airflow_home/env.sh || { echo "error: airflow_home/env.sh is written by 'make airflow'; start it first"; exit 1; }
	@echo "airflow and riskline on PATH, AIRFLOW_HOME=$(CURDIR)/airflow_home; exit to leave"
	@bash --rcfile <(printf 'source ~/.bashrc 2>/dev/null; source %q\n' "$(CURDIR)/airflow_home/env.sh") -i

freeze: $(STAMP)
	@{ echo "# Frozen from a working .venv (python 3.12, linux x86_64) with 'make freeze'. Do not edit by hand."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^riskline'; } > constraints.txt

clean-data:
	rm -rf data
