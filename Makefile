# The commands the README shows. Everything runs from a local virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR := .run
PORT ?= 4000

.PHONY: help venv run test lint format typecheck clean

help:
	@echo "make run    install into $(VENV) and start the proxy on the mock provider (port $(PORT))"
	@echo "make test   install into $(VENV) and run the test suite"
	@echo "make lint   ruff check, ruff format --check and mypy"

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

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

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
