"""The examples in the docstrings of the model, config, registry, objective, flow base class
and conditioners run and print what they show."""
import doctest
import importlib

import pytest

MODULES = ["humr.registry", "humr.config", "humr.objective", "humr.model", "humr.flows.base",
           "humr.conditions", "humr.conditions.bbox", "humr.conditions.image",
           "humr.conditions.keypoints", "humr.engine.module"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
