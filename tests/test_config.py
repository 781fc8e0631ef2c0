"""Configuration on OmegaConf structured configs: defaults, YAML round trips, component slots
and sets, typed overrides, helpful errors, shipped configs."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from humr.config import Config
from humr.losses import DEFAULT_WEIGHTS
from humr.registry import FLOWS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_follow_the_paper():
    cfg = Config()
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.batch_size) == (1e-4, 1e-4, 64)
    assert (cfg.train.num_samples_train, cfg.train.num_samples_eval) == (26, 100)
    assert (cfg.model.flow.name, cfg.model.flow.num_blocks, cfg.model.flow.hidden_features) == \
        ("realnvp", 8, 1024)
    assert list(cfg.model.conditions) == ["image", "pose2d", "bbox"]
    assert cfg.model.conditions["image"].backbone.name == "hrnet_w48"
    assert list(cfg.losses) == ["nll", "mmd", "mask", "kp2d_mode", "betas", "orth"]
    assert {n: e.weight for n, e in cfg.losses.items()} == {
        "nll": 1e-1, "mmd": 5e-2, "mask": 1e-1, "kp2d_mode": 1e-2, "betas": 5e-4, "orth": 1e-1}
    assert cfg.losses["nll"].gt_noise_std == 0.005        # the official release's GT noise


def test_component_entries_follow_the_constructor_signatures():
    """A flow's entry holds its constructor's keyword arguments with their defaults."""
    import inspect

    for name in FLOWS.names():
        entry = Config.load(None, overrides=[f"model.flow={name}"]).model.flow
        params = {k: p.default for k, p in inspect.signature(FLOWS.get(name)).parameters.items()
                  if k not in ("dim", "context_dim")}
        assert {k: getattr(entry, k) for k in params} == params and entry.name == name


def test_yaml_round_trip_and_pickle(tmp_path):
    cfg = Config.load(None, overrides=[
        "model.flow=glow", "model.conditions=[image,diffpose]",
        "model.conditions.diffpose.num_samples=16", "model.flow.dropout=0.1",
        "losses.mmd.weight=2e-2", "train.val_examples=7", "data.augment=false",
        "data.root=/tmp/x y", "data.synth.frame_hw=[240,320]"])
    text = cfg.to_yaml()
    assert Config.from_yaml(text) == cfg
    assert yaml.safe_load(text) == cfg.to_dict()           # plain YAML, readable by anything
    assert Config.load(cfg.save(tmp_path / "c.yaml")) == cfg
    assert Config.load(cfg.to_dict()) == cfg and Config.load(cfg) == cfg
    assert Config.load(cfg) is not cfg
    assert Config.from_yaml("") == Config()
    assert pickle.loads(pickle.dumps(cfg)) == cfg          # DDP spawn pickles the module
    assert cfg.data.synth.frame_hw == (240, 320)


def test_overrides_are_typed():
    cfg = Config.load(None, overrides=["train.lr=1e-3", "train.batch_size=8", "data.augment=false",
                                       "model.conditions=[bbox, pose2d]", "train.grad_clip=2",
                                       "losses.mmd.n=10", "train.val_examples=null"])
    assert cfg.train.lr == float("1e-3") and isinstance(cfg.train.lr, float)
    assert cfg.train.batch_size == 8 and isinstance(cfg.train.batch_size, int)
    assert cfg.data.augment is False and list(cfg.model.conditions) == ["bbox", "pose2d"]
    assert isinstance(cfg.train.grad_clip, float) and cfg.train.grad_clip == 2.0
    assert cfg.losses["mmd"].n == 10 and cfg.train.val_examples is None
    # mapping overrides keep values as given; the original is untouched
    base = Config()
    new = base.override({"model.flow": "nice", "losses.mask.weight": 1})
    assert new.model.flow.name == "nice" and new.losses["mask"].weight == 1.0
    assert base.model.flow.name == "realnvp"


def test_interpolations_resolve_when_the_config_is_built():
    cfg = Config.load(None, overrides=["model.num_betas=11",
                                       "data.synth.num_betas=${model.num_betas}"])
    assert cfg.data.synth.num_betas == 11 and isinstance(cfg.data.synth.num_betas, int)
    assert "num_betas: 11" in cfg.to_yaml() and Config.from_yaml(cfg.to_yaml()) == cfg


def test_switching_a_component_keeps_the_changed_shared_arguments():
    cfg = Config.load(None, overrides=["model.flow.num_blocks=3", "model.flow.alpha=1.5",
                                       "model.flow=glow", "model.flow.hidden_features=512"])
    flow = cfg.model.flow
    assert (flow.name, flow.num_blocks, flow.hidden_features) == ("glow", 3, 512)
    assert not hasattr(flow, "alpha")                      # glow has no soft clamp
    cfg = Config.load(None, overrides=["model.conditions.image.backbone=small_cnn",
                                       "model.conditions.image.backbone.input_size=64"])
    assert cfg.model.conditions["image"].backbone.input_size == 64


def test_component_sets_add_edit_and_remove():
    cfg = Config.load(None, overrides=["losses.kp2d_all.weight=1e-3", "losses.mask=null",
                                       "model.conditions.diffpose.d_model=16"])
    assert list(cfg.losses) == ["nll", "mmd", "kp2d_mode", "betas", "orth", "kp2d_all"]
    assert cfg.losses["kp2d_all"].weight == 1e-3
    assert list(cfg.model.conditions) == ["image", "pose2d", "bbox", "diffpose"]
    # a list keeps configured entries and gives new ones their defaults
    cfg = cfg.override(["losses=[kp2d_all,nll]"])
    assert list(cfg.losses) == ["kp2d_all", "nll"] and cfg.losses["kp2d_all"].weight == 1e-3
    # a mapping in a file is the complete set, in its order
    cfg = Config.from_yaml("losses:\n  orth: {}\n  nll: {gt_noise_std: 0.0}\n")
    assert list(cfg.losses) == ["orth", "nll"] and cfg.losses["nll"].gt_noise_std == 0.0
    assert cfg.losses["orth"].weight == DEFAULT_WEIGHTS["orth"]


@pytest.mark.parametrize("override,valid", [
    ("model.flw=nice", "flow"), ("trian.lr=1", "train"), ("model.flow.hiden_features=3", "num_blocks"),
    ("losses.l2.weight=1", "kp2d_mode"),
    ("model.flow=nvp", "realnvp"),
])
def test_unknown_keys_list_the_valid_ones(override, valid):
    with pytest.raises(KeyError, match=valid):
        Config.load(None, overrides=[override])


def test_unknown_keys_in_files_and_dicts(tmp_path):
    with pytest.raises(KeyError, match=r"model\.flw.*flow"):
        Config.from_yaml("model:\n  flw: nice\n")
    with pytest.raises(KeyError, match="model, losses, data, train"):
        Config.from_dict({"optim": {}})
    with pytest.raises(FileNotFoundError):
        Config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1]\n")
    with pytest.raises(TypeError, match=r"bad\.yaml.*train\.lr"):
        Config.load(bad)


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=abc", "train.batch_size"), ("train.lr=[1]", "train.lr"),
    ("train.lr.x=1", "train.lr"),
    ("data.augment=1", "data.augment"), ("model.conditions=image", "model.conditions"),
    ("losses.mmd.weight=high", "losses.mmd.weight"), ("model.flow=[1]", "model.flow"),
])
def test_wrong_types_name_the_key(override, key):
    with pytest.raises(TypeError, match=key.replace(".", r"\.")):
        Config.load(None, overrides=[override])


def test_override_syntax_error():
    with pytest.raises(ValueError, match="section.key=value"):
        Config.load(None, overrides=["model.flow"])


@pytest.mark.parametrize("name", ["demo", "cpu", "paper"])
def test_shipped_configs_load(name):
    cfg = Config.load(CONFIGS / f"{name}.yaml")
    assert cfg.model.flow.name == "realnvp" and list(cfg.model.conditions) == ["image", "pose2d", "bbox"]
    assert set(cfg.losses) >= {"nll", "mmd", "mask"}
    if name == "paper":      # appendix A
        assert cfg.model.conditions["image"].backbone.name == "hrnet_w48"
        assert (cfg.train.batch_size, cfg.train.lr, cfg.train.max_steps) == (64, 1e-4, 400_000)
