# Two commands on a fresh machine: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := data/demo

.PHONY: demo test lint bench clean

# torch is pinned and installed first: its CPU wheel is what pip finds here, while an unpinned
# torch would pull gigabytes of CUDA packages.
# Each step says what it does; pip shows its download bars (the install takes a minute or two).
$(STAMP): pyproject.toml
	@echo "cellsynth install 1/3: a virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "cellsynth install 2/3: torch 2.13.0 (CPU)"
	$(BIN)/python -m pip install --progress-bar on torch==2.13.0
	@echo "cellsynth install 3/3: cellsynth and its dependencies"
	$(BIN)/python -m pip install --progress-bar on -e ".[dev,examples]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/cellsynth generate --preset nuclei --n 4 --out $(DEMO)/nuclei
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
