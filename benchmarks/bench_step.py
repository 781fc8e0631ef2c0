"""Training-step time of the CPU ablation preset (``benchmarks/ablation/sizes/cpu.yaml``, full
model = Table 3 row 6) against the step of an earlier commit, measured in the same run.

Each side runs in its own Python process: ``new`` imports this checkout's ``humr``; the
``reference`` imports commit ``--reference`` (default :data:`REFERENCE_COMMIT`, the step before
the speed work of issue 16), whose ``humr`` package and ``benchmarks/bench_step.py`` are
exported with ``git archive`` into a temporary folder put first on ``PYTHONPATH``. Each side
generates ``--n`` training examples with its own generator (same seed and size), builds
:class:`humr.engine.module.HumrModule` with its own ``build`` and times optimiser steps with
its own ``step`` and presets (``benchmarks/ablation``; a warning is printed when the sides'
model sizes differ) outside Lightning (what Lightning runs: forward, the objective,
backward, Adam); only the loop around them (data iterator, warm-up, device, clock) is
shared. The phases are measured with ``time.perf_counter`` per step:

* ``data``: the next batch from :func:`humr.data.make_dataloader` (collate, image decoding,
  transfer to ``--device``);
* ``forward``: conditioners (backbone, pose2d, bbox), flow sampling, head, body model;
* ``loss``: the objective (the ground truth's log-density included) and the enabled losses;
* ``backward`` and ``optimizer``.

The step time is taken around the whole step by the shared loop, with the device synchronised
before and after (the reference's own phase clocks do not wait for a GPU, so on CUDA only its
step time, not its split into phases, is exact).

The sides alternate (reference, new, reference, new ...) for ``--rounds`` rounds; the step
time of each side is the median over all its timed steps, and the ratio reference / new is
printed, with the ratio of the fastest steps (on a shared machine, the least disturbed
ones). Other processes share the machine: only the ratios are meaningful; with a busy
machine prefer ``--threads 1`` (two threads then wait for each other). Then
``torch.profiler`` records ``--profile-steps`` steps of the new side and prints the operators
with the largest self time.

Usage::

    python benchmarks/bench_step.py --steps 8 --threads 2 --rounds 2
    python benchmarks/bench_step.py --device cuda
    # a copy of the checkout without its history (a GPU machine): the reference as a tar
    git archive -o ref.tar c319d55 humr benchmarks/bench_step.py benchmarks/ablation
    python benchmarks/bench_step.py --device cuda --reference-archive ref.tar
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

PHASES = ("data", "forward", "loss", "backward", "optimizer")
#: the training step before the speed work (issue 16 item 2)
REFERENCE_COMMIT = "c319d55"
_RESULT = "BENCH_STEP_RESULT "


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(module, optimizer, batches, times: dict | None = None) -> float:
    """One optimiser step; adds the phase times (seconds) to ``times``."""
    device = next(module.parameters()).device

    def clock():
        _sync(device)
        return time.perf_counter()

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


#: the paths of the reference that a side needs
REFERENCE_PATHS = ("humr", "benchmarks/bench_step.py", "benchmarks/ablation")


def export_reference(commit: str, folder: Path, archive: Path | None = None) -> Path:
    """``humr``, ``benchmarks/bench_step.py`` and the ablation presets of ``commit`` extracted
    into ``folder``, from ``git archive`` or from ``archive``, a tar that ``git archive`` made
    of those paths (for a copy of the checkout without the history, e.g. a GPU machine)."""
    folder.mkdir(parents=True, exist_ok=True)
    if archive is None:
        repo = Path(__file__).resolve().parent.parent
        tar = subprocess.run(["git", "archive", "--format=tar", commit, *REFERENCE_PATHS],
                             cwd=repo, check=True, capture_output=True).stdout
        archive = folder / "reference.tar"
        archive.write_bytes(tar)
    with tarfile.open(archive) as t:
        t.extractall(folder, filter="data")
    return folder


def worker(args) -> int:
    """Time one side (this process's ``humr``) and print its result as one JSON line."""
    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.bench_dir)                  # this side's build() and step()
    import bench_step as side

    from humr.data import make_dataloader
    from humr.data.synthetic import generate

    root = Path(args.data)
    if not (root / "train").exists():
        generate(root, n_train=args.n, n_test=0, seed=args.seed, workers=1)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module, optimizer, config, label = side.build(root, args.seed)
    module.to(device)
    optimizer = module.configure_optimizers()            # on the moved parameters
    loader = make_dataloader(root, "train", config.train.batch_size, shuffle=True,
                             seed=args.seed, drop_last=True)
    if len(loader) == 0:
        raise SystemExit(f"--n {args.n} examples make no batch of {config.train.batch_size}; "
                         "use a larger --n")

    def forever():
        while True:
            for batch in loader:
                yield {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                       for k, v in batch.items()}

    batches = forever()
    torch.manual_seed(args.seed)
    for _ in range(args.warmup):
        side.step(module, optimizer, batches)
    times = {k: [] for k in PHASES}
    step_times = []                # around the whole step, synchronised: the sides' own
    for _ in range(args.steps):    # phase clocks need not wait for the device
        _sync(device)
        start = time.perf_counter()
        side.step(module, optimizer, batches, times)
        _sync(device)
        step_times.append(time.perf_counter() - start)
    result = {"times": times, "step_times": step_times, "label": label, "batch": config.train.batch_size,
              "samples": config.train.num_samples_train, "flow": config.model.flow.name,
              "blocks": config.model.flow.num_blocks,
              "hidden": config.model.flow.hidden_features,
              "params": sum(p.numel() for p in module.parameters() if p.requires_grad),
              "max_steps": config.train.max_steps}
    if args.profile_steps:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                               if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(args.profile_steps):
                side.step(module, optimizer, batches)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        result["profile"] = prof.key_averages().table(sort_by=sort, row_limit=15)
    print(_RESULT + json.dumps(result), flush=True)
    return 0


def run_side(name: str, args, tmp: Path, reference: Path) -> dict:
    """One timed run of a side in a fresh process."""
    here = Path(__file__).resolve().parent
    code = reference if name == "reference" else here.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(code)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    cmd = [sys.executable, str(here / "bench_step.py"), "--worker",
           "--bench-dir", str(code / "benchmarks"), "--data", str(tmp / f"data_{name}"),
           "--n", str(args.n), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--seed", str(args.seed), "--device", args.device,
           "--profile-steps", str(args.profile_steps if name == "new" else 0)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT)]
    if proc.returncode or not lines:
        raise SystemExit(f"the {name} side failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(_RESULT):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="training examples to generate")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run (default 8)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternating runs of each side (default 1)")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--reference", default=REFERENCE_COMMIT,
                        help=f"commit of the reference step (default {REFERENCE_COMMIT})")
    parser.add_argument("--reference-archive", type=Path,
                        help="tar of the reference's " + ", ".join(REFERENCE_PATHS) + " made by "
                        "`git archive` (default: made from --reference in this checkout)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bench-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = export_reference(args.reference, tmp / "reference", args.reference_archive)
        runs: dict = {"reference": [], "new": []}
        for _ in range(args.rounds):
            for name, results in runs.items():
                results.append(run_side(name, args, tmp, reference))
    info = runs["new"][-1]
    size_keys = ("label", "batch", "samples", "flow", "blocks", "hidden", "params")
    differ = [k for k in size_keys if runs["reference"][-1][k] != info[k]]
    if differ:
        print(f"WARNING: the sides' presets differ in {', '.join(differ)} (reference "
              f"{[runs['reference'][-1][k] for k in differ]}, new {[info[k] for k in differ]}): "
              "the ratio is not at equal model size")
    print(f"cpu preset, {info['label']}: batch {info['batch']}, {info['samples']} hypotheses per "
          f"image in training, flow {info['flow']} {info['blocks']} x {info['hidden']}, "
          f"{info['params'] / 1e6:.2f} M trainable parameters, device {args.device}, "
          f"{args.threads} torch threads; {args.rounds} round(s) x {args.steps} steps per side; "
          f"reference = commit {args.reference}")
    median, fastest = {}, {}
    for name, results in runs.items():
        phases = {k: [t for r in results for t in r["times"][k]] for k in PHASES}
        per_step = [t for r in results for t in r["step_times"]]
        median[name], fastest[name] = statistics.median(per_step), min(per_step)
        print(f"\n{name}: step median {1e3 * median[name]:.0f} ms, min {1e3 * min(per_step):.0f} "
              f"ms ({info['max_steps']} steps of the preset: "
              f"{median[name] * info['max_steps'] / 60:.1f} min)")
        total = sum(statistics.median(v) for v in phases.values())
        for k in PHASES:
            med = statistics.median(phases[k])
            print(f"  {k:10s}{1e3 * med:8.1f} ms  {100 * med / total:5.1f} %")
    print(f"\nspeed-up reference / new: {median['reference'] / median['new']:.2f}x (medians), "
          f"{fastest['reference'] / fastest['new']:.2f}x (fastest steps, the least disturbed "
          "by other processes)")
    if "profile" in info:
        print(f"\ntorch.profiler of the new side, {args.profile_steps} steps, operators by self "
              "time:")
        print(info["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
