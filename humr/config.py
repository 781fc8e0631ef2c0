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
* Dotted override values use OmegaConf's grammar (``1e-4`` is a float, ``[a,b]`` a list).

Example:
    >>> cfg = Config.load(None, overrides=["model.flow=nice", "model.flow.hidden_features=512",
    ...                                    "train.lr=3e-4", "losses=[nll,kp2d_mode]"])
    >>> cfg.model.flow.name, cfg.model.flow.hidden_features, cfg.train.lr, list(cfg.losses)
    ('nice', 512, 0.0003, ['nll', 'kp2d_mode'])
    >>> Config.from_yaml(cfg.to_yaml()) == cfg
    True
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import BooleanNode, DictConfig, FloatNode, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from omegaconf.tupleconfig import TupleConfig

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
    hints = _resolved_fields(base)
    if kind in ("flow", "backbone"):
        head = [("name", str, dataclasses.field(default=name))]
    elif kind == "loss":
        head = [(k, t, dataclasses.field(default=v)) for k, t, v in _loss_extras(name)]
    else:
        head = []
    clash = {h[0] for h in head} & set(hints)
    if clash:
        raise TypeError(f"{kind} '{name}': argument(s) {sorted(clash)} clash with config keys")
    body = [(f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory))
            for f in dataclasses.fields(base)]
    # named so that pickle finds it again through this module's __getattr__
    qualname = f"Entry__{kind}__{name}"
    return dataclasses.make_dataclass(qualname, head + body, namespace={"__module__": __name__})


def __getattr__(attr: str) -> Any:
    if attr.startswith("Entry__"):
        kind, _, name = attr[len("Entry__"):].partition("__")
        return _entry_class(kind, name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _resolved_fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def component(kind: str, name: str, **values: Any) -> DictConfig:
    """The structured config entry of component ``name`` of registry ``kind`` (``flow``,
    ``condition``, ``backbone``, ``loss``; ``head`` with name "") with its defaults, updated
    by ``values``."""
    node = OmegaConf.structured(_entry_class(kind, name))
    for key, value in values.items():
        _assign(node, key, value, f"{kind}:{name}.{key}")
    return node


def entry_kwargs(kind: str, entry: Any) -> dict[str, Any]:
    """The fields of a configured component (an entry object, dict or node) without ``name``
    and a loss's ``weight``: its constructor arguments (for a loss also the objective's
    options, which :meth:`humr.objective.Objective.from_config` takes out)."""
    data = _plain(entry)
    skip = {"name"}
    if kind == "loss":
        skip |= {"weight"}
    return {k: v for k, v in data.items() if k not in skip}


def _plain(value: Any) -> Any:
    """Plain Python containers of an entry (dataclass instance, DictConfig or mapping)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return OmegaConf.to_container(OmegaConf.structured(value))
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value)
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return [_lists(v) for v in value] if isinstance(value, list | tuple) else value


# ---------------------------------------------------------------------- sections
def _default_conditions() -> dict[str, Any]:
    return {"image": component("condition", "image"), "pose2d": component("condition", "pose2d"),
            "bbox": component("condition", "bbox")}


def _default_head() -> DictConfig:
    return OmegaConf.structured(_entry_class("head", ""))


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
    conditions: dict[str, Any] = field(default_factory=_default_conditions)
    head: Any = field(default_factory=_default_head)
    body_model: str = "procedural"
    model_type: str = "smpl"
    num_betas: int = 10


def _default_losses() -> dict[str, Any]:
    return {n: component("loss", n) for n in ("nll", "mmd", "mask", "kp2d_mode", "betas", "orth")}


#: The ``losses`` section: ``name -> entry`` (``weight`` and the loss's arguments, appendix A).
LossConfig = dict[str, Any]


def _default_augmentation() -> DictConfig:
    from humr.data.augment import Augmentation

    return OmegaConf.structured(Augmentation)


def _default_synth() -> DictConfig:
    from humr.data.synthetic import SynthConfig

    return OmegaConf.structured(SynthConfig)


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
    augmentation: Any = field(default_factory=_default_augmentation)
    synth: Any = field(default_factory=_default_synth)
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
    lr_schedule: str = "constant"   # or "cosine": warm-up then cosine decay to 0 at max_steps
    warmup_steps: int = 0
    batch_size: int = 64
    eval_batch_size: int = 32
    num_samples_train: int = 26
    num_samples_eval: int = 100
    max_steps: int = 400_000
    grad_clip: float = 1.0          # not in the paper; guards the NLL against spikes (0 = off)
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
    losses: dict[str, Any] = field(default_factory=_default_losses)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------- dict / YAML
    def node(self) -> DictConfig:
        """This config as an OmegaConf structured ``DictConfig`` (typed, key-checked)."""
        return OmegaConf.structured(self)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict of plain lists (YAML-serialisable, tuples as lists)."""
        return _lists(OmegaConf.to_container(self.node()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build from a (partial) nested dict over the defaults (see the module doc for the
        component rules); unknown keys raise a KeyError naming the valid ones, wrong types a
        TypeError naming the key."""
        node = OmegaConf.structured(cls)
        merge(node, data)
        return OmegaConf.to_object(node)

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`."""
        return OmegaConf.to_yaml(self.node(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "YAML text") -> Config:
        """Parse YAML text (an empty document gives the defaults)."""
        try:
            data = OmegaConf.create(text) if text.strip() else {}
        except OmegaConfBaseException as err:
            raise ValueError(f"{source}: not valid YAML ({err})") from None
        if isinstance(data, ListConfig):
            raise TypeError(f"{source}: a config YAML must hold a mapping, got a list")
        data = OmegaConf.to_container(data) if isinstance(data, DictConfig) else data
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

    # ----------------------------------------------------------------- overrides
    def override(self, overrides: Sequence[str] | Mapping[str, Any]) -> Config:
        """A copy with dotted-key overrides applied.

        Args:
            overrides: ``["model.flow=nice", "losses.mmd.weight=0.1"]`` (values in OmegaConf's
                grammar) or ``{"model.flow": "nice"}`` (values as given).
        """
        if isinstance(overrides, Mapping):
            items = list(overrides.items())
        else:
            items = []
            for item in overrides:
                if "=" not in item:
                    raise ValueError(f"override '{item}' must look like section.key=value")
                key, text = item.split("=", 1)
                value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={text}"]))["v"]
                items.append((key.strip(), value))
        if not items:
            return copy.deepcopy(self)
        node = self.node()
        for key, value in items:
            set_key(node, key, value)
        return OmegaConf.to_object(node)


# ---------------------------------------------------------------------- merge rules
_REGISTRIES: dict[str, Registry] = {"flow": FLOWS, "condition": CONDITIONS, "backbone": BACKBONES,
                                    "loss": LOSSES}


def _slot(path: str) -> tuple[str, str] | None:
    """``("one" | "set", registry kind)`` of a component slot path, else None."""
    parts = path.split(".")
    if path == "model.flow":
        return "one", "flow"
    if path == "model.conditions":
        return "set", "condition"
    if path == "losses":
        return "set", "loss"
    if len(parts) == 4 and parts[:2] == ["model", "conditions"] and parts[3] == "backbone":
        return "one", "backbone"
    return None


def _switch(old: DictConfig | None, kind: str, name: str) -> DictConfig:
    """A default entry of ``name``, keeping the old entry's non-default values of shared keys."""
    new = component(kind, name)
    if isinstance(old, DictConfig) and "name" in old and old.name in _REGISTRIES[kind]:
        default = component(kind, old.name)
        for key in new:
            if key != "name" and key in old and old[key] != default[key]:
                new[key] = old[key]
    return new


def _set_of(kind: str, old: DictConfig, value: Any, path: str) -> DictConfig:
    """A component set from a list of names or a complete mapping (see module doc)."""
    if isinstance(value, str) or not isinstance(value, Mapping | Sequence):
        raise TypeError(f"config key '{path}' expects a list of {kind} names or a mapping "
                        f"name -> arguments, got {value!r}")
    names = list(value)
    if len(set(names)) != len(names):
        raise ValueError(f"config key '{path}' repeats a name: {names}")
    out = {}
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"config key '{path}' expects {kind} names, got {name!r}")
        out[name] = old[name] if name in old else component(kind, name)
        if isinstance(value, Mapping) and value[name] is not None:
            merge(out[name], value[name], f"{path}.{name}")
    return OmegaConf.create(out)


def _assign(parent: DictConfig, key: str, value: Any, path: str) -> None:
    """``parent[key] = value`` with the component rules; errors name the full key."""
    full = path
    slot = _slot(full)
    try:
        if slot and slot[0] == "one":
            old = parent[key]
            if isinstance(value, str):
                parent[key] = _switch(old, slot[1], value)
            elif isinstance(value, Mapping):
                if "name" in value and value["name"] != old.get("name"):
                    parent[key] = _switch(old, slot[1], value["name"])
                merge(parent[key], {k: v for k, v in value.items() if k != "name"}, full)
            else:
                raise TypeError(f"config key '{full}' expects a {slot[1]} name or a mapping, "
                                f"got {value!r}")
        elif slot:
            parent[key] = _set_of(slot[1], parent[key], value, full)
        elif isinstance(value, Mapping) and isinstance(parent.get(key), DictConfig) \
                and OmegaConf.get_type(parent[key]) is not dict:
            merge(parent[key], value, full)
        else:
            parent[key] = _declared(parent, key, value, full)
    except ConfigKeyError:
        valid = ", ".join(str(k) for k in parent)
        where = full.rsplit(".", 1)[0] if "." in full else "config"
        raise KeyError(f"unknown config key '{full}'; valid keys of '{where}': {valid}") from None
    except ValidationError as err:
        raise TypeError(f"config key '{full}': {err.msg}") from None


def _declared(parent: DictConfig, key: str, value: Any, full: str) -> Any:
    """``value`` in the declared type of ``parent[key]`` where OmegaConf would convert it
    implicitly: list -> tuple, int -> float; anything but true / false for a bool is an error."""
    target = parent._get_node(key) if key in parent else None
    if isinstance(target, TupleConfig) and isinstance(value, list):
        return tuple(value)
    if isinstance(target, FloatNode) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(target, BooleanNode) and value is not None and not isinstance(value, bool):
        raise TypeError(f"config key '{full}' expects true or false, got {value!r}")
    return value


def merge(node: DictConfig, data: Mapping[str, Any], prefix: str = "") -> None:
    """Merge a nested mapping into a structured ``node`` in place (module doc rules)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"config section '{prefix or 'config'}' must be a mapping, got {data!r}")
    for key, value in data.items():
        _assign(node, str(key), value, f"{prefix}.{key}" if prefix else str(key))


def set_key(node: DictConfig, key: str, value: Any) -> None:
    """Apply one dotted override ``key = value`` to ``node`` in place: entries of component
    sets are added when absent, and ``None`` removes a set entry."""
    parts = key.split(".")
    parent, path = node, ""
    for i, part in enumerate(parts):
        full = f"{path}.{part}" if path else part
        last = i == len(parts) - 1
        slot = _slot(path) if path else None
        if slot and slot[0] == "set":                      # an entry of a component set
            if last and value is None:
                if part in parent:
                    del parent[part]
                return
            if part not in parent:
                try:
                    parent[part] = component(slot[1], part)
                except KeyError as err:
                    raise KeyError(f"config key '{full}': {err.args[0]}") from None
        if last:
            _assign(parent, part, value, full)
            return
        child = parent.get(part) if isinstance(parent, DictConfig) and part in parent else None
        if not isinstance(child, DictConfig):
            if child is None and part not in parent:
                _assign(parent, part, {}, full)             # raises: unknown key
            raise KeyError(f"config key '{full}' is not a section or mapping; cannot set '{key}'")
        parent, path = child, full
