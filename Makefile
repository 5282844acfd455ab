# Two commands on a fresh machine: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := data/demo

.PHONY: demo test lint bench clean

# torch is pinned and installed first: its CPU wheel is what pip finds here, while an unpinned
# torch would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,examples]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/cellsynth dataset example cells3d $(DEMO)/cells3d
	$(BIN)/cellsynth export $(DEMO)/cells3d --format stardist --out $(DEMO)/cells3d_stardist
	@echo "demo dataset in $(DEMO)/cells3d (preview: $(DEMO)/cells3d/previews/), StarDist layout in $(DEMO)/cells3d_stardist"

test: $(STAMP)
	$(BIN)/ruff check cellsynth tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache *.egg-info
