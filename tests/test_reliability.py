"""Reliability: atomic durable writes, checkpoints without body arrays (identity instead),
safe checkpoint loading, exact resume with augmentation, refused config changes on resume."""
import errno
import os

import numpy as np
import pytest
import torch
from _payload import Payload
from _recorder import LossRecorder

from humr.config import Config
from humr.engine.checkpoint import BODY_KEY, BODY_PREFIX, load_module
from humr.engine.train import train
from humr.io import (
    CheckpointError,
    atomic_savefig,
    atomic_write,
    atomic_write_bytes,
    atomic_write_image,
    load_checkpoint_file,
)

TINY = ["model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=2", "model.flow.hidden_features=32",
        "model.head.hidden=32", "losses=[nll,mmd,mask,kp2d_mode,betas,orth]",
        "train.batch_size=2", "train.eval_batch_size=2", "train.num_workers=0",
        "train.lr=1e-3", "train.num_samples_train=4", "train.num_samples_eval=3",
        "train.val_every=100", "train.ckpt_every=2", "train.val_examples=2"]


@pytest.fixture(scope="module")
def rel_data(tmp_path_factory):
    """8 training and 2 test examples of the synthetic benchmark (crop 64, cheap settings)."""
    from humr.data.synthetic import SynthConfig, generate

    cfg = SynthConfig(crop_res=64, posterior_samples=4, candidates=32, max_rounds=2)
    return generate(tmp_path_factory.mktemp("rel_data"), n_train=8, n_test=2, seed=2, config=cfg)


def _config(data, *extra):
    return Config.load(None, overrides=[*TINY, f"data.root={data}", *extra])



@pytest.fixture(scope="module")
def trained(rel_data, tmp_path_factory):
    """A 2-step run with augmentation on: (run folder, config)."""
    cfg = _config(rel_data, "train.max_steps=2", "data.augment=true")
    result = train(cfg, tmp_path_factory.mktemp("runs"), progress=False)
    return result.run_dir, cfg


# ----------------------------------------------------------------------------- atomic writes
def _failing_writer(f):
    f.write(b"partial new content")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / "last.ckpt"
    atomic_write_bytes(target, b"previous")
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, _failing_writer)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["last.ckpt"]          # no temporary file left behind


def test_atomic_savefig_writes_the_suffix_format_and_keeps_the_previous_figure(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.imshow(np.arange(12.0).reshape(3, 4))
    png, svg = tmp_path / "curves.png", tmp_path / "curves.svg"
    assert atomic_savefig(fig, png) == png and atomic_savefig(fig, svg) == svg
    assert cv2.imread(str(png)).shape == (50, 100, 3)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    before = png.read_bytes()

    def interrupted(fname, **kwargs):
        fname.write(b"\x89PNG half a figure")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_savefig(fig, png)
    assert png.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["curves.png", "curves.svg"]
    with pytest.raises(ValueError, match="no suffix"):
        atomic_savefig(fig, tmp_path / "curves")
    plt.close(fig)


def test_atomic_write_image_round_trips_and_names_the_file_it_cannot_encode(tmp_path):
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = tmp_path / "overlay.png"
    assert atomic_write_image(path, image) == path
    np.testing.assert_array_equal(cv2.imread(str(path)), image)           # PNG: lossless
    with pytest.raises(ValueError, match=r"overlay\.png.*\(6, 5, 7\)"):   # 7 channels: no PNG
        atomic_write_image(path, np.zeros((6, 5, 7), np.uint8))
    np.testing.assert_array_equal(cv2.imread(str(path)), image)           # the previous one stays
    assert os.listdir(tmp_path) == ["overlay.png"]


def test_failed_checkpoint_save_keeps_last_ckpt_loadable(trained, monkeypatch):
    import humr.engine.checkpoint as ck

    run_dir, _ = trained
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def full_disk(obj, f):
        f.write(b"\x00" * 1000)                            # a partly written file, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        ck.AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, last)
    monkeypatch.undo()
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")) == []
    load_module(last)                                      # still loads


# ------------------------------------------------------------------ body identity, safe load
def test_checkpoint_stores_the_body_identity_not_its_arrays(trained):
    run_dir, _ = trained
    path = run_dir / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint_file(path)
    assert not [k for k in ckpt["state_dict"] if k.startswith(BODY_PREFIX)]
    ident = ckpt[BODY_KEY]
    from humr.io import sha256_file

    assert ident["sha256"] == sha256_file(ident["path"]) and len(ident["sha256"]) == 64
    # the body buffers alone (posedirs (6890, 3, 207) float64: 34 MB) outweigh the whole file
    body = load_module(path).model.body
    assert path.stat().st_size < sum(b.numel() * b.element_size() for b in body.buffers())


def test_loaded_model_equals_the_trained_one(trained):
    run_dir, _ = trained
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    ckpt = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    state = module.state_dict()
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(state[key], value), key


def test_a_different_body_file_is_refused(trained, tmp_path):
    from humr.body.procedural import make_body

    run_dir, _ = trained
    other = make_body(tmp_path / "other_body", seed=1)
    with pytest.raises(CheckpointError, match="trained with the body model"):
        load_module(run_dir / "checkpoints" / "last.ckpt", body_model=str(other))


def test_resume_with_a_different_body_file_is_refused(trained, tmp_path):
    import shutil

    from humr.body.procedural import make_body

    run_dir = shutil.copytree(trained[0], tmp_path / "run")
    other = make_body(tmp_path / "other_body", seed=1)
    changed = trained[1].override([f"model.body_model={other}"])
    with pytest.raises(CheckpointError, match="trained with the body model"):
        train(changed, None, resume=run_dir, progress=False, max_steps=3, override=True)


def test_a_body_path_from_the_checkpoint_needs_confirmation(trained, tmp_path, body_dir):
    run_dir, _ = trained
    ckpt = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    ckpt["hyper_parameters"]["config"]["model"]["body_model"] = str(body_dir)
    path = tmp_path / "elsewhere.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="--body-model"):
        load_module(path)
    # the same bytes as the procedural body the run used: accepted when named or confirmed
    load_module(path, trust_checkpoint_body=True)
    load_module(path, body_model=str(body_dir))


def test_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_module(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------- exact resume
def test_resume_after_a_kill_reproduces_the_losses_with_augmentation(rel_data, tmp_path):
    cfg = _config(rel_data, "train.max_steps=6", "data.augment=true")
    full = LossRecorder()
    train(cfg, tmp_path / "full", progress=False, callbacks=[full])
    assert sorted(full.losses) == [1, 2, 3, 4, 5, 6]
    # 8 examples / batch 2 = 4 steps per epoch: killed at step 3, resumed mid-epoch from step 2
    out = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="killed"):
        train(cfg, out, progress=False, callbacks=[LossRecorder(kill_at=3)])
    resumed = LossRecorder()
    train(cfg, out, resume=out, progress=False, callbacks=[resumed])
    assert sorted(resumed.losses) == [3, 4, 5, 6]
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(full.losses[step], rel=1e-6, abs=1e-7), step


def test_resume_with_changed_train_values_is_refused_unless_override(trained, rel_data):
    import yaml

    run_dir, cfg = trained
    changed = cfg.override(["train.lr=5e-4"])
    with pytest.raises(ValueError, match=r"train.lr: 0.001 -> 0.0005.*--override"):
        train(changed, None, resume=run_dir, progress=False, max_steps=3)
    train(changed, None, resume=run_dir, progress=False, max_steps=3, override=True)
    log = yaml.safe_load((run_dir / "config_changes.yaml").read_text())
    assert log[-1]["changes"] == {"train.lr": {"old": 1e-3, "new": 5e-4}}
    assert Config.load(run_dir / "config.yaml").train.lr == 5e-4
    # training longer is no change of the recipe: allowed, and recorded too
    train(changed.override(["train.max_steps=4"]), None, resume=run_dir, progress=False)
    log = yaml.safe_load((run_dir / "config_changes.yaml").read_text())
    assert len(log) == 2 and log[-1]["changes"] == {"train.max_steps": {"old": 2, "new": 4}}
