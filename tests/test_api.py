"""The public surface: every re-exported name resolves, and importing it stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ["cellsynth", "cellsynth.masks", "cellsynth.synthesis", "cellsynth.evaluate", "cellsynth.augment",
            "cellsynth.dataset", "cellsynth.training"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_and_shows_an_example(package):
    import inspect

    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None, name
        if inspect.isfunction(value) or inspect.isclass(value):
            assert "Examples\n--------" in (inspect.getdoc(value) or ""), f"{package}.{name} has no Examples section"


#: Every package whose ``__all__`` is public, for the docstring check (the lazy surfaces and the two flat ones).
DOCUMENTED = [*PACKAGES, "cellsynth.config", "cellsynth.io"]


def test_every_exported_function_documents_its_parameters_and_what_it_returns():
    """numpydoc's own validator: each parameter documented (PR01), none that does not exist (PR02), a
    Returns section where something is returned (RT01)."""
    import inspect

    from numpydoc.validate import validate

    problems = set()
    for package in DOCUMENTED:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.isfunction(value):
                continue
            found = validate(f"{value.__module__}.{value.__qualname__}")
            problems |= {f"{value.__module__}.{value.__qualname__}: {message}" for code, message in found["errors"]
                         if code in ("PR01", "PR02", "RT01")}
    assert not problems, "\n".join(sorted(problems))


def test_the_top_level_holds_what_a_notebook_needs_and_imports_no_torch():
    import cellsynth

    assert len(cellsynth.__all__) <= 20
    assert {"load_preset", "generate_dataset", "load_renderer", "train_gan", "train_ddpm", "export_dataset",
            "as_samples", "read_sample", "write_sample", "cells3d_nuclei"} <= set(cellsynth.__all__)
    code = ("import sys, cellsynth, cellsynth.masks, cellsynth.synthesis, cellsynth.evaluate, cellsynth.augment; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


#: docs/architecture.md's floors: a module may import only from lower floors (or its own package).
FLOORS = {"errors": 1, "presets": 1, "checks": 2, "locks": 2, "progress": 2, "config": 3, "io": 3, "models": 3,
          "sample": 3, "checkpoints": 4, "masks": 4, "examples": 4, "dataset": 5, "synthesis": 6, "augment": 6,
          "evaluate": 7, "training": 7, "series": 8, "cli": 9}

PACKAGE = Path(__file__).resolve().parents[1] / "cellsynth"


def module_imports() -> dict[str, set[str]]:
    """Every cellsynth module (dotted, without ``cellsynth.``) → the cellsynth modules it imports, at
    the top or inside a function."""
    import ast

    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        source = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[source] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            graph[source] |= {name.removeprefix("cellsynth.") for name in names if name.startswith("cellsynth.")}
    return graph


def test_no_import_runs_up_a_floor():
    upward = [f"{source} imports {target}" for source, targets in module_imports().items() if source
              for target in targets
              if target.split(".")[0] != source.split(".")[0] and FLOORS[target.split(".")[0]] >= FLOORS[
                  source.split(".")[0]]]
    assert not upward, upward
    assert set(FLOORS) == {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
                           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}


def test_no_two_modules_import_each_other_even_through_others():
    graph = module_imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(t for t in graph.get(module, ()) if t in graph)
        return False

    circles = [(a, b) for a in graph for b in graph[a] if b in graph and b != a and not b.startswith(a + ".")
               and not a.startswith(b + ".") and reaches(b, a)]
    assert not circles, circles


def test_the_architecture_page_draws_the_floors_the_code_keeps():
    import re

    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    drawn = {name: int(floor) for floor, name in re.findall(r"^\| (\d) \| `(\w+)` \|", page, re.MULTILINE)}
    assert drawn == {name: floor for name, floor in FLOORS.items() if name != "presets"}


def test_randomness_is_rng_none_an_int_or_a_generator():
    import numpy as np

    from cellsynth import load_renderer, simulate_masks, with_overrides
    from cellsynth.config import Config

    config = with_overrides(Config(), {"volume.shape": [8, 48, 48]})
    by_seed = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=7)
    by_generator = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks,
                                  rng=np.random.default_rng(7))
    np.testing.assert_array_equal(by_seed.labels, by_generator.labels)
    renderer = load_renderer(config)
    np.testing.assert_array_equal(renderer.render(by_seed, rng=3).image,
                                  renderer.render(by_seed, np.random.default_rng(3)).image)
    assert renderer.render(by_seed).image.shape == by_seed.labels.shape  # rng=None


def test_spacing_travels_with_the_masks():
    import numpy as np
    import pytest

    from cellsynth import Sample, load_renderer, masks_from_labels, simulate_masks, with_overrides
    from cellsynth.config import Config
    from cellsynth.errors import InputError

    config = with_overrides(Config(), {"volume.shape": [8, 48, 48]})
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=7)
    assert masks.spacing == tuple(config.volume.spacing_um)
    renderer = load_renderer(config)
    rendered = renderer.render(masks, rng=3)
    assert rendered.spacing == masks.spacing and rendered.labels is masks.labels and rendered.image.dtype == np.float32
    np.testing.assert_array_equal(rendered.image, renderer.render(masks.replace(params={}), rng=3).image)
    assert masks_from_labels(masks.labels, (1.0, 0.5, 0.5)).spacing == (1.0, 0.5, 0.5)
    with pytest.raises(InputError, match="spacing is unknown"):
        renderer.render(Sample(masks.labels, foreground=masks.foreground), rng=3)
