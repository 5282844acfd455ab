"""The public surface: every re-exported name resolves, and importing it stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["cellsynth", "cellsynth.masks", "cellsynth.synthesis", "cellsynth.evaluate",
                                     "cellsynth.augment"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_the_top_level_holds_what_a_notebook_needs_and_imports_no_torch():
    import cellsynth

    assert len(cellsynth.__all__) <= 20
    assert {"load_preset", "generate_dataset", "load_renderer", "train_gan", "train_ddpm", "export_dataset",
            "read_volume", "write_volume", "cells3d_nuclei"} <= set(cellsynth.__all__)
    code = ("import sys, cellsynth, cellsynth.masks, cellsynth.synthesis, cellsynth.evaluate, cellsynth.augment; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


#: docs/architecture.md's floors: a module may import only from lower floors (or its own package).
FLOORS = {"errors": 1, "presets": 1, "checks": 2, "config": 2, "io": 3, "models": 3, "sample": 3, "checkpoints": 4,
          "masks": 4, "examples": 4, "dataset": 5, "synthesis": 6, "augment": 6, "evaluate": 7,
          "training": 7, "series": 8, "cli": 9}


def test_no_import_runs_up_a_floor():
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "cellsynth"
    upward = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[0] == "__init__":
            continue
        source = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("cellsynth."):
                    target = name.split(".")[1]
                    if target != source and FLOORS[target] >= FLOORS[source]:
                        upward.append(f"{'/'.join(parts)} imports {name}")
    assert not upward, upward
    assert set(FLOORS) == {p.stem if p.is_file() else p.name for p in package.iterdir()
                           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}


def test_randomness_is_rng_none_an_int_or_a_generator():
    import numpy as np

    from cellsynth import load_preset, load_renderer, simulate_masks, with_overrides

    config = with_overrides(load_preset("default"), {"volume.shape": [8, 48, 48]})
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

    from cellsynth import Sample, load_preset, load_renderer, masks_from_labels, simulate_masks, with_overrides
    from cellsynth.errors import InputError

    config = with_overrides(load_preset("default"), {"volume.shape": [8, 48, 48]})
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=7)
    assert masks.spacing == tuple(config.volume.spacing_um)
    renderer = load_renderer(config)
    rendered = renderer.render(masks, rng=3)
    assert rendered.spacing == masks.spacing and rendered.labels is masks.labels and rendered.image.dtype == np.float32
    np.testing.assert_array_equal(rendered.image, renderer.render(masks.replace(params={}), rng=3).image)
    assert masks_from_labels(masks.labels, (1.0, 0.5, 0.5)).spacing == (1.0, 0.5, 0.5)
    with pytest.raises(InputError, match="spacing is unknown"):
        renderer.render(Sample(masks.labels, foreground=masks.foreground), rng=3)
