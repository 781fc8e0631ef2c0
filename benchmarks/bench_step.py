"""Training-step time of the CPU ablation preset (``benchmarks/ablation/sizes/cpu.yaml``, full
model = Table 3 row 6) with a profile breakdown.

Generates a small synthetic dataset (``--n`` training examples) into a temporary folder, builds
:class:`humr.engine.module.HumrModule` from the preset's configuration and times optimiser
steps outside Lightning (the step Lightning runs: ``training_step`` forward, the objective,
backward, Adam), split into phases measured with ``time.perf_counter`` per step:

* ``data``: the next batch from :func:`humr.data.make_dataloader` (collate, image decoding);
* ``forward``: conditioners (backbone, pose2d, bbox), flow sampling and log-density, head,
  body model (joints-only path);
* ``loss``: the enabled losses;
* ``backward`` and ``optimizer``.

Then ``torch.profiler`` records ``--profile-steps`` steps and prints the operators with the
largest self CPU time. Other processes share the machine: compare the phases with each other
(or with a run of the same script on another branch in the same minute), not across runs.

Usage::

    python benchmarks/bench_step.py --steps 8 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

PHASES = ("data", "forward", "loss", "backward", "optimizer")


def build(data_root: Path, seed: int):
    """The CPU preset's full-model module and its optimiser."""
    from humr.ablation.presets import load_size, load_table, run_config
    from humr.engine.module import HumrModule

    size = load_size("cpu")
    row = load_table("table3")[-1]                     # + L_mask: the full model
    config = run_config(size, row, data_root, seed)
    module = HumrModule(config)
    module.train()
    return module, module.configure_optimizers(), config, row.label


def step(module, optimizer, batches, times: dict | None = None) -> float:
    """One optimiser step; adds the phase times (seconds) to ``times``."""
    clock = time.perf_counter
    t0 = clock()
    batch = next(batches)
    t1 = clock()
    out = module.model(batch, num_samples=module.config.train.num_samples_train)
    t2 = clock()
    total, _ = module.model.loss(batch, out)
    t3 = clock()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    t4 = clock()
    optimizer.step()
    t5 = clock()
    if times is not None:
        for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[name].append(dt)
    return float(total.detach())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="training examples to generate")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (default 8)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from humr.data import make_dataloader
    from humr.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "data", n_train=args.n, n_test=0, seed=args.seed, workers=1)
        torch.set_num_threads(args.threads)
        module, optimizer, config, label = build(root, args.seed)
        loader = make_dataloader(root, "train", config.train.batch_size, shuffle=True,
                                 seed=args.seed, drop_last=True)

        if len(loader) == 0:
            raise SystemExit(f"--n {args.n} examples make no batch of {config.train.batch_size}; "
                             "use a larger --n")

        def forever():
            while True:
                yield from loader

        batches = forever()
        torch.manual_seed(args.seed)
        for _ in range(args.warmup):
            step(module, optimizer, batches)
        times = {k: [] for k in PHASES}
        for _ in range(args.steps):
            step(module, optimizer, batches, times)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.profile_steps):
                step(module, optimizer, batches)

    per_step = [sum(v) for v in zip(*times.values())]
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    print(f"cpu preset, {label}: batch {config.train.batch_size}, "
          f"{config.train.num_samples_train} hypotheses per image in training, flow "
          f"{config.model.flow.name} {config.model.flow.num_blocks} x "
          f"{config.model.flow.hidden_features}, backbone "
          f"{config.model.conditions['image'].backbone.name}, {params / 1e6:.2f} M trainable "
          "parameters, "
          f"{args.threads} torch threads")
    print(f"step time: median {1e3 * statistics.median(per_step):.0f} ms, min "
          f"{1e3 * min(per_step):.0f} ms over {args.steps} steps "
          f"({config.train.max_steps} steps of the preset: "
          f"{statistics.median(per_step) * config.train.max_steps / 60:.1f} min)")
    total = sum(statistics.median(v) for v in times.values())
    for name in PHASES:
        med = statistics.median(times[name])
        print(f"  {name:10s}{1e3 * med:8.1f} ms  {100 * med / total:5.1f} %")
    print(f"\ntorch.profiler, {args.profile_steps} steps, operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


if __name__ == "__main__":
    sys.exit(main())
