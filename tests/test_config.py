"""Configuration: YAML round trips, typed dotted overrides, helpful errors."""
from __future__ import annotations

import pytest
import yaml

from humr.config import Config, LossConfig, parse_value
from humr.losses import DEFAULT_WEIGHTS


def test_defaults_follow_the_paper():
    cfg = Config()
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.batch_size) == (1e-4, 1e-4, 64)
    assert (cfg.train.num_samples_train, cfg.train.num_samples_eval) == (26, 100)
    assert (cfg.model.flow, cfg.model.flow_blocks, cfg.model.flow_hidden) == ("realnvp", 8, 1024)
    assert cfg.model.backbone == "hrnet_w48"
    assert cfg.losses.names == ["nll", "mmd", "mask", "kp2d_mode", "betas", "orth"]
    assert {n: cfg.losses.weight(n) for n in cfg.losses.names} == {
        "nll": 1e-1, "mmd": 5e-2, "mask": 1e-1, "kp2d_mode": 1e-2, "betas": 5e-4, "orth": 1e-1}


def test_yaml_round_trip(tmp_path):
    cfg = Config.load(None, overrides=[
        "model.flow=glow", "model.conditions=[image,diffpose]", "model.condition_kwargs.diffpose.num_samples=16",
        "model.flow_kwargs={dropout: 0.1}", "losses.weights.mmd=2e-2", "train.val_examples=7",
        "data.augment=false", "data.root=/tmp/x y"])
    text = cfg.to_yaml()
    assert Config.from_yaml(text) == cfg
    assert yaml.safe_load(text) == cfg.to_dict()           # plain YAML, readable by anything
    assert Config.load(cfg.save(tmp_path / "c.yaml")) == cfg
    assert Config.load(cfg.to_dict()) == cfg and Config.load(cfg) == cfg
    assert Config.load(cfg) is not cfg
    assert Config.from_yaml("") == Config()


def test_overrides_are_typed():
    cfg = Config.load(None, overrides=["train.lr=1e-3", "train.batch_size=8", "data.augment=false",
                                       "model.conditions=[bbox, pose2d]", "train.grad_clip=2",
                                       "losses.kwargs.mmd={estimator: biased}", "train.val_examples=null"])
    assert cfg.train.lr == float("1e-3") and isinstance(cfg.train.lr, float)
    assert cfg.train.batch_size == 8 and isinstance(cfg.train.batch_size, int)
    assert cfg.data.augment is False and cfg.model.conditions == ["bbox", "pose2d"]
    assert isinstance(cfg.train.grad_clip, float) and cfg.train.grad_clip == 2.0
    assert cfg.losses.kwargs == {"mmd": {"estimator": "biased"}} and cfg.train.val_examples is None
    # mapping overrides keep values as given; the original is untouched
    base = Config()
    new = base.override({"model.flow": "nice", "losses.weights.mask": 1})
    assert new.model.flow == "nice" and new.losses.weights["mask"] == 1.0 and base.model.flow == "realnvp"


def test_yaml_floats_without_a_dot():
    assert parse_value("1e-4") == float("1e-4") and yaml.safe_load("1e-4") == "1e-4"
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("2.5E+3") == 2500.0 and parse_value("abc") == "abc"
    assert Config.from_yaml("train:\n  lr: 5e-5\n").train.lr == 5e-5


@pytest.mark.parametrize("override,valid", [
    ("model.flw=nice", "flow"), ("trian.lr=1", "train"), ("losses.name=[nll]", "names"),
    ("train.lr.x=1", "not a section"),
])
def test_unknown_keys_list_the_valid_ones(override, valid):
    with pytest.raises(KeyError, match=valid):
        Config.load(None, overrides=[override])


def test_unknown_keys_in_files_and_dicts(tmp_path):
    with pytest.raises(KeyError, match=r"model\.flw.*flow_blocks"):
        Config.from_yaml("model:\n  flw: nice\n")
    with pytest.raises(KeyError, match="model, losses, data, train"):
        Config.from_dict({"optim": {}})
    with pytest.raises(FileNotFoundError):
        Config.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=abc", "train.batch_size"), ("train.lr=[1]", "train.lr"),
    ("data.augment=1", "data.augment"), ("model.conditions=image", "model.conditions"),
    ("losses.weights.mmd=high", "losses.weights.mmd"), ("train=3", "train"),
])
def test_wrong_types_name_the_key(override, key):
    with pytest.raises(TypeError, match=key.replace(".", r"\.")):
        Config.load(None, overrides=[override])


def test_override_syntax_error():
    with pytest.raises(ValueError, match="section.key=value"):
        Config.load(None, overrides=["model.flow"])


def test_loss_weights_fall_back_to_defaults():
    losses = LossConfig(weights={"nll": 2.0})
    assert losses.weight("nll") == 2.0 and losses.weight("mask") == DEFAULT_WEIGHTS["mask"]
    with pytest.raises(KeyError, match="losses.weights.custom"):
        losses.weight("custom")

