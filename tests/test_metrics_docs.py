"""The metric docstring examples run, and humr.metrics stays free of heavy imports."""
import ast
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import humr.metrics

MODULES = sorted(m.name for m in pkgutil.walk_packages(humr.metrics.__path__, "humr.metrics."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_classes_have_examples():
    for cls in (humr.metrics.HypothesisAccuracy, humr.metrics.Consistency2D, humr.metrics.Spread3D,
                humr.metrics.MaskPlausibility, humr.metrics.PosteriorDistance):
        assert ">>> metric" in cls.__doc__, cls.__name__


def test_no_smplx_lightning_or_model_imports():
    forbidden = ("smplx", "lightning", "pytorch_lightning", "humr.body", "humr.model", "humr.engine")
    root = Path(humr.metrics.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
