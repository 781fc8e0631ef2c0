"""Behaviour shared by every metric: batching, reset, dtypes, DDP reduction, registry."""
import pytest
import torch

import humr
from humr.metrics import functional as F


def _inputs(name, B, dtype, gen):
    """Random update arguments of the metric ``name`` for a batch of B examples."""
    rand = lambda *s: torch.rand(*s, generator=gen, dtype=dtype)
    flag = lambda *s: torch.rand(*s, generator=gen) < 0.5
    if name == "hypothesis_accuracy":
        gt = rand(B, 17, 3)
        return (gt[:, None] + 0.1 * rand(B, 4, 17, 3), gt, rand(B, 4, 30, 3), rand(B, 30, 3))
    if name == "consistency_2d":
        return (rand(B, 5, 17, 2) * 2 - 1, rand(B, 17, 2) * 2 - 1, rand(B, 17))
    if name == "spread_3d":
        return (rand(B, 5, 17, 3), rand(B, 17))
    if name == "mask_plausibility":
        mask = torch.zeros(B, 16, 16, dtype=torch.uint8)
        mask[:, 3:12, 5:9] = 1
        return (rand(B, 5, 17, 2) * 2.4 - 1.2, mask, flag(B, 17), flag(B) | True)
    if name == "posterior_distance":
        return (rand(B, 5, 24, 3), rand(B, 8, 24, 3), flag(B, 24), flag(B, 8) | (torch.arange(8) < 2))
    raise KeyError(name)


FUNCTIONAL = {
    "hypothesis_accuracy": lambda *a: F.hypothesis_accuracy(a[0], a[1], "3dpw", a[2], a[3]),
    "consistency_2d": F.consistency_2d,
    "spread_3d": F.spread_3d,
    "mask_plausibility": F.mask_plausibility,
    "posterior_distance": F.posterior_distance,
}
NAMES = sorted(FUNCTIONAL)


def test_every_metric_is_registered():
    assert humr.METRICS.names() == NAMES


def _slice(args, lo, hi):
    return tuple(a[lo:hi] for a in args)


@pytest.mark.parametrize("name", NAMES)
def test_batchwise_updates_equal_one_update_and_functional(name):
    args = _inputs(name, 7, torch.float64, torch.Generator().manual_seed(1))
    whole = humr.METRICS.build(name)
    whole.update(*args)
    parts = humr.METRICS.build(name)
    for lo, hi in [(0, 2), (2, 3), (3, 7)]:
        parts.update(*_slice(args, lo, hi))
    ref = FUNCTIONAL[name](*args)
    out_whole, out_parts = whole.compute(), parts.compute()
    assert sorted(out_whole) == sorted(ref)
    for key in ref:
        assert torch.isfinite(ref[key]), key
        torch.testing.assert_close(out_whole[key], ref[key], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out_parts[key], ref[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_merged_states_as_under_ddp(name):
    """Two ranks' states summed (what dist_reduce_fx="sum" does) equal one metric on all."""
    args = _inputs(name, 6, torch.float64, torch.Generator().manual_seed(2))
    rank0, rank1, single = (humr.METRICS.build(name) for _ in range(3))
    rank0.update(*_slice(args, 0, 4))
    rank1.update(*_slice(args, 4, 6))
    single.update(*args)
    assert all(fx is not None and fx.__name__ == "dim_zero_sum" for fx in rank0._reductions.values())
    rank0.merge_state(rank1)
    for key, val in single.compute().items():
        torch.testing.assert_close(rank0.compute()[key], val, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_reset(name):
    gen = torch.Generator().manual_seed(3)
    first, second = _inputs(name, 3, torch.float64, gen), _inputs(name, 3, torch.float64, gen)
    metric = humr.METRICS.build(name)
    metric.update(*first)
    metric.reset()
    metric.update(*second)
    fresh = humr.METRICS.build(name)
    fresh.update(*second)
    for key, val in fresh.compute().items():
        torch.testing.assert_close(metric.compute()[key], val)


@pytest.mark.parametrize("name", NAMES)
def test_float32_and_float64_agree(name):
    args64 = _inputs(name, 4, torch.float64, torch.Generator().manual_seed(4))
    args32 = tuple(a.float() if a.is_floating_point() else a for a in args64)
    out64, out32 = FUNCTIONAL[name](*args64), FUNCTIONAL[name](*args32)
    for key in out64:
        assert out64[key].dtype == torch.float64 and out32[key].dtype == torch.float32, key
        torch.testing.assert_close(out32[key].double(), out64[key], rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_results_follow_the_input_device(name):
    args = _inputs(name, 4, torch.float64, torch.Generator().manual_seed(5))
    metric = humr.METRICS.build(name).to("cuda")
    metric.update(*(a.cuda() for a in args))
    ref = FUNCTIONAL[name](*args)
    for key, val in metric.compute().items():
        assert val.device.type == "cuda", key
        torch.testing.assert_close(val.cpu(), ref[key])
