# Everything goes through scripts/bootstrap first: on a fresh Debian or Ubuntu
# machine it installs what is missing; afterwards it is a no-op.
SHELL := /bin/bash
VENV := .venv
BGPLAB := $(VENV)/bin/bgplab
TOPOLOGY ?= topologies/byoip-incident.yaml
NAME ?=
RUNTIME ?= netns
RUNS ?= 3

.PHONY: setup lab-up lab-down lab-status test unit bench

setup:
	@scripts/bootstrap

lab-up: setup
	$(BGPLAB) up $(TOPOLOGY) $(if $(NAME),--name $(NAME)) --runtime $(RUNTIME) --status

lab-down: setup
	$(BGPLAB) down $(if $(NAME),$(NAME),--all)

lab-status: setup
	$(BGPLAB) status $(NAME)

test: setup
	$(VENV)/bin/python -m pytest -ra tests

unit: setup
	$(VENV)/bin/python -m pytest -ra tests/unit

bench: setup
	$(VENV)/bin/python -m tests.bench.bench_lab --runs $(RUNS) --out bench-results/lab.json
	$(VENV)/bin/python -m tests.bench.bench_controller --runs $(RUNS) --out bench-results/controller.json
