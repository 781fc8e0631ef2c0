"""Ablation presets: one YAML file per table row and one per compute size.

Layout (``benchmarks/ablation/``)::

    sizes/<size>.yaml        a compute size (``cpu``, ``paper``)
    <table>/<k>_<row>.yaml   the rows of a table (``table3``, ``s2``), ordered by ``k``

A row file::

    label: "+ RealNVP"                 # the row's name in the paper's table
    paper: {3dpw/mpjpe_min: 48.1, ...} # the paper's numbers of the row (metric key -> value)
    effects:                           # optional: the paper's claims about this row's change
      - {claim: "RealNVP beats NICE", against: pose2d, metric: 3dpw/mpjpe_min, expect: lower}
    config:                            # a partial humr.config.Config: what the row changes
      model: {flow: realnvp, conditions: [image, bbox, pose2d]}
      losses: [nll, kp2d_mode, betas, orth]         # or {nll: {}, kp2d_all: {weight: 1.0e-3}}

A size file::

    label: "CPU-sized: ..."
    data: {n_train: 1024, n_test: 128, seed: 0}   # synthetic benchmark to generate if missing
    config: {model: {...}, train: {...}}          # a partial Config: network and schedule sizes
    # config: {data: {synth: {crop_res: 96}}} sets the generator of that benchmark

The configuration of a run is the defaults, merged with the size, then the row, then the run's
seed and data folder (:func:`run_config`; config merges with the rules of :mod:`humr.config`:
a flow switched by the row keeps the size's block count and width, a list of conditioners
keeps the size's image backbone). Every key is checked by the structured config, so a typo in
a preset names the file and the key. The rows of a table share one dataset: its generator is
the ``data.synth`` section of the size merged with the overrides (:func:`size_config`), and a
row may not change it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from humr.ablation.stats import Effect
from humr.config import Config
from humr.resources import benchmarks_dir

__all__ = ["Row", "Size", "load_row", "load_size", "load_table", "presets_dir",
           "run_config", "size_config", "table_names"]


@dataclass
class Row:
    """One row of an ablation table (see module doc)."""

    name: str
    label: str
    config: dict[str, Any]
    paper: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    effects: tuple[Effect, ...] = ()


@dataclass
class Size:
    """A compute size: the synthetic data to generate and the network / schedule sizes."""

    name: str
    label: str
    data: dict[str, int]
    config: dict[str, Any]
    path: Path | None = None


def presets_dir(override: str | Path | None = None) -> Path:
    """``benchmarks/ablation`` of the source checkout, or ``override``."""
    path = Path(override) if override is not None else benchmarks_dir() / "ablation"
    if not path.is_dir():
        raise FileNotFoundError(f"ablation presets folder {path} does not exist")
    return path


def _read(path: Path, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    """A preset file's mapping, its keys checked; the config part validated as a Config."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, Mapping):
        raise TypeError(f"{path}: a preset must be a mapping with keys {', '.join(required)}")
    missing = [k for k in required if k not in data]
    unknown = [k for k in data if k not in required + optional]
    if missing or unknown:
        raise ValueError(f"{path}: missing keys {missing}, unknown keys {unknown}; a preset "
                         f"has {', '.join(required)} and optionally {', '.join(optional)}")
    try:
        Config.from_dict(data["config"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: invalid 'config': {err}") from None
    return dict(data)


def load_row(path: str | Path) -> Row:
    """A row preset; its name is the file name without the ``<k>_`` order prefix."""
    path = Path(path)
    data = _read(path, ("label", "config"), ("paper", "effects"))
    paper = {str(k): float(v) for k, v in (data.get("paper") or {}).items()}
    name = re.sub(r"^\d+_", "", path.stem)
    effects = tuple(_effect(e, name, path) for e in data.get("effects") or ())
    return Row(name, str(data["label"]), dict(data["config"]), paper, path, effects)


def _effect(item: Any, row: str, path: Path) -> Effect:
    """One ``effects:`` item of a row file: ``{claim, against, metric, expect[, margin,
    lower_is_better]}`` (``against`` names the base row)."""
    keys = {"claim", "against", "metric", "expect", "margin", "lower_is_better"}
    if not isinstance(item, Mapping) or not {"claim", "against", "metric", "expect"} <= set(item) \
            or set(item) - keys:
        raise ValueError(f"{path}: each item of 'effects' needs claim, against, metric and "
                         f"expect (optional margin, lower_is_better), got {item!r}")
    try:
        return Effect(str(item["claim"]), str(item["against"]), row, str(item["metric"]),
                      str(item["expect"]), bool(item.get("lower_is_better", True)),
                      float(item.get("margin", 0.0)))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def table_names(root: str | Path | None = None) -> list[str]:
    """Tables with presets (folders of ``root`` holding row files, ``sizes`` excluded)."""
    base = presets_dir(root)
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and p.name != "sizes" and any(p.glob("*.yaml")))


def load_table(table: str, root: str | Path | None = None) -> list[Row]:
    """The rows of ``table`` in file order (``1_baseline.yaml``, ``2_bbox.yaml``, ...)."""
    folder = presets_dir(root) / table
    files = sorted(folder.glob("*.yaml"), key=lambda p: (int(p.stem.split("_")[0])
                                                          if p.stem.split("_")[0].isdigit()
                                                          else 1 << 30, p.stem))
    if not files:
        raise KeyError(f"unknown ablation table '{table}'; known tables: "
                       f"{', '.join(table_names(root)) or '(none)'}")
    rows = [load_row(p) for p in files]
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"{folder}: row names repeat: {names}")
    for row in rows:
        for effect in row.effects:
            if effect.base not in names:
                raise ValueError(f"{row.path}: effect {effect.claim!r} is against row "
                                 f"'{effect.base}', which table '{table}' does not have "
                                 f"(rows: {', '.join(names)})")
    return rows


def load_size(size: str, root: str | Path | None = None) -> Size:
    """The compute size ``size`` (``sizes/<size>.yaml``)."""
    folder = presets_dir(root) / "sizes"
    path = folder / f"{size}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise KeyError(f"unknown ablation size '{size}'; known sizes: {', '.join(known)}")
    data = _read(path, ("label", "data", "config"), ())
    return Size(size, str(data["label"]), {k: int(v) for k, v in data["data"].items()},
                dict(data["config"]), path)


def size_config(size: Size, overrides: list[str] | None = None) -> Config:
    """The configuration shared by the rows of a table: defaults <- size <- ``overrides``
    (its ``data.synth`` generates the table's synthetic benchmark)."""
    return Config.from_dict(size.config).override(overrides or [])


def run_config(size: Size, row: Row, data_root: str | Path, seed: int,
               overrides: list[str] | None = None) -> Config:
    """The configuration of one run: defaults <- size <- row <- (seed, data folder) <-
    ``overrides`` (dotted ``key=value``, as ``humr train`` takes them)."""
    return Config.from_dict(size.config, row.config, {"data": {"root": str(data_root)},
                                                       "train": {"seed": int(seed)}}
                            ).override(overrides or [])
