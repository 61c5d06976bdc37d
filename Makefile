# The README's two commands: `make up` and `make test`. Both do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    ?= lab.yaml
STAMP  := $(VENV)/.installed
# Python sources to lint; a folder that does not exist (yet) is skipped rather than failing ruff
LINT   := $(wildcard labctl tests bench cloud-init)
# The unit tier runs in UNIT_JOBS pytest-xdist workers (make unit UNIT_JOBS=auto: one per core),
# which steal queued tests from each other so a few long ones do not leave a worker idle; the
# heavy tiers run serially because they share bridges, daemons and the cores
UNIT_JOBS ?= 2
UNIT      := -n $(UNIT_JOBS) --dist worksteal -m "not sim and not vm and not lxd and not browser"
HEAVY     := -m "sim or vm or lxd or browser"

.PHONY: up test test-vm test-lxd test-browser venv system-deps vm-image lxd-image npm-cache lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# as pip does for a regular install: labctl starts from bytecode (~55 ms less per command)
	$(BIN)/python -m compileall -q labctl >/dev/null
	touch $(STAMP)

venv: $(STAMP)

## up: install labctl into .venv and bring up ./lab.yaml (LAB=examples/hello/lab.yaml for another)
up: venv
	$(BIN)/labctl up -f $(LAB)

## system-deps: what the tests run for real (nginx, cloud-init, node, pm2, iproute2, qemu, LXD,
## chromium); root + apt only
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  set -e; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    nginx cloud-init iproute2 iptables git sudo curl procps util-linux ca-certificates python3 >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    qemu-system-x86 qemu-utils debootstrap genisoimage dpkg-repack openssh-client e2fsprogs >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    dnsmasq-base btrfs-progs >/dev/null; \
	  if ! command -v lxd >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lxd >/dev/null; \
	  fi; \
	  if ! command -v node >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	  fi; \
	  command -v pm2 >/dev/null 2>&1 || npm install --global --no-audit --no-fund pm2@7 >/dev/null; \
	  echo "system packages: nginx $$(nginx -v 2>&1 | cut -d/ -f2), node $$(node --version), pm2 $$(npm ls --global --depth=0 pm2 2>/dev/null | grep -o "pm2@[0-9.]*" | cut -d@ -f2), $$(cloud-init --version 2>&1)"; \
	else \
	  echo "system-deps: not root or no apt-get; skipping (tests that need them will skip and say why)"; \
	fi

## vm-image: the Debian 12 image for the real-VM tests (cached by recipe hash under $$LABCTL_VM_CACHE,
## default /var/cache/labctl-vm); needs root, debootstrap, qemu-utils and the host's node/npm
vm-image: venv
	@if [ "$$(id -u)" = 0 ] && command -v debootstrap >/dev/null 2>&1 && command -v qemu-img >/dev/null 2>&1; then \
	  $(BIN)/python -m tests.vmimage.build; \
	else \
	  echo "vm-image: not root or no debootstrap/qemu-img; skipping (real-VM tests will skip and say why)"; \
	fi

## lxd-image: the LXD container image for the tests on a real LXD (cached by recipe hash under
## $$LABCTL_LXD_CACHE, default /var/cache/labctl-lxd); needs root, debootstrap and the host's node/npm
lxd-image: venv
	@if [ "$$(id -u)" = 0 ] && command -v debootstrap >/dev/null 2>&1; then \
	  $(BIN)/python -m tests.lxd.image; \
	else \
	  echo "lxd-image: not root or no debootstrap; skipping (LXD tests will skip and say why)"; \
	fi

## npm-cache: the npm cache the course-app test installs from offline, filled from the npm registry
## once per lockfile ($$LABCTL_NPM_CACHE, default /var/cache/labctl-npm); needs the app's bundle
npm-cache: venv
	$(BIN)/python -m tests.workloads

lint: venv
	$(BIN)/ruff check $(LINT)
	$(BIN)/ruff format --check $(LINT)

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest $(UNIT)

## test: venv, system packages (when root + apt), the real-VM and LXD images (when root), the npm
## cache of the course's app, ruff, mypy, pytest: the fakes, the browser tier, the simulated VMs,
## the real VMs and a real LXD (docs/testing.md). The unit tier first, in parallel; the heavy tiers
## run even when it failed, and make fails when either did
test: venv system-deps vm-image lxd-image npm-cache lint typecheck
	@unit=0; heavy=0; \
	$(BIN)/pytest $(UNIT) || unit=$$?; \
	$(BIN)/pytest --durations=15 $(HEAVY) || heavy=$$?; \
	if [ $$unit != 0 ]; then echo "make test: the unit tier failed (pytest exit $$unit), see above"; fi; \
	if [ $$heavy != 0 ]; then exit $$heavy; fi; \
	exit $$unit

## test-vm: only the real-VM tests (builds the cached Debian 12 image first)
test-vm: venv system-deps vm-image
	$(BIN)/pytest -m vm

## test-lxd: only the tests on a real LXD (builds the cached container image first)
test-lxd: venv system-deps lxd-image
	$(BIN)/pytest -m lxd

## test-browser: only the tests that start the real headless browser
test-browser: venv system-deps
	$(BIN)/pytest -m browser

## bench: the benchmarks in bench/ (not part of test; bench_failover needs root, see bench/RESULTS.md)
bench: venv system-deps
	@set -e; for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
