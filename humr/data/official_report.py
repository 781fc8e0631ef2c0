"""Tables 1 and 2 of the paper from evaluations on the release's test splits, beside the
paper's numbers (``humr eval --data-format official``).

Table 1: 3dpw protocol (14 LSP joints) on ``3dpw-test-cam`` and emdb protocol (24 SMPL joints)
on ``emdb-p1``; the mode (z = 0, "best of 1") and the best of S hypotheses, mm.
Table 2: 2D keypoint error of the mode / the samples (px of a 256 crop) and 3D keypoint spread
of visible / invisible joints (mm) on both sets, PercIn (%) / MinDist (px) on ``emdb-p1-occl``.
The paper's numbers are those of its "Ours" rows (with the mask loss), S = 100.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from humr.data.official_splits import EVAL_SPLITS
from humr.io import atomic_write_text

__all__ = ["PAPER", "ablation_metrics", "evaluate_official", "format_paper_tables", "paper_rows",
           "write_json_atomic"]

# (table, set, metric key of humr.engine.evaluation) -> the paper's value
PAPER: dict[tuple[str, str, str], float] = {}
for _set, _proto, _vals in (("3dpw-test-cam", "3dpw", (62.2, 40.9, 73.9, 46.2, 29.8, 54.4)),
                            ("emdb-p1", "emdb", (84.3, 56.1, 97.7, 63.6, 40.9, 72.0))):
    _keys = [f"{_proto}/{m}_{w}" for w in ("mode", "min") for m in ("mpjpe", "pa_mpjpe", "pve")]
    PAPER.update({("Table 1", _set, k): v for k, v in zip(_keys, _vals, strict=True)})
for _set, _vals in (("3dpw-test-cam", (4.77, 5.94, 34.8, 75.1)),
                    ("emdb-p1", (5.02, 6.34, 40.8, 87.8))):
    _keys = ("kp2d_mode", "kp2d_samples", "spread_visible", "spread_invisible")
    PAPER.update({("Table 2", _set, k): v for k, v in zip(_keys, _vals, strict=True)})
PAPER[("Table 2", "emdb-p1-occl", "perc_in")] = 91.4
PAPER[("Table 2", "emdb-p1-occl", "min_dist")] = 0.616

_LABELS = {"mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "pve": "PVE", "kp2d_mode": "2DKP mode",
           "kp2d_samples": "2DKP samples", "spread_visible": "3DKP spread vis.",
           "spread_invisible": "3DKP spread invis.", "perc_in": "PercIn", "min_dist": "MinDist"}


def evaluate_official(module, root: str | Path, splits: Sequence[str] = EVAL_SPLITS,
                      **kwargs) -> dict[str, dict[str, float]]:
    """``split -> metrics`` of :func:`humr.engine.inference.evaluate_checkpoint` on each
    official evaluation split (``module.config.data.format`` must be "official")."""
    from humr.engine.inference import evaluate_checkpoint

    return {name: evaluate_checkpoint(module, root, split=name, **kwargs) for name in splits}


def ablation_metrics(module, root: str | Path, **kwargs) -> dict[str, float]:
    """Metrics of one ablation run on the release (Table 3 is evaluated on 3DPW): every metric
    of ``3dpw-test-cam``, with PercIn / MinDist from ``emdb-p1-occl`` (3DPW has no masks)."""
    results = evaluate_official(module, root, ("3dpw-test-cam", "emdb-p1-occl"), **kwargs)
    metrics = dict(results["3dpw-test-cam"])
    metrics.update({k: results["emdb-p1-occl"][k] for k in ("perc_in", "min_dist")
                    if k in results["emdb-p1-occl"]})
    return metrics


def paper_rows(results: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """One row per paper number: table, set, metric, humr's value (None when not evaluated)
    and the paper's."""
    rows = []
    for (table, name, key), paper in PAPER.items():
        value = results.get(name, {}).get(key)
        rows.append({"table": table, "set": name, "metric": key, "paper": paper,
                     "humr": None if value is None or math.isnan(value) else float(value)})
    return rows


def _cell(value: float | None) -> str:
    return f"{value:9.3f}" if value is not None else "      n/a"


def format_paper_tables(results: Mapping[str, Mapping[str, float]], num_samples: int) -> str:
    """Tables 1 and 2 in the paper's layout, each humr row under the paper's."""
    rows = {(r["table"], r["set"], r["metric"]): r for r in paper_rows(results)}
    out = [f"Table 1: distribution accuracy, mm (best of 1 = mode, best of {num_samples})",
           f"{'':22s}{'3DPW (14)':^30s}{'EMDB (24)':^30s}",
           f"{'':22s}" + "".join(f"{m:>10s}" for m in ("MPJPE", "PA-MPJPE", "PVE") * 2)]
    for which, label in (("mode", "best of 1"), ("min", f"best of {num_samples}")):
        for who in ("paper", "humr"):
            cells = [rows[("Table 1", s, f"{p}/{m}_{which}")][who]
                     for s, p in (("3dpw-test-cam", "3dpw"), ("emdb-p1", "emdb"))
                     for m in ("mpjpe", "pa_mpjpe", "pve")]
            out.append(f"  {label:<12s}{who:<8s}" + "".join(f" {_cell(c)}" for c in cells))
    out.append("Table 2: consistency (2DKP error, px of a 256 crop), diversity (3DKP spread, "
               "mm), plausibility (PercIn %, MinDist px)")
    keys = ("kp2d_mode", "kp2d_samples", "spread_visible", "spread_invisible")
    out.append(f"{'':22s}" + "".join(f"{_LABELS[k]:>19s}" for k in keys)
               + f"{'PercIn':>10s}{'MinDist':>10s}")
    for name, label in (("3dpw-test-cam", "3DPW"), ("emdb-p1", "EMDB")):
        for who in ("paper", "humr"):
            cells = "".join(f"          {_cell(rows[('Table 2', name, k)][who])}" for k in keys)
            mask = ""
            if name == "emdb-p1":
                mask = "".join(f" {_cell(rows[('Table 2', 'emdb-p1-occl', k)][who])}"
                               for k in ("perc_in", "min_dist"))
            out.append(f"  {label:<12s}{who:<8s}{cells}{mask}")
    return "\n".join(out)


def write_json_atomic(data: dict, path: str | Path) -> Path:
    """Write ``data`` as JSON through a temporary file in the same folder and ``os.replace``
    (never a half-written file); refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; not overwriting it (choose another --out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return path
