# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.learnmech-setup
OUT     ?= learnmech-out
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench browser clean

# The stamp depends on pyproject.toml, so a re-run is a no-op until dependencies change.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	# torch first: the CPU wheel on disk; a bare `torch` requirement could pull a multi-GB CUDA build.
	$(VPY) -m pip install --quiet torch==2.13.0
	$(VPY) -m pip install --quiet -e ".[dev,ray,browser]"
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the report's browser test (Debian's package; root on these machines).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing and apt-get unavailable; browser tests will be skipped"; fi; }

demo: setup
	$(VENV)/bin/learnmech reproduce --quick --out $(OUT) --db $(OUT)/results.db

test: setup browser
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(VPY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
