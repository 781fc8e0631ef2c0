"""The report of an ablation table: markdown, JSON and a plot of the rows.

Columns: the paper's (best-of-N MPJPE, PA-MPJPE, PVE; 3dpw protocol with 14 joints and emdb
protocol with 24), then consistency (2D keypoint error of mode / samples), 3D spread of visible
/ invisible joints, the mask metrics PercIn / MinDist and the energy distance to the synthetic
benchmark's true posterior. Every cell is the mean over seeds with the half-width of its 95 %
Student-t interval when there are two or more seeds (:func:`humr.ablation.stats.t_interval`);
the paper's number of the row follows in brackets where the paper has one. The paper's claims
that the row presets list (``effects:``) are judged on paired per-seed differences
(:func:`humr.ablation.stats.judge`) in a third table: reproduced / not reproduced /
inconclusive. On the synthetic benchmark an ``oracle`` row closes each
table: what draws from the stored true posterior score with the same N
(:mod:`humr.data.oracle`, pairs :data:`humr.data.oracle.ORACLE_ROWS`): best of N, the error of
one draw under the mode column, consistency, spread, mask metrics and the energy-distance noise
floor (± its standard error); columns without an oracle value stay empty.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from humr.ablation.stats import judge, t_interval
from humr.io import atomic_savefig, atomic_write_text

__all__ = ["COLUMNS", "PLOTTED", "judge_effects", "oracle_values", "summarize", "to_markdown",
           "write_report"]

# (metric key, column header, lower is better; None: no better direction, e.g. the spread)
COLUMNS: tuple[tuple[str, str, bool | None], ...] = (
    ("3dpw/mpjpe_min", "MPJPE-14", True),
    ("3dpw/pa_mpjpe_min", "PA-MPJPE-14", True),
    ("3dpw/pve_min", "PVE", True),
    ("emdb/mpjpe_min", "MPJPE-24", True),
    ("emdb/pa_mpjpe_min", "PA-MPJPE-24", True),
    ("emdb/mpjpe_mode", "MPJPE-24 mode", True),
    ("kp2d_mode", "2DKP mode", True),
    ("kp2d_samples", "2DKP samples", True),
    ("spread_visible", "spread vis", None),
    ("spread_invisible", "spread invis", None),
    ("perc_in", "PercIn", False),
    ("min_dist", "MinDist", True),
    ("energy_occluded", "E-dist occl", True),
    ("energy_visible", "E-dist vis", True),
)
#: The metrics drawn in ``table.png``.
PLOTTED = ("3dpw/mpjpe_min", "3dpw/pve_min", "spread_invisible", "perc_in", "min_dist",
           "energy_occluded")
_GROUPS = (("Accuracy, best of N hypotheses (mm); [paper]", COLUMNS[:6]),
           (("Consistency (px, 256 crop), spread (mm), mask plausibility (% / px), "
             "energy distance to the true posterior (mm)"), COLUMNS[6:]))


def summarize(results: Mapping[str, Sequence]) -> dict[str, dict[str, dict[str, float]]]:
    """``row -> {"mean", "std", "ci", "n"}`` (each ``{key: value}``) over the seeds' ``metrics``:
    mean, sample standard deviation (ddof = 1), half-width of the 95 % Student-t interval of
    the mean and the number of seeds (non-finite values, e.g. a metric with no eligible joint,
    are left out; std and ci need two seeds)."""
    summary = {}
    for row, runs in results.items():
        keys = sorted({k for r in runs for k in r.metrics})
        mean, std, ci, count = {}, {}, {}, {}
        for key in keys:
            values = np.array([r.metrics[key] for r in runs if key in r.metrics], float)
            values = values[np.isfinite(values)]
            count[key] = int(values.size)
            mean[key] = float(values.mean()) if values.size else math.nan
            std[key] = float(values.std(ddof=1)) if values.size > 1 else math.nan
            low, high = t_interval(values)
            ci[key] = (high - low) / 2
        summary[row] = {"mean": mean, "std": std, "ci": ci, "n": count}
    return summary


def judge_effects(rows: Sequence, results: Mapping[str, Sequence]) -> list[dict]:
    """The verdict of every effect of ``rows`` (:class:`humr.ablation.stats.Effect`) on the
    seeds both of its rows finished (paired by seed)."""
    out = []
    for row in rows:
        for effect in getattr(row, "effects", ()):
            base = {r.seed: r.metrics.get(effect.metric, math.nan)
                    for r in results.get(effect.base, [])}
            this = {r.seed: r.metrics.get(effect.metric, math.nan)
                    for r in results.get(effect.row, [])}
            seeds = sorted(set(base) & set(this))
            verdict = judge([base[k] for k in seeds], [this[k] for k in seeds], effect.expect,
                            effect.lower_is_better, effect.margin)
            out.append({**dataclasses.asdict(effect), **verdict, "seeds": seeds})
    return out


def _effects_markdown(effects: Sequence[Mapping], labels: Mapping[str, str]) -> list[str]:
    lines = [("**The paper's effects: paired differences over seeds (row - base), 95 % "
             "interval**"), "",
             ("| effect (paper) | base -> row | metric | expected | difference [95 % interval] "
             "| seeds | verdict |"), "|---|---|---|---|---|---|---|"]
    for e in effects:
        expected = e["expect"].replace("_", " ") + (f" (margin {e['margin']:g})"
                                                     if e["expect"] == "no_worse" else "")
        diff = "n/a" if math.isnan(e["diff"]) else f"{e['diff']:+.1f}"
        if not math.isnan(e["low"]):
            diff += f" [{e['low']:+.1f}, {e['high']:+.1f}]"
        lines.append(f"| {e['claim']} | {labels.get(e['base'], e['base'])} -> "
                     f"{labels.get(e['row'], e['row'])} | {e['metric']} | {expected} | {diff} | "
                     f"{e['n']} | **{e['verdict']}** |")
    return lines + [""]


def _arrow(lower_is_better: bool | None) -> str:
    return "" if lower_is_better is None else (" ↓" if lower_is_better else " ↑")


def _cell(summary: Mapping, key: str, paper: Mapping[str, float] | None) -> str:
    if summary is None or math.isnan(summary["mean"].get(key, math.nan)):
        text = "n/a"
    else:
        text = f"{summary['mean'][key]:.1f}"
        if not math.isnan(summary["ci"].get(key, math.nan)):
            text += f" ± {summary['ci'][key]:.1f}"
    if paper and key in paper:
        text += f" [{paper[key]:g}]"
    return text


def oracle_values(oracle: Mapping[str, float] | None, mean_shape: bool = False
                  ) -> dict[str, tuple[float, float]]:
    """``column key -> (oracle value, standard error or NaN)`` of the columns the oracle
    (:func:`humr.data.oracle.oracle_report`) has a finite value for (``mean_shape``: its
    best-of-N accuracy and energy distances with the mean body shape,
    :data:`humr.data.oracle.MEAN_SHAPE_ROWS`)."""
    if not oracle:
        return {}
    from humr.data.oracle import MEAN_SHAPE_ROWS, ORACLE_ROWS

    pairs = dict(MEAN_SHAPE_ROWS if mean_shape else ORACLE_ROWS)
    out = {}
    for key, _, _ in COLUMNS:
        value = oracle.get(pairs.get(key, ""), math.nan)
        if value is not None and math.isfinite(value):
            out[key] = (float(value), float(oracle.get(pairs[key] + "_se", math.nan)))
    return out


def _oracle_cell(values: Mapping[str, tuple[float, float]], key: str) -> str:
    if key not in values:
        return ""
    value, se = values[key]
    return f"{value:.1f}" + ("" if math.isnan(se) else f" ± {se:.1f}")


def to_markdown(table: str, rows: Sequence, summary: Mapping, seeds: Mapping[str, int],
                title: str, oracle: Mapping[str, float] | None = None,
                effects: Sequence[Mapping] = ()) -> str:
    """Two markdown tables (accuracy; consistency / spread / plausibility / posterior), each
    closed by the oracle row when ``oracle`` (:func:`humr.data.oracle.oracle_report` with the
    rows' N) is given, then the verdicts of ``effects`` (:func:`judge_effects`)."""
    values = oracle_values(oracle)
    shapeless = oracle_values(oracle, mean_shape=True)
    lines = [f"# {title}", ""]
    for caption, columns in _GROUPS:
        lines += [f"**{caption}**", "",
                  "| row | seeds | " + " | ".join(h + _arrow(low) for _, h, low in columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for row in rows:
            s = summary.get(row.name)
            cells = [_cell(s, key, row.paper) for key, _, _ in columns]
            lines.append(f"| {row.label} | {seeds.get(row.name, 0)} | " + " | ".join(cells) + " |")
        for label, found in (("oracle", values), ("oracle, mean shape", shapeless)):
            if any(key in found for key, _, _ in columns):
                cells = [_oracle_cell(found, key) for key, _, _ in columns]
                lines.append(f"| {label} | - | " + " | ".join(cells) + " |")
        lines.append("")
    if values:
        note = (f"oracle: {int(oracle['num_samples'])} draws per image from the stored true "
                f"posterior of {int(oracle['num_examples'])} test examples (humr.data.oracle); "
                "under a mode column the error of one draw, E-dist the noise floor ± its "
                "standard error; 'oracle, mean shape': the same draws posed with the mean "
                "body shape (betas 0), their best-of-N error and E-dist ± standard error, "
                "what a model that knows the pose posterior but not the shape scores.")
        lines += [note, ""]
    if effects:
        lines += _effects_markdown(effects, {r.name: r.label for r in rows})
    return "\n".join(lines)


def _plot(path: Path, rows: Sequence, results: Mapping, summary: Mapping, title: str,
          oracle: Mapping[str, tuple[float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    headers = {k: (h, low) for k, h, low in COLUMNS}
    names = [r.name for r in rows if r.name in summary]
    labels = [r.label for r in rows if r.name in summary] + (["oracle"] if oracle else [])
    fig, axes = plt.subplots(1, len(PLOTTED), sharey=True, squeeze=False,
                             figsize=(3.2 * len(PLOTTED), 0.45 * len(labels) + 1.6))
    y = np.arange(len(labels))
    for ax, key in zip(axes[0], PLOTTED):
        mean = np.array([summary[n]["mean"].get(key, np.nan) for n in names])
        ci = np.nan_to_num(np.array([summary[n]["ci"].get(key, np.nan) for n in names]))
        ax.barh(y[:len(names)], mean, xerr=ci, color="#8fb3d9", edgecolor="#2d5f8f", capsize=3)
        if key in oracle:                   # the oracle row (true-posterior draws)
            value, se = oracle[key]
            ax.barh(y[-1], value, xerr=np.nan_to_num(se), color="#f2c6a0", edgecolor="#a0522d",
                    hatch="//", capsize=3)
        for i, n in enumerate(names):
            seeds = [r.metrics.get(key, np.nan) for r in results[n]]
            ax.plot(seeds, [i] * len(seeds), "k.", ms=4)
        header, low = headers[key]
        ax.set_title(header + _arrow(low), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=9)
    axes[0][0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def _json_safe(value):
    """NaN -> None in nested dicts / lists (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def write_report(table: str, rows: Sequence, results: Mapping[str, Sequence], table_dir: Path,
                 size, num_samples: int, oracle: Mapping[str, float] | None = None
                 ) -> dict[str, Path]:
    """Write ``table.md``, ``table.json`` and ``table.png`` into ``table_dir`` (rebuilt from the
    finished runs each time; the runs' own ``result.json`` files are never touched).

    Args:
        table: table name.
        rows: the table's rows (:class:`humr.ablation.presets.Row`), in order.
        results: ``row name -> [RunResult]`` of the finished runs.
        table_dir: ``OUT/TABLE``.
        size: the compute size (:class:`humr.ablation.presets.Size`).
        num_samples: hypotheses per test image.
        oracle: :func:`humr.data.oracle.oracle_report` of the test split with ``num_samples``
            draws (synthetic data), printed and plotted as the ``oracle`` row; None: no row.
    Returns:
        ``{"markdown": ..., "json": ..., "plot": ...}`` paths (no plot without results).
    """
    from lightning.pytorch.utilities import rank_zero_only

    paths = {"markdown": table_dir / "table.md", "json": table_dir / "table.json"}
    if rank_zero_only.rank != 0:            # other DDP processes: rank 0 writes
        return paths
    table_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results)
    seeds = {name: len(runs) for name, runs in results.items()}
    steps = sorted({r.steps for runs in results.values() for r in runs})
    title = (f"humr ablation '{table}', size '{size.name}', {num_samples} hypotheses per test "
             f"image, {'/'.join(map(str, steps)) or '?'} steps; mean ± 95 % interval over seeds")
    effects = judge_effects(rows, results)
    atomic_write_text(paths["markdown"], to_markdown(table, rows, summary, seeds, title, oracle,
                                                     effects))
    data = {"table": table, "size": size.name, "num_samples": num_samples,
            "oracle": dict(oracle) if oracle else None, "effects": effects, "rows": [
        {"name": r.name, "label": r.label, "paper": r.paper, **summary.get(r.name, {}),
         "per_seed": [{"seed": x.seed, "steps": x.steps, "metrics": x.metrics}
                      for x in results.get(r.name, [])]} for r in rows]}
    atomic_write_text(paths["json"], json.dumps(_json_safe(data), indent=1, sort_keys=True))
    if summary:
        paths["plot"] = table_dir / "table.png"
        _plot(paths["plot"], rows, results, summary, title, oracle_values(oracle))
    return paths
