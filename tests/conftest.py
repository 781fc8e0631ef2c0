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


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory):
    """A tiny synthetic dataset folder: 3 train examples in 2 shards (2 + 1), 1 test example,
    crop side 64, 4 posterior samples (cheap generator settings, cached procedural body)."""
    from humr.data.synthetic import SynthConfig, generate

    cfg = SynthConfig(crop_res=64, posterior_samples=4, test_posterior_samples=4, candidates=32,
                      max_rounds=2, shard_size=2)
    return generate(tmp_path_factory.mktemp("small_synth"), n_train=3, n_test=1, seed=1,
                    config=cfg)
