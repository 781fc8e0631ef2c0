"""Batched MMD (``humr.losses.MMDLoss``) vs brute-force loops, for the paper's loss size.

Shape: B = 64 images x K = 17 joints, n = 25 hypotheses vs m = 25 targets in 2D, IMQ mixture,
unbiased estimator. Three formulations of the same numbers, timed in the same run:

* ``batched``:  one ``MMDLoss()(x, y)`` call over all B*K sets (forward + backward);
* ``per-set``:  a Python loop over the B*K sets, each an ``MMDLoss`` call on (n, 2) tensors
  (forward + backward);
* ``double-loop``: Eq. 4 written as explicit loops over i != j and all (i, j) on Python floats
  (forward only), on the first ``--loop-sets`` sets and scaled to B*K sets.

Prints median times, the speed-ups relative to ``batched`` and the largest disagreement.

Usage::

    python benchmarks/bench_mmd.py --device cpu --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from humr.losses import MMDLoss

B, K, N, M = 64, 17, 25, 25
BANDWIDTHS = (0.05, 0.2, 0.9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats):
    fn()                                                   # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _imq(p, q):
    r2 = (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2
    return sum(a * a / (a * a + r2) for a in BANDWIDTHS)


def double_loop(x, y):
    """Unbiased MMD^2 of Eq. 4 by explicit loops on lists of (x, y) points."""
    n, m = len(x), len(y)
    xx = sum(_imq(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(_imq(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(_imq(p, q) for p in x for q in y) / (n * m)
    return xx + yy - 2 * xy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-sets", type=int, default=64,
                        help="sets evaluated by the Python double loop (time scaled to B*K)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(B, K, N, 2, generator=gen) * 2 - 1).to(device).requires_grad_()
    y = (torch.rand(B, K, M, 2, generator=gen) * 2 - 1).to(device)
    mmd = MMDLoss()

    def batched():
        loss = mmd(x, y).mean()
        loss.backward()
        return loss

    def per_set():
        total = sum(mmd(x[b, k], y[b, k]) for b in range(B) for k in range(K)) / (B * K)
        total.backward()
        return total

    xs = x.detach().reshape(-1, N, 2)[: args.loop_sets].tolist()
    ys = y.reshape(-1, M, 2)[: args.loop_sets].tolist()

    def loops():
        return [double_loop(p, q) for p, q in zip(xs, ys)]

    t_batched = _timed(batched, device, args.repeats)
    t_per_set = _timed(per_set, device, max(1, args.repeats // 2))
    t_loop = _timed(loops, device, 1) * (B * K) / len(xs)

    ours = mmd(x, y).detach().reshape(-1)[: len(xs)].double().cpu()
    err = (ours - torch.tensor(loops(), dtype=torch.float64)).abs().max().item()
    x.grad = None
    grad_batched = torch.autograd.grad(mmd(x, y).mean(), x)[0]
    grad_loop = torch.autograd.grad(
        sum(mmd(x[b, k], y[b, k]) for b in range(B) for k in range(K)) / (B * K), x)[0]
    grad_err = (grad_batched - grad_loop).abs().max().item()

    print(f"device {device}, B={B} K={K} n={N} m={M}, IMQ mixture {BANDWIDTHS}, unbiased")
    print(f"{'formulation':<14}{'time [ms]':>12}{'x batched':>12}")
    for name, t in (("batched", t_batched), ("per-set", t_per_set), ("double-loop", t_loop)):
        print(f"{name:<14}{1e3 * t:>12.2f}{t / t_batched:>12.1f}")
    print(f"max |batched - double loop| = {err:.2e} (float32 vs float64, {len(xs)} sets)")
    print(f"max |grad batched - grad per-set| = {grad_err:.2e}")


if __name__ == "__main__":
    main()
