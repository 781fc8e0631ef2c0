"""Seed statistics of the ablation tables: Student-t intervals against hand-computed values
and scipy's own interval, and the paired verdicts on hand-made cases."""
import math

import numpy as np
import pytest
from scipy import stats

from humr.ablation.stats import Effect, judge, t_interval


def test_t_interval_known_values_and_scipy():
    low, high = t_interval([1.0, 2.0, 3.0])          # mean 2, sd 1, t(0.975, 2) = 4.3027
    assert math.isclose(low, 2 - 4.302653 / math.sqrt(3), abs_tol=1e-5)
    assert math.isclose(high, 2 + 4.302653 / math.sqrt(3), abs_tol=1e-5)
    x = np.random.default_rng(0).normal(5, 2, 7)
    ref = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose(t_interval(x, level=0.9), ref, rtol=1e-12)
    assert all(math.isnan(v) for v in t_interval([4.0]))
    assert all(math.isnan(v) for v in t_interval([4.0, math.nan]))   # one finite value


def test_paired_verdicts():
    base = [10.0, 20.0, 30.0]                       # seed noise far larger than the effect
    lower = [9.0, 19.2, 28.9]                       # consistently ~1 lower in every pair
    assert judge(base, lower, "lower")["verdict"] == "reproduced"
    res = judge(base, lower, "higher")
    assert res["verdict"] == "not reproduced" and res["n"] == 3
    assert math.isclose(res["diff"], np.mean(np.subtract(lower, base)))
    mixed = [11.0, 19.0, 30.5]
    assert judge(base, mixed, "lower")["verdict"] == "inconclusive"
    # the unpaired view would call the same numbers inconclusive: pairing is what decides
    assert stats.ttest_ind(base, lower).pvalue > 0.5


def test_no_worse_with_margin_both_directions():
    base = [50.0, 52.0, 51.0]
    same = [50.2, 52.1, 51.3]                        # +0.2 mm, tight
    assert judge(base, same, "no_worse", margin=1.0)["verdict"] == "reproduced"
    worse = [55.0, 57.2, 56.1]                       # +5 mm, tight
    assert judge(base, worse, "no_worse", margin=1.0)["verdict"] == "not reproduced"
    # higher is better (PercIn): a drop is the worse side
    assert judge(base, [45.0, 47.1, 45.9], "no_worse", lower_is_better=False,
                 margin=1.0)["verdict"] == "not reproduced"
    assert judge(base, [55.0, 57.2, 56.1], "no_worse", lower_is_better=False,
                 margin=1.0)["verdict"] == "reproduced"


def test_one_seed_is_inconclusive_and_bad_input_raises():
    assert judge([1.0], [0.0], "lower")["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="same seeds"):
        judge([1.0, 2.0], [1.0], "lower")
    with pytest.raises(ValueError, match="expect"):
        judge([1.0, 2.0], [1.0, 2.0], "smaller")
    with pytest.raises(ValueError, match="expect"):
        Effect("c", "a", "b", "m", "smaller")
    with pytest.raises(ValueError, match="margin"):
        Effect("c", "a", "b", "m", "no_worse", margin=-1.0)
