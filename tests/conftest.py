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


#: Overrides of a tiny, fast training configuration (2 RealNVP blocks of width 64, small CNN).
TINY_OVERRIDES = [
    "model.conditions.image.backbone=small_cnn",
    "model.flow.num_blocks=2",
    "model.flow.hidden_features=64",
    "model.head.hidden=64",
    "losses=[nll,mmd,mask,kp2d_mode,betas,orth]",
    "data.augment=false",
    "train.batch_size=4",
    "train.eval_batch_size=4",
    "train.num_workers=0",
    "train.lr=1e-3",
    "train.num_samples_train=6",
    "train.num_samples_eval=5",
    "train.max_steps=6",
    "train.val_every=100",
    "train.ckpt_every=2",
    "train.val_examples=4",
]


@pytest.fixture(scope="session")
def tiny_overrides():
    """Dotted overrides of the tiny training configuration (a tuple: not to be mutated)."""
    return tuple(TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """16 training and 4 test examples of the synthetic benchmark."""
    from humr.data.synthetic import generate

    root = tmp_path_factory.mktemp("tiny_data")
    generate(root, n_train=16, n_test=4, seed=0)
    return root


@pytest.fixture
def tiny_config(tiny_data, tiny_overrides):
    """The tiny configuration on :func:`tiny_data`."""
    from humr.config import Config

    return Config.load(None, overrides=[*tiny_overrides, f"data.root={tiny_data}"])


@pytest.fixture
def tiny_smplx(tmp_path, monkeypatch):
    """A minimal SMPL-X-format model (55 joints, 60 vertices, 400 shape dirs) in the official download
    layout ``models_smplx_v1_1/models/smplx``: ``SMPLX_MALE.npz`` / ``SMPLX_NEUTRAL.npz`` (with an
    object entry like the release's joint2num) and ``SMPLX_FEMALE.pkl``; smplx's vertex ids are
    moved into its range. Returns (folder, arrays)."""
    import numpy as np
    from smplx.vertex_ids import vertex_ids

    from humr.body.keypoints import COCO17_FACE_VERTICES
    from humr.body.safe_pickle import write_body_file

    monkeypatch.setitem(vertex_ids, "smplx", {n: i % 60 for i, n in enumerate(
        [*COCO17_FACE_VERTICES, *vertex_ids["smplx"]])})
    rng = np.random.default_rng(0)
    V, J = 60, 55
    parents = np.concatenate([[-1], rng.integers(0, np.arange(1, J))])
    weights = rng.random((V, J))
    data = {"v_template": rng.normal(size=(V, 3)), "f": rng.integers(0, V, (30, 3)),
            "J_regressor": rng.random((J, V)) / V, "weights": weights / weights.sum(1, keepdims=True),
            "kintree_table": np.stack([parents, np.arange(J)]),
            "shapedirs": rng.normal(size=(V, 3, 400)) * 0.01,   # 300 shape + 100 expression (SMPL-X 1.1)
            "posedirs": rng.normal(size=(V, 3, 9 * (J - 1))) * 0.01,
            "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
            "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45),
            "lmk_faces_idx": np.zeros(51, np.int64), "lmk_bary_coords": np.full((51, 3), 1 / 3),
            "dynamic_lmk_faces_idx": np.zeros((79, 17), np.int64),
            "dynamic_lmk_bary_coords": np.full((79, 17, 3), 1 / 3)}
    folder = tmp_path / "models_smplx_v1_1" / "models" / "smplx"
    folder.mkdir(parents=True)
    for gender in ("MALE", "NEUTRAL"):
        np.savez(folder / f"SMPLX_{gender}.npz", **data, joint2num=np.array({"pelvis": 0}, dtype=object))
    write_body_file(data, folder / "SMPLX_FEMALE.pkl")
    return folder, data


@pytest.fixture
def official_ckpt(tmp_path, tiny_smplx):
    """(path, references) (:func:`_official.official_checkpoint`) of an official-format checkpoint whose body is the tiny SMPL-X model
    as the official code holds it (``smplx.SMPLXLayer(num_betas=11)`` buffers)."""
    import contextlib
    import io

    import smplx

    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.SMPLXLayer(str(tiny_smplx[0] / "SMPLX_NEUTRAL.npz"), num_betas=11)
    path = tmp_path / "humr_best.ckpt"
    from _official import official_checkpoint

    return path, official_checkpoint(path, layer.state_dict())
