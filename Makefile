# The commands the README shows. Everything runs from a local virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR := .run
PORT ?= 4000

.PHONY: help venv run test lint format typecheck clean dist install

help:
	@echo "make run    install into $(VENV) and start the proxy on the mock provider (port $(PORT))"
	@echo "make test   install into $(VENV), lint (ruff, mypy, layering) and run the test suite"
	@echo "make lint   ruff check, ruff format --check, mypy and the import-layering check"
	@echo "make dist   build dist/fkllmproxy, one executable file that needs only python3"
	@echo "make install  (as root) install the program, the systemd unit, /etc/fkllmproxy/{env,config.toml}"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
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
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	cd src && ../$(BIN)/lint-imports --no-cache ../pyproject.toml

format: venv
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

# The single-file program: a shiv zipapp carrying every dependency's wheel for this
# platform and Python version, pinned to the versions installed in $(VENV) (what the
# tests ran against). It unpacks itself on first run into $$SHIV_ROOT (default ~/.shiv;
# the systemd unit points it at its CacheDirectory). Rebuilt only when sources change.
DIST_SOURCES := pyproject.toml README.md $(shell find src -type f -name '*.py' -o -type f -name '*.typed') \
	$(shell find src/fkllmproxy/server/ui/templates src/fkllmproxy/server/ui/static -type f)

dist: dist/fkllmproxy

dist/fkllmproxy: $(DIST_SOURCES) | $(VENV)/.installed
	mkdir -p build dist
	$(BIN)/python -m pip freeze --exclude-editable > build/constraints.txt
	$(BIN)/shiv --console-script fkllmproxy --output-file $@.tmp --reproducible --compressed \
		--python "/usr/bin/env $$($(BIN)/python -c 'import sys; print("python%d.%d" % sys.version_info[:2])')" \
		--quiet . --constraint build/constraints.txt
	mv -f $@.tmp $@
	@echo "built $@ ($$(du -h $@ | cut -f1))"

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
