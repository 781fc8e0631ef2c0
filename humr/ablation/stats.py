"""Seed statistics of the ablation tables: 95 % intervals and paired-difference verdicts.

A cell of a table is the mean over seeds with a Student-t interval,
``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (:func:`t_interval`). A claim of the paper ("the
bbox condition lowers MPJPE-14") is judged on the *paired* differences ``d_s = row_s - base_s``
over the seeds both rows share (same seed = same data order and latents, so the pairing
removes their shared noise), with the same interval on ``mean(d)`` (:func:`judge`):

* ``expect: lower`` / ``higher``: **reproduced** when the interval lies entirely on the
  expected side of 0, **not reproduced** when it lies entirely on the other side, else
  **inconclusive**;
* ``expect: no_worse`` (a change that should not hurt; ``lower_is_better`` says which side is
  worse): **reproduced** when the whole interval is better than ``margin`` (in the metric's
  unit) on the worse side, **not reproduced** when it lies entirely beyond the margin, else
  inconclusive.

With one seed there is no interval and every verdict is inconclusive.

Example:
    >>> lo, hi = t_interval([1.0, 2.0, 3.0])
    >>> round(lo, 3), round(hi, 3)
    (-0.484, 4.484)
    >>> judge([10.0, 11.0, 12.0], [8.0, 9.5, 10.5], expect="lower")["verdict"]
    'reproduced'
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["VERDICTS", "Effect", "judge", "t_interval"]

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
_EXPECT = ("lower", "higher", "no_worse")


@dataclass(frozen=True)
class Effect:
    """One claim of the paper, tested on one metric of two rows of a table.

    Attributes:
        claim: the paper's statement, e.g. "bbox information helps".
        base: row name the change starts from; row: row name with the change.
        metric: metric key of the runs (e.g. ``3dpw/mpjpe_min``).
        expect: "lower", "higher" or "no_worse" (see the module doc).
        lower_is_better: for "no_worse": which direction is better (default True).
        margin: for "no_worse": the tolerated worsening, in the metric's unit.
    """

    claim: str
    base: str
    row: str
    metric: str
    expect: str
    lower_is_better: bool = True
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.expect not in _EXPECT:
            raise ValueError(f"effect {self.claim!r}: expect must be one of {_EXPECT}, "
                             f"got {self.expect!r}")
        if self.margin < 0:
            raise ValueError(f"effect {self.claim!r}: margin must be >= 0, got {self.margin}")


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval ``(low, high)`` of the mean of ``values``; ``(nan, nan)``
    with fewer than two finite values."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def judge(base: Sequence[float], row: Sequence[float], expect: str,
          lower_is_better: bool = True, margin: float = 0.0, level: float = 0.95) -> dict:
    """Verdict on paired per-seed values (``base[s]`` and ``row[s]`` share seed ``s``).

    Returns:
        ``{"n", "diff", "low", "high", "verdict"}``: the number of pairs, the mean of
        ``row - base`` and its interval, and one of :data:`VERDICTS`.
    """
    if expect not in _EXPECT:
        raise ValueError(f"expect must be one of {_EXPECT}, got {expect!r}")
    b, r = np.asarray(base, dtype=np.float64), np.asarray(row, dtype=np.float64)
    if b.shape != r.shape:
        raise ValueError(f"paired values need the same seeds: {b.shape} vs {r.shape}")
    d = r - b
    d = d[np.isfinite(d)]
    low, high = t_interval(d, level)
    out = {"n": int(d.size), "diff": float(d.mean()) if d.size else math.nan,
           "low": low, "high": high, "verdict": "inconclusive"}
    if math.isnan(low):
        return out
    if expect == "no_worse":
        # worsening is +d when lower is better, -d otherwise
        worse_low, worse_high = (low, high) if lower_is_better else (-high, -low)
        if worse_high <= margin:
            out["verdict"] = "reproduced"
        elif worse_low > margin:
            out["verdict"] = "not reproduced"
        return out
    sign = -1.0 if expect == "lower" else 1.0     # expected sign of d
    if sign * low > 0 and sign * high > 0:
        out["verdict"] = "reproduced"
    elif sign * low < 0 and sign * high < 0:
        out["verdict"] = "not reproduced"
    return out
