# Everything goes through scripts/bootstrap first: on a fresh Debian or Ubuntu
# machine it installs what is missing; afterwards it is a no-op.
SHELL := /bin/bash
VENV := .venv
BGPLAB := $(VENV)/bin/bgplab
TOPOLOGY ?= topologies/byoip-incident.yaml
NAME ?=
RUNTIME ?= netns
RUNS ?= 3

.PHONY: setup lab-up lab-down lab-status test unit bench bench-full-table bench-internet bench-clique bench-mechanism bench-dashboard drill-internet drill-guarded image docker-engine docker-engine-stop golden fixture-run

setup:
	@scripts/bootstrap

lab-up: setup
	$(if $(filter docker,$(RUNTIME)),scripts/docker-engine ensure && $(VENV)/bin/python -m lab.images.build >/dev/null)
	$(BGPLAB) up $(TOPOLOGY) $(if $(NAME),--name $(NAME)) --runtime $(RUNTIME) --status

lab-down: setup
	$(BGPLAB) down $(if $(NAME),$(NAME),--all)

lab-status: setup
	$(BGPLAB) status $(NAME)

# The docker-runtime tests need an engine and the image: started (and stopped
# afterwards) and built here when missing.
test: setup
	scripts/browser
	scripts/docker-engine run bash -c '$(VENV)/bin/python -m lab.images.build >/dev/null; $(VENV)/bin/python -m pytest -ra --durations=0 --durations-min=5 tests'

unit: setup
	$(VENV)/bin/python -m pytest -ra tests/unit

bench: setup
	scripts/docker-engine run bash -c '$(VENV)/bin/python -m lab.images.build >/dev/null; \
	  $(VENV)/bin/python -m tests.bench.bench_lab --runs $(RUNS) --runtimes netns,docker --out bench-results/lab.json && \
	  $(VENV)/bin/python -m tests.bench.bench_controller --runs $(RUNS) --out bench-results/controller.json && \
	  $(VENV)/bin/python -m tests.bench.bench_full_table --runs $(RUNS) --out bench-results/full-table.json && \
	  $(VENV)/bin/python -m tests.bench.bench_internet --runs $(RUNS) --transits frr,bird --out bench-results/internet.json && \
	  $(VENV)/bin/python -m tests.bench.bench_mechanism --out bench-results/mechanism.json && \
	  $(VENV)/bin/python -m tests.bench.bench_dashboard --runs $(RUNS) --out bench-results/dashboard.json && \
	  $(VENV)/bin/python -m tests.bench.bench_implementations --runs $(RUNS) --out bench-results/implementations.json'

# The full table alone (1,000,000 IPv4 + 200,000 IPv6; ~2 minutes a run): PROFILE=1 adds ExaBGP's profile.
bench-full-table: setup
	$(VENV)/bin/python -m tests.bench.bench_full_table --runs $(RUNS) --out bench-results/full-table.json $(if $(PROFILE),--profile)

# A drill's figures with and without a dashboard client reading the live stream.
bench-dashboard: setup
	$(VENV)/bin/python -m tests.bench.bench_dashboard --runs $(RUNS) --out bench-results/dashboard.json

# A generated 100-AS Internet-like lab brought up with the 6,500 prefixes: time and memory.
bench-internet: setup
	$(VENV)/bin/python -m tests.bench.bench_internet --runs $(RUNS) --transits frr,bird,bird-all --out bench-results/internet.json

# The reference lab on each router implementation: up, memory, the API's 6,500 and 1,100 (issue 27).
bench-implementations: setup
	$(VENV)/bin/python -m tests.bench.bench_implementations --runs $(RUNS) --out bench-results/implementations.json

# The replay's mechanism alone (no BGP): seeds 1-5 x speeds 30-240, and the sensitivity table: every knob moved by 10% and 50% (~15 minutes).
bench-mechanism: setup
	$(VENV)/bin/python -m tests.bench.bench_mechanism --out bench-results/mechanism.json

# Labovitz's clique on real FRR: n = 3..6, MRAI 0, 5 and 30 s, three withdrawals each (~30 minutes).
bench-clique: setup
	$(VENV)/bin/bgplab experiment clique --n 3,4,5,6 --mrai 0,5,30 --runs 3 --out bench-results/clique

# The replay on the 47-AS Internet-like topology at full fidelity (~16 minutes), not in CI.
drill-internet: setup
	$(VENV)/bin/bgplab drill run drills/byoip-2026-02-20-internet.yaml --runs-dir runs

# The replay and its guarded variants on real BGP, then one table of what each defence would
# have changed (runs/guarded/compare.html). SPEED 240 with the windows compressed: ~20 minutes;
# SPEED=60 REALTIME=--realtime plays them as the shipped replay is checked (~45 minutes).
SPEED ?= 240
REALTIME ?= --no-realtime
drill-guarded: setup
	rm -rf runs/guarded && mkdir -p runs/guarded
	fail=0; for d in drills/byoip-2026-02-20.yaml drills/byoip-2026-02-20-guarded-*.yaml; do \
	  $(BGPLAB) drill run $$d --runs-dir runs/guarded --speed $(SPEED) $(REALTIME) || fail=1; \
	done; \
	$(BGPLAB) drill compare runs/guarded/*/ --out runs/guarded/compare.html; exit $$fail

# The replay, its guarded variants and the automation drill on each router implementation that
# forwards (GoBGP and OpenBGPD are RIB-only here: a drill that probes the data plane refuses
# them), then `drill compare` sets the runs side by side (runs/implementations/compare.html).
IMPLEMENTATIONS ?= frr bird
drill-implementations: setup
	rm -rf runs/implementations && mkdir -p runs/implementations
	fail=0; for impl in $(IMPLEMENTATIONS); do \
	  for d in drills/byoip-2026-02-20.yaml drills/byoip-2026-02-20-guarded-*.yaml drills/your-cleanup-task.yaml; do \
	    $(BGPLAB) drill run $$d --implementation $$impl --runs-dir runs/implementations/$$impl --speed $(SPEED) $(REALTIME) || fail=1; \
	  done; \
	done; \
	$(BGPLAB) drill compare runs/implementations/*/*byoip-2026-02-20/ --out runs/implementations/compare.html; exit $$fail

# The node image of the docker runtime (bgplab:<version>), rebuilt only when its inputs change.
image: setup
	scripts/docker-engine ensure
	$(VENV)/bin/python -m lab.images.build

# Start a Docker engine if none runs (and install it if missing); stop the one bgplab started.
docker-engine: setup
	scripts/docker-engine ensure

docker-engine-stop:
	scripts/docker-engine stop

# Rewrite the golden daemon configs from the current renderer (review the diff before committing).
golden: setup
	$(VENV)/bin/python -m tests.unit.test_render --write

# Re-record the run directory the unit tests of analysis and report read (a live drill, as root).
fixture-run: setup
	$(VENV)/bin/python -m tests.fixtures.record
