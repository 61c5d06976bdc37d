# The README's two commands: `make up` and `make test`. Both do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    ?= lab.yaml
STAMP  := $(VENV)/.installed
# Python sources to lint; a folder that does not exist (yet) is skipped rather than failing ruff
LINT   := $(wildcard labctl tests bench cloud-init)

.PHONY: up test test-vm venv system-deps vm-image lint typecheck unit bench clean

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

## system-deps: what the tests run for real (nginx, cloud-init, node, pm2, iproute2); root + apt only
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  set -e; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    nginx cloud-init iproute2 iptables git sudo curl procps util-linux ca-certificates python3 >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    qemu-system-x86 qemu-utils debootstrap genisoimage dpkg-repack openssh-client e2fsprogs >/dev/null; \
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

lint: venv
	$(BIN)/ruff check $(LINT)
	$(BIN)/ruff format --check $(LINT)

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m "not sim and not vm"

## test: venv, system packages (when root + apt), the real-VM image (when root + qemu), ruff, mypy,
## pytest: the fakes, the simulated VMs and the real VMs (README "Testing")
test: venv system-deps vm-image lint typecheck
	$(BIN)/pytest --durations=15

## test-vm: only the real-VM tests (builds the cached Debian 12 image first)
test-vm: venv system-deps vm-image
	$(BIN)/pytest -m vm

## bench: the benchmarks in bench/ (not part of test; bench_failover needs root, see bench/RESULTS.md)
bench: venv system-deps
	@set -e; for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
