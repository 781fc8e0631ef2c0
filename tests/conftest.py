"""Shared fixtures. The procedural body is generated once per test session."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def body_dir(tmp_path_factory):
    """Folder holding ``smpl/SMPL_NEUTRAL.pkl`` (+ H36M regressor) of the procedural body."""
    from humr.body.procedural import make_body

    out = tmp_path_factory.mktemp("body")
    make_body(out, seed=0)
    return out
