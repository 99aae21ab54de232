# Two commands for a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DIST   ?= dist

.PHONY: install demo demo-stop test bench emulator dist clean

# the virtualenv, with every dependency pinned (requirements.txt) and everything else constrained
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

# stops everything it started when it ends, fails or gets SIGINT/SIGTERM/SIGHUP; DEMO_KEEP=1 keeps it running
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# stops a demo left running with DEMO_KEEP=1 (and anything it started)
demo-stop:
	$(BIN)/python scripts/demo.py --stop

test: $(STAMP)  # two workers; tests sharing a costly session fixture stay on one (tests/conftest.py)
	$(BIN)/python -m pytest -q -ra -n 2 --dist loadgroup

bench: $(STAMP)  # all run; fails if any benchmark with targets misses them
	$(BIN)/python benchmarks/bench_download.py; download=$$?; \
	$(BIN)/python benchmarks/bench_parallel.py; \
	$(BIN)/python benchmarks/bench_upload.py; upload=$$?; \
	$(BIN)/python benchmarks/bench_artifacts_ui.py; artifacts_ui=$$?; \
	$(BIN)/python benchmarks/bench_shared_budget.py; budget=$$?; \
	$(BIN)/python benchmarks/bench_concurrent_waits.py && exit $$(( download || upload || artifacts_ui || budget ))

emulator: $(STAMP)
	$(BIN)/python -m harvest_emulator --host 127.0.0.1 --port 8765

# the wheel and the sdist (dist/), for `pip install` into your own Airflow (docs/own-airflow.md); PyPA's build
# makes the sdist in an isolated environment, then the wheel from that sdist, so the sdist is known complete;
# the egg-info setuptools leaves beside pyproject.toml goes (on sys.path in the tests, it would be a second copy)
dist: $(STAMP)
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	rm -rf artifact_harvest.egg-info

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache $(DIST) build artifact_harvest.egg-info
