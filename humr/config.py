"""Configuration of a run on OmegaConf structured configs: model, losses, data, training.

Layout (``humr train --config FILE key=value ...``; ``configs/*.yaml`` are complete examples)::

    model:
      flow: {name: realnvp, num_blocks: 8, hidden_features: 1024, ...}   # one humr.FLOWS entry
      conditions:                       # humr.CONDITIONS entries, concatenated in this order
        image: {backbone: {name: hrnet_w48, frozen: true, ...}}           # a humr.BACKBONES entry
        pose2d: {hidden: 512, out_dim: 256, ...}
        bbox: {}
      head: {hidden: 1024, num_layers: 2, dropout: 0.1, init_scale: 0.9}
      body_model: procedural            # or a folder / file of SMPL / SMPL-X
      model_type: smpl
      num_betas: 10
    losses:                             # humr.LOSSES entries: weight + the loss's arguments
      nll: {weight: 0.1, gt_noise_std: 0.005}
      mmd: {weight: 0.05, n: 25, ...}
    data: {root: ..., augment: true, augmentation: {...}, synth: {...}}
    train: {lr: 1.0e-4, batch_size: 64, ...}

Every component has one configuration dataclass, registered with it
(:meth:`humr.registry.Registry.config`: the ``config=`` of ``register`` or the constructor's
keyword arguments), so keys and types are checked by OmegaConf. Rules:

* A component slot (``model.flow``, ``model.conditions.<name>.backbone``) takes a name
  (``model.flow=glow``) or a mapping (with ``name`` to switch). Switching keeps the values the
  old entry had changed from its defaults where the new component has the same argument
  (``model.flow.num_blocks=4 model.flow=nice`` keeps 4 blocks).
* A component set (``model.conditions``, ``losses``) is given in YAML or a dict as a complete
  mapping ``name -> arguments`` (order = order of use) or as a list of names (default
  arguments, entries already configured kept). A dotted override edits one entry, adding it
  when absent (``losses.kp2d_all.weight=1e-3``); ``losses.mask=null`` removes it.
* Dotted override values use OmegaConf's grammar (``1e-4`` is a float, ``[a,b]`` a list);
  a value may be an interpolation (``data.synth.num_betas=${model.num_betas}``), resolved
  when the config is built.

Files, dicts and overrides take one path: the component rules above are applied to the data,
then OmegaConf's merge checks keys and types (its errors are re-raised as KeyError listing the
valid keys, or TypeError, both naming the full key).

Example:
    >>> cfg = Config.load(None, overrides=["model.flow=nice", "model.flow.hidden_features=512",
    ...                                    "train.lr=3e-4", "losses=[nll,kp2d_mode]"])
    >>> cfg.model.flow.name, cfg.model.flow.hidden_features, cfg.train.lr, list(cfg.losses)
    ('nice', 512, 0.0003, ['nll', 'kp2d_mode'])
    >>> Config.from_yaml(cfg.to_yaml()) == cfg
    True
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import BooleanNode, DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    ConfigTypeError,
    OmegaConfBaseException,
    ValidationError,
)

from humr.registry import (
    BACKBONES,
    CONDITIONS,
    FLOWS,
    LOSSES,
    Registry,
    config_dataclass,
)

__all__ = ["Config", "DataConfig", "LossConfig", "ModelConfig", "TrainConfig", "component"]


# ---------------------------------------------------------------------- component entries
def _loss_extras(name: str) -> list[tuple[str, Any, Any]]:
    """``weight`` (default :data:`humr.losses.DEFAULT_WEIGHTS`, else 1.0) and the options the
    objective applies itself (:data:`humr.objective.OBJECTIVE_OPTIONS`)."""
    from humr.losses import DEFAULT_WEIGHTS
    from humr.objective import OBJECTIVE_OPTIONS

    extras = [("weight", float, float(DEFAULT_WEIGHTS.get(name, 1.0)))]
    return extras + [(k, type(v), v) for k, v in OBJECTIVE_OPTIONS.get(name, {}).items()]


def _entry_class(kind: str, name: str) -> type:
    """Dataclass of one configured component: ``name`` (single slots) or ``weight`` + the
    objective's options (losses) followed by the component's registered configuration
    (cached per registered constructor, so a re-registered name gets a new entry class)."""
    owner = None if kind == "head" else _REGISTRIES[kind].get(name)
    return _make_entry_class(kind, name, owner)


@functools.cache
def _make_entry_class(kind: str, name: str, owner: Any) -> type:
    if kind == "head":
        from humr.head import ShapeCameraHead

        base = config_dataclass("head", ShapeCameraHead, ("in_dim", "num_betas"))
    else:
        base = _REGISTRIES[kind].config(name)
    extras = ([("name", str, name)] if kind in ("flow", "backbone")
              else _loss_extras(name) if kind == "loss" else [])
    hints = typing.get_type_hints(base)
    clash = {k for k, _, _ in extras} & set(hints)
    if clash:
        raise TypeError(f"{kind} '{name}': argument(s) {sorted(clash)} clash with config keys")
    fields = [(k, t, field(default=v)) for k, t, v in extras] + [
        (f.name, hints[f.name], field(default=f.default, default_factory=f.default_factory))
        for f in dataclasses.fields(base)]
    # named so that pickle finds it again through this module's __getattr__
    return dataclasses.make_dataclass(f"Entry__{kind}__{name}", fields,
                                      namespace={"__module__": __name__})


def __getattr__(attr: str) -> Any:
    if attr.startswith("Entry__"):
        kind, _, name = attr[len("Entry__"):].partition("__")
        return _entry_class(kind, name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def component(kind: str, name: str, **values: Any) -> DictConfig:
    """The structured config entry of component ``name`` of registry ``kind`` (``flow``,
    ``condition``, ``backbone``, ``loss``; ``head`` with name "") with its defaults, updated
    by ``values``."""
    node = OmegaConf.structured(_entry_class(kind, name))
    with _errors(f"{kind}:{name}"):
        node.merge_with(values)
    return node


def entry_kwargs(kind: str, entry: Any) -> dict[str, Any]:
    """The fields of a configured component (an entry object, dict or node) without ``name``
    and a loss's ``weight``: its constructor arguments (for a loss also the objective's
    options, which :meth:`humr.objective.Objective.from_config` takes out)."""
    skip = ("name", "weight") if kind == "loss" else ("name",)
    return {k: v for k, v in _plain(entry).items() if k not in skip}


def _plain(value: Any) -> dict[str, Any]:
    """Plain Python containers of a dataclass instance, DictConfig or mapping."""
    return OmegaConf.to_container(OmegaConf.create(value))


# ---------------------------------------------------------------------- sections
def _entries(kind: str, *names: str) -> Callable[[], Any]:
    """``default_factory`` of a component set (``name -> entry``), or of the ``head`` entry."""
    if kind == "head":
        return lambda: OmegaConf.structured(_entry_class("head", ""))
    return lambda: {n: component(kind, n) for n in names}


def _imported(path: str) -> Callable[[], DictConfig]:
    """``default_factory`` of the dataclass ``module:Class``, imported when first used (so that
    importing this module stays light)."""
    module, name = path.split(":")
    return lambda: OmegaConf.structured(getattr(importlib.import_module(module), name))


@dataclass
class ModelConfig:
    """The model of section 4.1.

    Attributes:
        flow: a ``humr.FLOWS`` entry (``name`` + arguments; 8 blocks of width 1024, appendix A).
        conditions: ``humr.CONDITIONS`` entries, concatenated in this order.
        head: arguments of :class:`humr.head.ShapeCameraHead` (betas / camera MLP).
        body_model: "procedural" or a folder / file of SMPL / SMPL-X.
        model_type: "smpl" or "smplx".
        num_betas: shape coefficients.
    """

    flow: Any = field(default_factory=lambda: component("flow", "realnvp"))
    conditions: dict[str, Any] = field(
        default_factory=_entries("condition", "image", "pose2d", "bbox"))
    head: Any = field(default_factory=_entries("head"))
    body_model: str = "procedural"
    model_type: str = "smpl"
    num_betas: int = 10


#: The ``losses`` section: ``name -> entry`` (``weight`` and the loss's arguments, appendix A).
LossConfig = dict[str, Any]


@dataclass
class DataConfig:
    """Dataset folder, its format, training augmentation (:class:`humr.data.augment.Augmentation`
    parameters) and the synthetic benchmark's parameters
    (:class:`humr.data.synthetic.SynthConfig`, used when ``root`` has to be generated).

    ``format``: "humr" (a folder written by ``humr synth``) or "official" (the paper's data
    release, ``root`` = its data folder, :mod:`humr.data.official_release`); with "official",
    ``train_splits`` (empty = the official training mix) and ``crop_res`` (crop side, px).
    """

    root: str = "data/synthetic"
    augment: bool = True
    augmentation: Any = field(default_factory=_imported("humr.data.augment:Augmentation"))
    synth: Any = field(default_factory=_imported("humr.data.synthetic:SynthConfig"))
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
    # False: the paper's coupled L2 (wd * w added to the gradient, so Adam moves every weight
    # with a small loss gradient toward 0 by about lr per step); True: AdamW's decay
    # (w <- w - lr * wd * w, apart from the gradient)
    decoupled_weight_decay: bool = False
    lr_schedule: str = "constant"   # or "cosine": warm-up then cosine decay to 0 at max_steps
    warmup_steps: int = 0
    batch_size: int = 64
    eval_batch_size: int = 32
    num_samples_train: int = 26
    num_samples_eval: int = 100
    max_steps: int = 400_000
    grad_clip: float = 1.0          # not in the paper; guards the NLL against spikes (0 = off)
    flush_denormals_every: int = 100  # CPU: zero subnormal weights every N steps (0 = off)
    seed: int = 0
    precision: str = "32-true"
    num_workers: int = 2
    val_every: int = 5000
    val_batches: float = 1.0
    val_examples: int | None = None
    ckpt_every: int = 5000
    monitor: str = "val/emdb/mpjpe_min"
    monitor_mode: str = "min"


@dataclass
class Config:
    """The whole configuration: ``model``, ``losses``, ``data``, ``train`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    losses: dict[str, Any] = field(default_factory=_entries(
        "loss", "nll", "mmd", "mask", "kp2d_mode", "betas", "orth"))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------- dict / YAML
    def node(self) -> DictConfig:
        """This config as an OmegaConf structured ``DictConfig`` (typed, key-checked)."""
        return OmegaConf.structured(self)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict of plain lists (YAML-serialisable, tuples as lists)."""
        return yaml.safe_load(self.to_yaml())

    @classmethod
    def from_dict(cls, *parts: Mapping[str, Any]) -> Config:
        """Build from (partial) nested dicts merged in order over the defaults (see the module
        doc for the component rules); unknown keys raise a KeyError naming the valid ones,
        wrong types a TypeError naming the key."""
        node = OmegaConf.structured(cls)
        for data in parts:
            _merge(node, data)
        return OmegaConf.to_object(node)

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return OmegaConf.to_yaml(self.node(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "YAML text") -> Config:
        """Parse YAML text (an empty document gives the defaults)."""
        try:
            data = OmegaConf.to_container(OmegaConf.create(text)) if text.strip() else {}
        except OmegaConfBaseException as err:
            raise ValueError(f"{source}: not valid YAML ({err})") from None
        if isinstance(data, list):
            raise TypeError(f"{source}: a config YAML must hold a mapping, got a list")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as err:
            raise type(err)(f"{source}: {err.args[0] if err.args else err}") from None

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_yaml` to ``path`` atomically (temp file in the same folder)."""
        from humr.io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_yaml())
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
        elif isinstance(source, Mapping | DictConfig):
            cfg = cls.from_dict(_plain(source))
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"config file {path} does not exist")
            cfg = cls.from_yaml(path.read_text(), source=str(path))
        return cfg.override(overrides or [])

    def override(self, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
        """A copy with dotted-key overrides applied in order (module doc rules).

        Args:
            overrides: ``["model.flow=nice", "losses.mmd.weight=0.1"]`` (values in OmegaConf's
                grammar) or ``{"model.flow": "nice"}`` (values as given).
        """
        items = list(overrides.items()) if isinstance(overrides, Mapping) else overrides
        node = self.node()
        for item in items:
            if isinstance(item, tuple):                      # key, value
                data = functools.reduce(lambda v, k: {k: v}, reversed(item[0].split(".")), item[1])
            elif "=" in item:
                data = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
            else:
                raise ValueError(f"override '{item}' must look like section.key=value")
            _merge(node, data, edit=True)
        return OmegaConf.to_object(node)


# ---------------------------------------------------------------------- component rules
# Component slots (a registry entry whose class depends on its name) and component sets
# (name -> entry, in order of use): OmegaConf cannot change a node's structured type, so these
# are prepared here; keys, types and conversions are OmegaConf's merge.
_REGISTRIES: dict[str, Registry] = {"flow": FLOWS, "condition": CONDITIONS, "backbone": BACKBONES,
                                    "loss": LOSSES}
_SLOTS = {r"model\.flow": ("one", "flow"), r"model\.conditions": ("set", "condition"),
          r"model\.conditions\.[^.]+\.backbone": ("one", "backbone"), r"losses": ("set", "loss")}


def _slot(path: str) -> tuple[str, str] | None:
    """``("one" | "set", registry kind)`` of a component slot path, else None."""
    return next((v for pattern, v in _SLOTS.items() if re.fullmatch(pattern, path)), None)


def _switch(old: DictConfig, kind: str, name: str) -> DictConfig:
    """A default entry of ``name``, keeping the old entry's non-default values of shared keys."""
    new = component(kind, name)
    if old.get("name") in _REGISTRIES[kind]:
        default = component(kind, old.name)
        for key in new:
            if key != "name" and key in old and old[key] != default[key]:
                new[key] = old[key]
    return new


def _prepare(node: DictConfig, data: Any, path: str, edit: bool) -> dict[str, Any]:
    """``data`` made ready for ``OmegaConf.merge`` into ``node``: component slots of ``node``
    switched and component sets rebuilt in place (module doc rules; ``edit``: a dotted
    override, whose set entries are added / edited / removed (None) one by one)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"config section '{path or 'config'}' must be a mapping, got {data!r}")
    out = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        slot = _slot(full) if key in node else None
        child = node._get_node(key) if key in node else None
        if slot and slot[0] == "one":
            value = {"name": value} if isinstance(value, str) else value
            if not isinstance(value, Mapping):
                raise TypeError(f"config key '{full}' expects a {slot[1]} name or a mapping, "
                                f"got {value!r}")
            if value.get("name", node[key].name) != node[key].name:
                node[key] = _switch(node[key], slot[1], value["name"])
            value = _prepare(node[key], {k: v for k, v in value.items() if k != "name"}, full, edit)
        elif slot:
            node[key], value = _set_of(slot[1], node[key], value, full, edit)
        elif isinstance(value, Mapping) and isinstance(child, DictConfig):
            value = _prepare(child, value, full, edit)
        elif isinstance(child, BooleanNode) and not isinstance(value, bool | None):
            raise TypeError(f"config key '{full}' expects true or false, got {value!r}")
        out[key] = value
    return out


def _set_of(kind: str, old: DictConfig, value: Any, path: str, edit: bool
            ) -> tuple[DictConfig, dict[str, Any]]:
    """A component set (the new node and the values to merge into it) from a list of names (in
    this order, configured entries kept), a complete mapping ``name -> arguments`` or, with
    ``edit``, a mapping of entries to add / edit / remove (None)."""
    if isinstance(value, str) or not isinstance(value, Mapping | Sequence):
        raise TypeError(f"config key '{path}' expects a list of {kind} names or a mapping "
                        f"name -> arguments, got {value!r}")
    values = dict(value) if isinstance(value, Mapping) else dict.fromkeys(value)
    if not all(isinstance(n, str) for n in values):
        raise TypeError(f"config key '{path}' expects {kind} names, got {list(value)}")
    if len(values) != len(value):
        raise ValueError(f"config key '{path}' repeats a name: {list(value)}")
    if edit and isinstance(value, Mapping):
        names = [n for n in old if values.get(n, {}) is not None]
        names += [n for n, v in values.items() if n not in old and v is not None]
    else:
        names = list(values)
    out = {}
    for name in names:
        try:
            out[name] = old[name] if name in old else component(kind, name)
        except KeyError as err:
            raise KeyError(f"config key '{path}.{name}': {err.args[0]}") from None
    prepared = {n: _prepare(out[n], values[n], f"{path}.{n}", edit)
                for n in names if values.get(n) is not None}
    return OmegaConf.create(out), prepared


@contextlib.contextmanager
def _errors(where: str = ""):
    """OmegaConf's errors as KeyError (unknown key, listing the valid ones) and TypeError
    (wrong type), both naming the full key."""
    try:
        yield
    except ConfigKeyError as err:
        full = f"{where}.{err.full_key}" if where else err.full_key
        valid = ", ".join(str(k) for k in err.parent_node or ())
        section = full.rsplit(".", 1)[0] if "." in full else "config"
        raise KeyError(f"unknown config key '{full}'; valid keys of '{section}': {valid}") from None
    except (ValidationError, ConfigTypeError) as err:
        full = f"{where}.{err.full_key}" if where else err.full_key
        raise TypeError(f"config key '{full}': {err.msg}") from None


def _merge(node: DictConfig, data: Mapping[str, Any], edit: bool = False) -> DictConfig:
    """``node`` (structured, changed in place) merged with a nested mapping (module doc rules)."""
    with _errors():
        node.merge_with(_prepare(node, data, "", edit))
    return node
