"""Engine parts that need no model: samplers, result files, tables, visibility, seeds."""
import json
import math

import numpy as np
import pytest
import torch

from humr.engine.datamodule import EpochSampler, ShardBatchSampler
from humr.engine.evaluation import format_table, invisible_joints
from humr.engine.inference import fresh_path, write_json
from humr.engine.module import step_seed
from humr.engine.train import find_last_checkpoint, new_run_dir


def _indices(sampler):
    """Example indices of an EpochSampler's (epoch, index) keys."""
    return [i for _, i in sampler]


def _flat(batches):
    return [i for b in batches for i in b]


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    s = EpochSampler(23, batch_size=4, seed=3)
    first = _indices(s)
    assert len(first) == len(s) == 20 and len(set(first)) == 20 and set(first) <= set(range(23))
    assert _indices(s) == first                          # same epoch -> same order
    assert {e for e, _ in s} == {0}                  # keys carry the epoch (augmentation)
    s.set_epoch(1)
    assert {e for e, _ in s} == {1}
    expected = torch.randperm(23, generator=torch.Generator().manual_seed(3 + 1))[:20].tolist()
    assert _indices(s) == expected != first


def test_epoch_sampler_skip_resumes_mid_epoch_only_in_that_epoch():
    full = EpochSampler(40, batch_size=5, seed=0)
    full.set_epoch(2)
    reference = _indices(full)
    resumed = EpochSampler(40, batch_size=5, seed=0)
    resumed.skip(3, epoch=2)
    resumed.set_epoch(2)
    assert _indices(resumed) == reference[15:]
    assert _indices(resumed) == reference[15:]           # a second iterator of the epoch (Lightning)
    resumed.set_epoch(3)
    full.set_epoch(3)
    assert _indices(resumed) == _indices(full)               # later epochs are complete


def test_epoch_sampler_shards_are_disjoint_and_whole_batches():
    shards = [_indices(EpochSampler(50, batch_size=3, seed=1, rank=r, world_size=4))
              for r in range(4)]
    assert {len(s) for s in shards} == {12}
    seen = _flat(shards)
    assert len(seen) == len(set(seen)) == 48
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochSampler(5, batch_size=3, world_size=2)


@pytest.mark.parametrize("n,bs,world", [(7, 2, 2), (10, 3, 3), (4, 8, 1), (1, 1, 2)])
def test_shard_sampler_sees_every_example_once(n, bs, world):
    shards = [list(ShardBatchSampler(n, bs, rank=r, world_size=world)) for r in range(world)]
    seen = sorted(i for s in shards for i in _flat(s))
    assert seen == list(range(n))
    for r, s in enumerate(shards):
        assert len(s) == math.ceil(len(range(r, n, world)) / bs)


def test_fresh_path_and_write_json_never_overwrite(tmp_path):
    target = tmp_path / "m.json"
    assert fresh_path(target) == target
    write_json({"a": 1.5}, target)
    assert json.loads(target.read_text()) == {"a": 1.5}
    with pytest.raises(FileExistsError, match="not overwriting"):
        write_json({"a": 2}, target)
    assert fresh_path(target) == tmp_path / "m_1.json"
    (tmp_path / "m_1.json").write_text("{}")
    assert fresh_path(target) == tmp_path / "m_2.json"


def test_run_dirs_are_new_and_last_checkpoint_is_found(tmp_path):
    assert new_run_dir(tmp_path) == tmp_path / "version_0"
    for k in (0, 1, 3):
        (tmp_path / f"version_{k}" / "checkpoints").mkdir(parents=True)
    (tmp_path / "version_x").mkdir()
    assert new_run_dir(tmp_path) == tmp_path / "version_4"
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        find_last_checkpoint(tmp_path)
    for k in (1, 0):
        (tmp_path / f"version_{k}" / "checkpoints" / "last.ckpt").write_text("x")
    assert find_last_checkpoint(tmp_path) == tmp_path / "version_1" / "checkpoints" / "last.ckpt"
    run = tmp_path / "version_0"
    assert find_last_checkpoint(run) == run / "checkpoints" / "last.ckpt"


def test_step_seeds_differ_over_steps_and_ranks():
    seeds = {step_seed(0, s, r) for s in range(200) for r in range(8)}
    assert len(seeds) == 1600
    assert step_seed(5, 7, 1) == step_seed(5, 7, 1)


def test_invisible_joints_uses_confidence_only():
    # official mask metrics: invisible = confidence < 0.5; a ground truth off the crop is not
    batch = {"center": torch.tensor([[100.0, 100.0]]), "scale": torch.tensor([[1.0]]),
             "coco_gt": torch.full((1, 17, 3), 100.0), "cond_kp": torch.ones(1, 17, 3)}
    batch["coco_gt"][0, 3, 0] = 250.0        # outside the crop
    batch["cond_kp"][0, 5, 2] = 0.3          # low confidence
    batch["cond_kp"][0, 6, 2] = 0.5          # exactly 0.5 counts as visible
    batch["cond_kp"][0, 7, 2] = 0.49
    assert invisible_joints(batch)[0].nonzero().flatten().tolist() == [5, 7]


def test_format_table_groups_known_keys_and_marks_nan():
    text = format_table({"emdb/mpjpe_min": 12.3456, "spread_visible": float("nan"),
                         "other": 1.0}, "title")
    lines = text.splitlines()
    assert lines[0] == "title"
    assert any("emdb/mpjpe_min" in ln and "12.346" in ln for ln in lines)
    assert any("spread_visible" in ln and "n/a" in ln for ln in lines)
    assert "other" not in text and "3dpw" not in text


def test_config_augmentation_reaches_the_training_dataset(small_synth):
    """``data.augmentation`` (config) is the augmentation the training split applies."""
    from humr.config import Config
    from humr.data.official_release import datamodule_options
    from humr.engine.datamodule import HumrDataModule

    cfg = Config.load(None, overrides=[f"data.root={small_synth}", "data.augmentation.scale=0.05",
                                       "data.augmentation.prob_jpeg=0.0"])
    data = HumrDataModule(str(small_synth), batch_size=2, augment=True,
                          augmentation=cfg.data.augmentation, **datamodule_options(cfg, small_synth))
    dataset = data.train_dataloader().dataset.dataset
    assert dataset.augment and dataset.augmentation.scale == 0.05
    assert dataset.augmentation.prob_jpeg == 0.0 and dataset.augmentation.translate == 0.08


def test_warmup_cosine_known_points_and_scheduler():
    from humr.config import Config
    from humr.engine.module import HumrModule, warmup_cosine
    from humr.engine.train import validate_train_config

    f = lambda s: warmup_cosine(s, warmup=10, total=110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5)
    assert f(110) == pytest.approx(0.0) and f(500) == pytest.approx(0.0)
    assert warmup_cosine(0, warmup=0, total=4) == pytest.approx(1.0)

    cfg = Config.load(None, overrides=["model.conditions=[pose2d,bbox]", "model.flow.num_blocks=2",
                                       "model.flow.hidden_features=16", "model.body_model=procedural",
                                       "train.lr=0.01", "train.lr_schedule=cosine",
                                       "train.warmup_steps=2", "train.max_steps=6"])
    out = HumrModule(cfg).configure_optimizers()
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.01 * warmup_cosine(s, 2, 6) for s in range(6)])
    assert isinstance(HumrModule(cfg.override({"train.lr_schedule": "constant"}))
                      .configure_optimizers(), torch.optim.Adam)
    with pytest.raises(ValueError, match="lr_schedule"):
        validate_train_config(cfg.override({"train.lr_schedule": "step"}))
    with pytest.raises(ValueError, match="warmup_steps"):
        validate_train_config(cfg.override({"train.warmup_steps": -1}))
