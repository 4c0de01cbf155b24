# mediarec: two commands for a newcomer (`make demo`, `make test`); the rest are for developers.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := $(VENV)/buf/node_modules/.bin/buf
DATA   ?= demo-data
LOCK   := requirements.lock
# Every extra of pyproject.toml enters the lock, so CI and the benchmarks install from it too.
LOCK_EXTRAS := dev int8 parquet bench

# Debian's chromium, which the gallery's browser tests drive through Playwright (Playwright's
# own browser download cannot be reached from here).
CHROMIUM := /usr/bin/chromium

.PHONY: venv lock lint-proto test demo browser screenshots smoke eval-demo-model train-demo-model proto lint typecheck bench bench-speed bench-quality bench-import bench-real bench-scale bench-search bench-report bench-gpu bench-soak fuzz clean

# The venv holds exactly what requirements.lock says (hashes checked, no resolver): it is
# rebuilt from scratch whenever the lock or pyproject.toml changes. torch comes from plain pip
# (never uv/poetry); the lock pins it at the release on this machine's disk.
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# Regenerate the lock from pyproject.toml (all extras) plus the build tools. Existing pins are
# kept unless asked otherwise: `make lock LOCK_ARGS=--upgrade` or
# `make lock LOCK_ARGS='--upgrade-package grpcio-tools'`.
# It needs only pip-tools from the venv, so a pyproject.toml ahead of the lock can still be locked.
lock:
	test -x $(VENV)/bin/pip-compile || $(MAKE) venv
	printf 'pip\nsetuptools\nwheel\n' | CUSTOM_COMPILE_COMMAND='make lock' $(VENV)/bin/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras $(foreach e,$(LOCK_EXTRAS),--extra $(e)) \
	  --no-emit-index-url --no-emit-find-links \
	  $(LOCK_ARGS) -o $(LOCK) pyproject.toml -

# buf (proto lint) ships on the npm registry; protos/buf/package-lock.json pins it and `npm ci`
# installs exactly that into the git-ignored venv folder.
$(BUF): protos/buf/package.json protos/buf/package-lock.json | $(STAMP)
	mkdir -p $(VENV)/buf
	cp protos/buf/package.json protos/buf/package-lock.json $(VENV)/buf/
	npm ci --silent --no-audit --no-fund --prefix $(VENV)/buf
	touch $(BUF)

lint-proto: $(BUF)
	$(BUF) lint protos

test: $(STAMP) $(BUF) $(CHROMIUM)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(BUF) lint protos
	$(PY) -m pytest

# Installed through apt: as root, or with sudo where that works without a password. Without
# either, make test goes on and the browser tests skip, except in CI, where they fail.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else \
	  echo "make: installing chromium needs root (sudo apt-get install chromium);" \
	    "the browser tests will skip" >&2; \
	  if [ -n "$$CI" ]; then exit 1; else exit 0; fi; fi; \
	$$SUDO apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium

browser: $(CHROMIUM)

# The gallery's screenshots in docs/ (the README shows one), taken by its browser tests.
screenshots: $(STAMP) $(CHROMIUM)
	MEDIAREC_SCREENSHOTS=docs $(PY) -m pytest -q tests/test_gallery_browser.py

demo: $(STAMP)
	$(PY) -m mediarec.server.demo --data-dir $(DATA)

smoke: $(STAMP)
	$(PY) -m mediarec.server.smoke

eval-demo-model: $(STAMP)
	$(PY) -m mediarec.encoders.synthetic.evaluate

train-demo-model: $(STAMP)
	$(PY) -m mediarec.encoders.synthetic.train

proto: $(STAMP)
	$(PY) protos/protogen.py

lint: $(STAMP)
	$(PY) -m ruff check .

# mypy cannot follow the editable install's import hook, so it reads the `mediarec` namespace
# through a git-ignored tree of links to the folders.
TYPECHECK_ROOT := build/typecheck
typecheck: $(STAMP)
	mkdir -p $(TYPECHECK_ROOT)/mediarec
	ln -sfn ../../../server $(TYPECHECK_ROOT)/mediarec/server
	ln -sfn ../../../encoders $(TYPECHECK_ROOT)/mediarec/encoders
	ln -sfn ../../../client $(TYPECHECK_ROOT)/mediarec/client
	ln -sfn ../../../client/generated/mediarec/v1 $(TYPECHECK_ROOT)/mediarec/v1
	MYPYPATH=$(TYPECHECK_ROOT) $(PY) -m mypy -p mediarec.server -p mediarec.encoders -p mediarec.client
	$(PY) -m mypy protos/protogen.py  # alone: beside protos/, it would shadow mediarec.v1

bench: bench-speed bench-quality

bench-speed: $(STAMP)
	$(PY) -m bench.speed

bench-quality: $(STAMP)
	$(PY) -m bench.quality

# mediarec against tuned baselines on MovieLens through the real server (../shared/datasets);
# writes docs/bench/real.{json,md}. Development runs score validation: python -m bench.real.
bench-real: $(STAMP)
	$(PY) -m bench.real --split test

# The decode path's fuzz target at length (make test runs it briefly); about 5 min.
fuzz: $(STAMP)
	MEDIAREC_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q tests/test_fuzz_decode.py

# The collaborative core's build time, memory and request-side cost on generated logs up to
# 100k items and 10M events; writes docs/bench/scale.{json,md}.
bench-scale: $(STAMP)
	$(PY) -m bench.scale_core

# docs/benchmarks.md from the fragments under docs/bench/, without running any benchmark.
bench-report: $(STAMP)
	$(PY) -m bench.docs

# Text search of the real CC photos by picture, caption and fusion (under 1 min with the demo
# model); writes docs/bench/search.{json,md}. MODEL=ID measures another model.
bench-search: $(STAMP)
	MEDIAREC_TEST_MEDIA=$${MEDIAREC_TEST_MEDIA:-../shared/media} \
		$(PY) -m bench.search_captions $(if $(MODEL),--model-id $(MODEL))

# A serve process under mixed load, slow-loris uploads and bombs for 30 min (not in CI):
# errors, latency, the health prober and the RSS slope; writes docs/bench/soak.{json,md}.
bench-soak: $(STAMP)
	$(PY) -m bench.soak

# ImportEvents against LogEvents in events/s (about 1 min); writes docs/bench/import.{json,md}.
bench-import: $(STAMP)
	$(PY) -m bench.import_speed

# Needs a CUDA machine (not part of `make bench`); results are recorded by hand in
# docs/benchmarks.md ("GPU").
bench-gpu: $(STAMP)
	$(PY) -m bench.speed_gpu --out bench-gpu

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .ruff_cache .mypy_cache
