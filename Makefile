# mediarec: two commands for a newcomer (`make demo`, `make test`); the rest are for developers.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := $(VENV)/buf/node_modules/.bin/buf
DATA   ?= demo-data

.PHONY: venv lint-proto test demo smoke eval-demo-model train-demo-model proto lint typecheck bench bench-speed bench-quality bench-gpu clean

# The venv is rebuilt when pyproject.toml changes. torch comes from plain pip (never uv/poetry).
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# buf (proto lint) ships on the npm registry; it lives inside the git-ignored venv.
$(BUF): | $(STAMP)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@1.75.0

lint-proto: $(BUF)
	$(BUF) lint protos

test: $(STAMP) $(BUF)
	$(PY) -m ruff check .
	$(BUF) lint protos
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m server.demo --data-dir $(DATA)

smoke: $(STAMP)
	$(PY) -m server.smoke

eval-demo-model: $(STAMP)
	$(PY) -m encoders.synthetic.evaluate

train-demo-model: $(STAMP)
	$(PY) -m encoders.synthetic.train

proto: $(STAMP)
	$(PY) -m server.protogen

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy encoders server client

bench: bench-speed bench-quality

bench-speed: $(STAMP)
	$(PY) -m bench.speed

bench-quality: $(STAMP)
	$(PY) -m bench.quality

# Needs a CUDA machine (not part of `make bench`); results are recorded by hand in
# docs/benchmarks.md ("GPU").
bench-gpu: $(STAMP)
	$(PY) -m bench.speed_gpu --out bench-gpu

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .ruff_cache .mypy_cache
