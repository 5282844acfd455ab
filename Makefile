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
	$(BIN)/cellsynth generate --preset default --out $(DEMO)/nuclei
	$(BIN)/cellsynth export $(DEMO)/nuclei --format stardist --out $(DEMO)/nuclei_stardist
	@echo "annotated dataset in $(DEMO)/nuclei (previews: $(DEMO)/nuclei/previews/), StarDist layout in $(DEMO)/nuclei_stardist"

test: $(STAMP)
	$(BIN)/ruff check cellsynth tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache *.egg-info
