"""MMDLoss / SamplesDistance against brute-force loops, scipy, and distribution checks."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from humr.losses import DISTANCES, MMDLoss, SamplesDistance

BW = (0.05, 0.2, 0.9)


def _k(kernel, p, q):
    r2 = sum((a - b) ** 2 for a, b in zip(p, q))
    if kernel == "imq":
        return sum(a * a / (a * a + r2) for a in BW)
    if kernel == "gaussian":
        return sum(math.exp(-r2 / (2 * a * a)) for a in BW)
    return -math.sqrt(r2)


def _brute(kernel, estimator, x, y):
    """Eq. 4 by explicit double loops over python floats."""
    def within(s):
        n = len(s)
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j or estimator == "biased"]
        norm = n * (n - 1) if estimator == "unbiased" else n * n
        return sum(_k(kernel, s[i], s[j]) for i, j in pairs) / norm
    cross = sum(_k(kernel, p, q) for p in x for q in y) / (len(x) * len(y))
    return within(x) + within(y) - 2 * cross


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "energy"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_against_brute_force(kernel, estimator):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 6, 2, generator=g, dtype=torch.float64) * 0.6 - 0.3
    y = torch.rand(3, 2, 5, 2, generator=g, dtype=torch.float64) * 0.6
    x[0, 0, 1] = x[0, 0, 0]                                   # coincident samples
    y[1, 1, 2] = x[1, 1, 3]
    got = MMDLoss(kernel, BW, estimator)(x, y)
    assert got.shape == (3, 2) and got.dtype == torch.float64
    for idx in np.ndindex(3, 2):
        ref = _brute(kernel, estimator, x[idx].tolist(), y[idx].tolist())
        assert got[idx].item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_energy_biased_equals_energy_distance_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 0.5
    ref = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    got = MMDLoss("energy", estimator="biased")(torch.from_numpy(x), torch.from_numpy(y))
    assert got.item() == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "energy"])
def test_same_distribution_near_zero_shifted_positive(kernel):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, 2, generator=g) * 0.2
    y = torch.randn(400, 2, generator=g) * 0.2
    mmd = MMDLoss(kernel)
    same, shifted = mmd(x, y).item(), mmd(x, y + 0.3).item()
    assert shifted > 0.05
    assert abs(same) < 0.1 * shifted


def test_unbiased_estimator_is_unbiased():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 5, 2, generator=g, dtype=torch.float64) * 0.3
    y = torch.randn(2000, 5, 2, generator=g, dtype=torch.float64) * 0.3
    unbiased = MMDLoss()(x, y)
    biased = MMDLoss(estimator="biased")(x, y)
    se = unbiased.std() / math.sqrt(len(unbiased))
    assert abs(unbiased.mean().item()) < 4 * se.item()
    assert (biased >= -1e-12).all() and biased.mean() > 10 * se          # V-statistic is biased up


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "energy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coincident_samples_finite_gradient(kernel, dtype):
    x = torch.zeros(4, 25, 2, dtype=dtype, requires_grad=True)
    y = torch.zeros(4, 25, 2, dtype=dtype)
    for estimator in ("unbiased", "biased"):
        loss = MMDLoss(kernel, estimator=estimator, reduction="mean")(x, y)
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert loss.dtype == dtype


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "energy"])
def test_gradient_matches_finite_differences(kernel):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: MMDLoss(kernel)(a, y), (x,))


def test_imq_kernel_gradients_of_points_and_learnable_bandwidths():
    """The IMQ kernel's hand-written backward (points) and autograd's (learnable bandwidths,
    which it leaves to autograd) against finite differences and the plain formula."""
    from humr.losses.mmd import KERNELS

    g = torch.Generator().manual_seed(6)
    d2 = torch.rand(3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.05, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(KERNELS["imq"], (d2, a))
    plain = sum(s * s / (s * s + d2) for s in a)
    torch.testing.assert_close(KERNELS["imq"](d2, a), plain)
    fixed = KERNELS["imq"](d2, a.detach())
    torch.testing.assert_close(torch.autograd.grad(fixed.sum(), d2)[0],
                               torch.autograd.grad(plain.sum(), d2)[0])


def test_reduction_and_set_weights():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(3, 4, 6, 2, generator=g), torch.randn(3, 4, 6, 2, generator=g)
    w = torch.rand(3, 4, generator=g)
    per_set = MMDLoss()(x, y)
    assert torch.allclose(MMDLoss(reduction="mean")(x, y, w), (per_set * w).sum() / w.sum())
    assert torch.allclose(MMDLoss(reduction="sum")(x, y, w), (per_set * w).sum())
    assert torch.allclose(MMDLoss()(x, y, w), per_set * w)
    assert torch.allclose(MMDLoss(reduction="mean")(x, y), per_set.mean())
    xg = x.clone().requires_grad_()
    zero = MMDLoss(reduction="mean")(xg, y, torch.zeros(3, 4))
    zero.backward()
    assert zero.item() == 0 and torch.isfinite(xg.grad).all()
    # broadcasting one target set against several hypothesis sets
    assert torch.allclose(MMDLoss()(x, y[:1]), MMDLoss()(x, y[:1].expand_as(y)))


def test_bad_input_raises():
    x = torch.zeros(2, 5, 2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        MMDLoss()(x[:, :1], x)
    MMDLoss(estimator="biased")(x[:, :1], x)
    with pytest.raises(ValueError, match="point dimension"):
        MMDLoss()(x, torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="unknown kernel"):
        MMDLoss("laplace")
    with pytest.raises(ValueError, match="estimator"):
        MMDLoss(estimator="v")
    with pytest.raises(ValueError, match="reduction"):
        MMDLoss(reduction="max")


def test_sinkhorn_translation_closed_form_and_registry():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 8, 2, generator=g, dtype=torch.float64) * 0.05
    t = torch.tensor([0.3, -0.4], dtype=torch.float64)
    d = SamplesDistance("sinkhorn", blur=0.001, scaling=0.9)(x, x + t)
    # Sinkhorn divergence with cost |x - y|^2 / 2 of a translated set -> |t|^2 / 2 as blur -> 0
    assert d.shape == (2, 3)
    assert torch.allclose(d, torch.full_like(d, 0.125), atol=2e-3)
    assert set(DISTANCES.names()) == {"mmd", "geomloss"}
    energy = DISTANCES.build("geomloss", loss="energy")(x, x + t)
    ours = MMDLoss("energy", estimator="biased")(x, x + t)
    # geomloss halves the energy distance and smooths the norm at 0 (offset ~1e-5)
    assert torch.allclose(energy, ours / 2, atol=1e-4)


def test_import_leaves_smplx_and_lightning_out():
    code = ("import sys; from humr.losses import MMDLoss; "
            "bad = [m for m in ('smplx', 'lightning', 'pytorch_lightning', 'humr.model') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_integer_inputs_are_cast():
    """MMDLoss on int64 samples used to give NaN (integer division of the kernel)."""
    x = torch.tensor([[[0, 0], [1, 0]]])
    y = torch.tensor([[[0, 1], [2, 2]]])
    for estimator in ("unbiased", "biased"):
        ours = MMDLoss(estimator=estimator)(x, y)
        ref = MMDLoss(estimator=estimator)(x.double(), y.double())
        assert ours.dtype == torch.get_default_dtype() and torch.isfinite(ours).all()
        torch.testing.assert_close(ours, ref.to(ours.dtype))


def test_zero_size_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="hold no set"):
        MMDLoss()(torch.zeros(0, 5, 2), torch.zeros(0, 5, 2))


@pytest.mark.parametrize("reduction", ["mean", "mean_all", "sum", "none"])
def test_non_finite_values_in_masked_out_sets(reduction):
    """NaN / inf in sets of zero weight reach neither the value nor the gradient."""
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    y = torch.randn(3, 6, 2, dtype=torch.float64)
    x[1, 2, 0], y[1, 0, 1] = float("nan"), float("inf")
    w = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    xr = x.clone().requires_grad_()
    out = MMDLoss(estimator="biased", reduction=reduction)(xr, y, weights=w)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(xr.grad).all() and (xr.grad[1] == 0).all()
    clean = MMDLoss(estimator="biased", reduction="none")(x[[0, 2]], y[[0, 2]])
    expect = {"mean": clean.mean(), "mean_all": clean.sum() / 3, "sum": clean.sum()}
    if reduction in expect:
        torch.testing.assert_close(out, expect[reduction])
