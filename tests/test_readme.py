"""The README's Python examples call cellsynth as it is: every imported name exists and every call binds."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def cellsynth_names(tree: ast.Module) -> dict[str, object]:
    """The names a block binds to cellsynth objects: ``from cellsynth.x import f`` and ``import cellsynth``."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cellsynth"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "cellsynth":
                    names[alias.asname or alias.name] = importlib.import_module("cellsynth")
    return names


def called(node: ast.Call, names: dict[str, object]):
    """The cellsynth function or class a call names (``f(...)``, ``cellsynth.f(...)``, ``C.method(...)``), or None."""
    if isinstance(node.func, ast.Name):
        return names.get(node.func.id)
    if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) and node.func.value.id in names:
        return getattr(names[node.func.value.id], node.func.attr)  # AttributeError: the README names a missing one
    return None


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_cellsynth_call_in_the_readme_binds(index):
    tree = ast.parse(BLOCKS[index])
    names = cellsynth_names(tree)
    checked = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords):
            continue
        target = called(node, names)
        if target is None or inspect.ismodule(target) or not callable(target):
            continue
        try:
            signature = inspect.signature(target)
        except ValueError:  # a builtin without a signature
            continue
        signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})  # TypeError: a stale call
        checked += 1
    assert checked or not names, "a block that imports cellsynth calls nothing the test could check"


def test_the_test_finds_a_stale_call():
    tree = ast.parse("from cellsynth.masks import simulate_nuclei\nsimulate_nuclei(organism, spacing, rng, centres)")
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call))
    with pytest.raises(TypeError):
        inspect.signature(called(call, cellsynth_names(tree))).bind(*call.args)
