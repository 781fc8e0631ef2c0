"""Dataclass configuration of a run (model, losses, data, training) <-> YAML.

Every ablation row is a :class:`Config`; ``Config.load(path, overrides=["model.flow=nice"])``
reads a YAML file and applies dotted ``key=value`` overrides (values parsed as YAML, e.g.
``model.conditions=[image,bbox]``, ``losses.weights.mmd=0.1``). Unknown keys raise a KeyError
listing the valid ones; values are converted to the field's type (``1e-4`` -> float).

Example:
    >>> cfg = Config.load(None, overrides=["model.flow=nice", "train.lr=3e-4"])
    >>> cfg.model.flow, cfg.train.lr
    ('nice', 0.0003)
    >>> Config.from_yaml(cfg.to_yaml()) == cfg
    True
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from humr.losses import DEFAULT_WEIGHTS

__all__ = ["Config", "DataConfig", "LossConfig", "ModelConfig", "TrainConfig", "parse_value"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.2; PyYAML's 1.1 rules need a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?$|^[-+]?\d+[eE][-+]?\d+$"
               r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """Parse an override value as YAML (``[a,b]`` -> list, ``1e-4`` -> float, ``null`` -> None)."""
    return yaml.load(text, Loader=_Loader)


@dataclass
class ModelConfig:
    """The model of section 4.1.

    Attributes:
        flow: ``humr.FLOWS`` name (``nice``, ``realnvp``, ``glow``).
        flow_blocks, flow_hidden: coupling blocks and subnet width (8 and 1024, appendix A).
        flow_kwargs: further flow arguments (``dropout``, ``alpha``, ``factorized``, ``seed``).
        conditions: ``humr.CONDITIONS`` names, concatenated in this order.
        condition_kwargs: ``name -> kwargs`` of each conditioner.
        backbone, backbone_kwargs: ``humr.BACKBONES`` name and arguments of the ``image``
            conditioner.
        body_model: "procedural" or a folder / file of SMPL / SMPL-X.
        model_type: "smpl" or "smplx".
        num_betas: shape coefficients.
        head_hidden, head_layers, head_dropout: MLP of the betas / camera head.
        init_cam_scale: initial weak-perspective scale s of the head.
    """

    flow: str = "realnvp"
    flow_blocks: int = 8
    flow_hidden: int = 1024
    flow_kwargs: dict[str, Any] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=lambda: ["image", "pose2d", "bbox"])
    condition_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    backbone: str = "hrnet_w48"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    body_model: str = "procedural"
    model_type: str = "smpl"
    num_betas: int = 10
    head_hidden: int = 1024
    head_layers: int = 2
    head_dropout: float = 0.1
    init_cam_scale: float = 0.9


@dataclass
class LossConfig:
    """Enabled losses (``humr.LOSSES`` names), their weights (default
    :data:`humr.losses.DEFAULT_WEIGHTS`, appendix A) and ``name -> kwargs``."""

    names: list[str] = field(default_factory=lambda: ["nll", "mmd", "mask", "kp2d_mode", "betas", "orth"])
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def weight(self, name: str) -> float:
        """Weight of loss ``name`` (``weights``, else the default); unknown names raise."""
        if name in self.weights:
            return float(self.weights[name])
        if name in DEFAULT_WEIGHTS:
            return float(DEFAULT_WEIGHTS[name])
        raise KeyError(f"no weight for loss '{name}'; set losses.weights.{name}")


@dataclass
class DataConfig:
    """Dataset folder and training augmentation.

    ``format``: "humr" (a folder written by ``humr synth``) or "official" (the paper's data
    release, ``root`` = its data folder, :mod:`humr.data.official_release`); with "official",
    ``train_splits`` (empty = the official training mix) and ``crop_res`` (crop side, px).
    """

    root: str = "data/synthetic"
    augment: bool = True
    format: str = "humr"
    train_splits: list[str] = field(default_factory=list)
    crop_res: int = 224


@dataclass
class TrainConfig:
    """Optimisation (appendix A: Adam, lr 1e-4, weight decay 1e-4, batch 64, 400K steps),
    hypotheses per image (26 in training = mode + 25 for the MMD, 100 in evaluation),
    validation / checkpoint cadence and repeatability."""

    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 64
    eval_batch_size: int = 32
    num_samples_train: int = 26
    num_samples_eval: int = 100
    max_steps: int = 400_000
    grad_clip: float = 1.0          # not in the paper; guards the NLL against spikes (0 = off)
    seed: int = 0
    precision: str = "32-true"
    freeze_backbone: bool = False   # hrnet_w48 freezes itself (its ``frozen`` argument)
    num_workers: int = 2
    val_every: int = 5000
    val_batches: float = 1.0
    val_examples: int | None = None
    ckpt_every: int = 5000
    monitor: str = "val/emdb/mpjpe_min"
    monitor_mode: str = "min"


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` converted to the annotated type ``hint`` (ints -> floats, YAML text numbers)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):         # X | None
        return None if value is None else _coerce(value, next(a for a in args if a is not type(None)), key)
    ok = {
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, (str, Path)),
        list: lambda v: isinstance(v, (list, tuple)),
        dict: lambda v: isinstance(v, Mapping),
    }[origin or hint]
    if not ok(value):
        raise TypeError(f"config key '{key}' expects {getattr(hint, '__name__', hint)}, got {value!r}")
    if origin is list:
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        return {str(k): _coerce(v, args[1], f"{key}.{k}") if args[1] is not Any else copy.deepcopy(v)
                for k, v in value.items()}
    return (origin or hint)(value)


def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = _fields(cls)
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise KeyError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                       f"valid keys of '{prefix.rstrip('.') or 'config'}': {', '.join(hints)}")
    kwargs = {}
    for k, v in data.items():
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, Mapping):
                raise TypeError(f"config section '{prefix}{k}' must be a mapping, got {v!r}")
            kwargs[k] = _build(hints[k], v, f"{prefix}{k}.")
        else:
            kwargs[k] = _coerce(v, hints[k], prefix + k)
    return cls(**kwargs)


@dataclass
class Config:
    """The whole configuration: ``model``, ``losses``, ``data``, ``train`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------- dict / YAML
    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (YAML-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a (partial) nested dict; missing keys keep their defaults, unknown keys
        raise a KeyError listing the valid ones, values are converted to the field types."""
        return _build(cls, data, "")

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Config:
        """Parse YAML text (an empty document gives the defaults)."""
        data = yaml.load(text, Loader=_Loader) or {}
        if not isinstance(data, Mapping):
            raise TypeError(f"a config YAML must hold a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path``."""
        path = Path(path)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def load(cls, source: Config | Mapping[str, Any] | str | Path | None = None,
             overrides: Sequence[str] | Mapping[str, Any] | None = None) -> Config:
        """A config from defaults (None), a Config (copied), a dict or a YAML file, then
        :meth:`override`."""
        if source is None:
            cfg = cls()
        elif isinstance(source, Config):
            cfg = copy.deepcopy(source)
        elif isinstance(source, Mapping):
            cfg = cls.from_dict(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"config file {path} does not exist")
            cfg = cls.from_yaml(path.read_text())
        return cfg.override(overrides or [])

    # ----------------------------------------------------------------- overrides
    def override(self, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
        """A copy with dotted-key overrides applied.

        Args:
            overrides: ``["model.flow=nice", "losses.weights.mmd=0.1"]`` (values parsed as
                YAML) or ``{"model.flow": "nice"}`` (values as given). Keys below a dict field
                (``weights``, ``*_kwargs``) create nested entries.
        """
        if isinstance(overrides, Mapping):
            items = list(overrides.items())
        else:
            items = []
            for item in overrides:
                if "=" not in item:
                    raise ValueError(f"override '{item}' must look like section.key=value")
                key, text = item.split("=", 1)
                items.append((key.strip(), parse_value(text)))
        data = self.to_dict()
        for key, value in items:
            parts = key.split(".")
            node, cls, where = data, type(self), ""
            for i, part in enumerate(parts):
                hints = _fields(cls) if cls is not None else None
                if hints is not None and part not in hints:
                    raise KeyError(f"unknown config key '{key}'; valid keys of "
                                   f"'{where.rstrip('.') or 'config'}': {', '.join(hints)}")
                last = i == len(parts) - 1
                if last:
                    node[part] = value
                elif hints is not None and dataclasses.is_dataclass(hints[part]):
                    node, cls = node[part], hints[part]
                elif hints is None or typing.get_origin(hints[part]) is dict:
                    node, cls = node.setdefault(part, {}), None
                else:
                    raise KeyError(f"config key '{where}{part}' is not a section or mapping; "
                                   f"cannot set '{key}'")
                where += part + "."
        return type(self).from_dict(data)
