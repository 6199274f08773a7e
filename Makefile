# Two entry points: `make demo` (default scenario) and `make test` (test suite).
# Both create .venv and install hffm with torch pinned to the CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p runs
	$(VENV)/bin/hffm run paper --out runs/paper.h5 --force
	$(VENV)/bin/hffm report runs/paper.h5 --plot runs/paper.png --force

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: $(STAMP)
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

# On-demand performance figures (benchmarks/README.md): ~5 + 1 + 15 minutes on 2 cores.
bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/training_throughput.py
	$(PY) benchmarks/scaling.py --out runs/bench

clean:
	rm -rf $(VENV) runs .pytest_cache
