"""Training step with subnormal weights, as Adam's coupled weight decay leaves them after a
few thousand CPU steps, against the same step after :func:`humr.engine.denormals.flush_denormals`
(what ``train.flush_denormals_every`` does), measured in the same run.

The CPU preset's full model (:func:`bench_step.build`) gets a fraction ``--fraction`` of the
weights of its flow subnets and of its head replaced by subnormal values (sign kept, magnitude
1e-40 .. 1e-39): what a 2000-step CPU run had (``benchmarks/README.md``: 495K of the 1M weights
of the head's second layer). Both sides then time ``--steps`` optimiser steps with the
learning rate at 0, so that the weights stay as they are, alternating for ``--rounds`` rounds:
``reference`` with the subnormal weights, ``flushed`` after ``flush_denormals``. Printed: the
median step of each side and the ratio reference / flushed.

Usage::

    python benchmarks/bench_denormals.py --threads 1 --steps 4 --rounds 2
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_step  # the step benchmark's build() and step()


def make_subnormal(module: torch.nn.Module, fraction: float, seed: int = 0) -> int:
    """Replace ``fraction`` of the weights of every Linear of the flow and the head by
    subnormal values; returns how many."""
    gen = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for part in (module.model.flow, module.model.head):
            for layer in part.modules():
                if isinstance(layer, torch.nn.Linear):
                    w = layer.weight
                    pick = torch.rand(w.shape, generator=gen) < fraction
                    tiny = torch.empty(w.shape).uniform_(1e-40, 1e-39, generator=gen)
                    w[pick] = (torch.sign(w) * tiny)[pick]
                    count += int(pick.sum())
    return count


def time_steps(module, optimizer, batches, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        start = time.perf_counter()
        bench_step.step(module, optimizer, batches)
        out.append(time.perf_counter() - start)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=64, help="training examples to generate")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from humr.data import make_dataloader
    from humr.data.synthetic import generate
    from humr.engine.denormals import flush_denormals

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "data", n_train=args.n, n_test=0, seed=0, workers=1)
        module, _, config, label = bench_step.build(Path(root), 0)
        loader = make_dataloader(root, "train", config.train.batch_size, shuffle=True, seed=0,
                                 drop_last=True)

        def forever():
            while True:
                yield from loader

        sides = {"reference": module, "flushed": copy.deepcopy(module)}
        count = make_subnormal(sides["reference"], args.fraction)
        make_subnormal(sides["flushed"], args.fraction)
        flush_denormals(sides["flushed"].parameters())
        optimizers = {name: torch.optim.Adam(m.parameters(), lr=0.0,
                                             weight_decay=config.train.weight_decay)
                      for name, m in sides.items()}
        batches = forever()
        for name, side in sides.items():                           # warm-up
            time_steps(side, optimizers[name], batches, 1)
        times = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, side in sides.items():
                times[name] += time_steps(side, optimizers[name], batches, args.steps)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{label}: {count} subnormal weights ({args.fraction:.0%} of the flow's and head's "
          f"Linear weights), {args.threads} thread(s), {len(times['flushed'])} steps per side")
    for name, value in med.items():
        print(f"  {name:10s} {1e3 * value:8.1f} ms per step (median)")
    print(f"  ratio reference / flushed: {med['reference'] / med['flushed']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
