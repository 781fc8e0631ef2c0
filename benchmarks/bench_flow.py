"""Factorized vs concatenated context in the flows' coupling subnets (paper configuration).

For each flow (nice, realnvp, glow) with B = 64 images, S = 26 samples, D = 132, C = 979 this
times forward + backward of

* ``sample``:   x, log_prob = flow.sample(c, S, z);  loss = mean(x^2) - mean(log_prob)
* ``log_prob``: loss = -mean(flow.log_prob(x, c))

once with the context-part of every subnet's first layer computed per image (factorized, B rows)
and once with the concatenated input ``[x, c]`` (B*S rows), both flows holding the same weights,
and prints the speed-up (concatenated time / factorized time) measured in the same run.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the step;
on CPU the growth of the process's peak resident set size (``VmHWM``, reset before the step)
during one step, each measured in a fresh subprocess (tracemalloc does not see torch's
allocator; ``ru_maxrss`` is inherited from the parent across exec) with glibc's mmap threshold
fixed, so that the RSS follows the live tensors.

Usage::

    python benchmarks/bench_flow.py --device cpu --repeats 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from humr.flows import build_flow

OPS = ("sample", "log_prob")
MODES = ("factorized", "concatenated")


def make_inputs(args, device: torch.device):
    """Context c (B, C) requiring grad, data x and latents z (B, S, D)."""
    gen = torch.Generator().manual_seed(args.seed)
    c = torch.randn(args.batch, args.context, generator=gen).to(device).requires_grad_(True)
    x = torch.randn(args.batch, args.samples, args.dim, generator=gen).to(device)
    z = torch.randn(args.batch, args.samples, args.dim, generator=gen).to(device)
    return c, x, z


def make_flow(name: str, mode: str, args, device: torch.device):
    """The flow with gradients allocated (zeroed in place by each step)."""
    torch.manual_seed(args.seed)
    flow = build_flow(name, args.dim, args.context, factorized=mode == "factorized").to(device)
    for p in flow.parameters():
        p.grad = torch.zeros_like(p)
    return flow


def make_pair(name: str, args, device: torch.device, c, x):
    """Factorized and concatenated flows holding the same weights, moved off the identity init
    (the no-grad log_prob also runs Glow's data-dependent ActNorm initialisation)."""
    flows = {mode: make_flow(name, mode, args, device) for mode in MODES}
    with torch.no_grad():
        for p in flows["factorized"].parameters():
            p.add_(0.01 * torch.randn_like(p))
        flows["factorized"].log_prob(x, c)
    flows["concatenated"].load_state_dict(flows["factorized"].state_dict())
    return flows


def step(flow, op: str, c, x, z) -> torch.Tensor:
    """One forward + backward pass; returns the (detached) log-probabilities."""
    flow.zero_grad(set_to_none=False)
    c.grad = None
    if op == "sample":
        xs, log_prob, _ = flow.sample(c, z.shape[1], z=z)
        loss = xs.square().mean() - log_prob.mean()
    else:
        log_prob = flow.log_prob(x, c)
        loss = -log_prob.mean()
    loss.backward()
    return log_prob.detach()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(name: str, args, device: torch.device) -> dict:
    """Median seconds of each (op, mode), modes interleaved; max |log_prob| difference."""
    c, x, z = make_inputs(args, device)
    flows = make_pair(name, args, device, c, x)
    out = {}
    for op in OPS:
        results = {mode: step(flows[mode], op, c, x, z) for mode in MODES}  # warm-up
        times = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                sync(device)
                start = time.perf_counter()
                step(flows[mode], op, c, x, z)
                sync(device)
                times[mode].append(time.perf_counter() - start)
        out[op] = {mode: statistics.median(t) for mode, t in times.items()}
        out[op]["max_abs_diff"] = (results["factorized"] - results["concatenated"]).abs().max().item()
    return out


def peak_memory_mb(name: str, op: str, mode: str, args, device: torch.device) -> float:
    """Peak memory (MiB) of one step of ``op`` in ``mode`` above the memory held before it
    (weights, gradient buffers and inputs already allocated)."""
    c, x, z = make_inputs(args, device)
    flow = make_flow(name, mode, args, device)
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(flow, op, c, x, z)
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = reset_peak_rss_kib()
    step(flow, op, c, x, z)
    return (peak_rss_kib() - before) / 1024


def peak_rss_kib() -> int:
    """Peak resident set size of this process image (KiB): ``VmHWM`` from /proc on Linux, which,
    unlike ``ru_maxrss``, is not inherited from the parent across fork + exec."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:  # no procfs: ru_maxrss (KiB on Linux, bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss_kib() -> int:
    """Reset the peak RSS to the current RSS where the kernel allows it (clear_refs 5); returns
    the peak RSS the next measurement is relative to."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    return peak_rss_kib()


def peak_memory_subprocess(name: str, op: str, mode: str, args) -> float:
    """Run :func:`peak_memory_mb` in a fresh interpreter, so the high-water mark is its own."""
    cmd = [sys.executable, __file__, "--child", name, op, mode, "--device", args.device,
           "--batch", str(args.batch), "--samples", str(args.samples), "--dim", str(args.dim),
           "--context", str(args.context), "--seed", str(args.seed)]
    # A fixed glibc mmap threshold returns every large freed block to the OS at once, so the
    # RSS follows the live tensors instead of the allocator's history (reproducible peaks).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per (op, mode)")
    parser.add_argument("--flows", nargs="+", default=["nice", "realnvp", "glow"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=26)
    parser.add_argument("--dim", type=int, default=132)
    parser.add_argument("--context", type=int, default=979)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--child", nargs=3, metavar=("FLOW", "OP", "MODE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        print(json.dumps({"peak_mb": peak_memory_mb(*args.child, args, device)}))
        return 0
    print(f"flows: B={args.batch} S={args.samples} D={args.dim} C={args.context} "
          f"device={device} threads={torch.get_num_threads()} repeats={args.repeats} "
          f"(forward + backward, median)")
    header = (f"{'flow':8s} {'op':9s} {'fact ms':>9s} {'concat ms':>10s} {'speed-up':>9s} "
              f"{'fact MiB':>9s} {'concat MiB':>11s} {'mem ratio':>10s} {'max|dlogp|':>11s}")
    print(header)
    for name in args.flows:
        timing = time_pair(name, args, device)
        for op in OPS:
            t = timing[op]
            row = (f"{name:8s} {op:9s} {1e3 * t['factorized']:9.1f} {1e3 * t['concatenated']:10.1f} "
                   f"{t['concatenated'] / t['factorized']:8.2f}x")
            if args.no_memory:
                row += f" {'-':>9s} {'-':>11s} {'-':>10s}"
            else:
                mem = {mode: peak_memory_subprocess(name, op, mode, args) for mode in MODES}
                ratio = mem["concatenated"] / mem["factorized"] if mem["factorized"] > 0 else float("nan")
                row += f" {mem['factorized']:9.1f} {mem['concatenated']:11.1f} {ratio:9.2f}x"
            print(row + f" {t['max_abs_diff']:11.2e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
