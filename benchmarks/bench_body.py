"""Joints-only body path vs the full mesh pass, for B x S = 64 x 26 bodies.

Three modes from the same random rotation matrices and betas:

* ``training``: ``BodyModel.forward(..., h36m=False)``, the model's call in training: joints
  (N, 24, 3) and COCO-17 by forward kinematics of the shape-dependent rest joints, skinning of
  only the five COCO face vertices;
* ``joints_only``: ``BodyModel.forward(..., joints_only=True)``: also H36M-17 / LSP-14, so the
  support of the H36M regressor is skinned too;
* ``full``: ``BodyModel.forward(..., joints_only=False)`` (humr's skinning of all 6890
  vertices, which the tests compare with smplx's forward, then the same keypoint selection
  and regressors).

Printed: time of the forward pass (no grad) and of forward + backward (loss = sum of squares
of every output), and the peak memory of forward + backward, with the ratios full / training
and full / joints_only measured in the same run. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` above the memory held before the step; on CPU the growth
of the peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``; helpers of
``bench_flow.py``) during one step, each mode in a fresh subprocess with glibc's mmap threshold
fixed so that freed tensors leave the RSS.

Usage::

    python benchmarks/bench_body.py --device cpu --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from bench_flow import (  # shared measurement helpers
    peak_rss_kib,
    reset_peak_rss_kib,
    sync,
)

from humr.body import BodyModel

# mode -> BodyModel.forward arguments: the model's training call (joints and COCO-17 only, five
# face vertices skinned), the joints-only path with H36M-17 / LSP-14, the full smplx pass
MODES = {"training": {"joints_only": True, "h36m": False},
         "joints_only": {"joints_only": True},
         "full": {"joints_only": False}}


def make_inputs(args, device):
    gen = torch.Generator().manual_seed(args.seed)
    aa = 0.5 * torch.randn(args.batch, args.samples, 24, 3, generator=gen)
    betas = torch.randn(args.batch, args.samples, 10, generator=gen)
    from humr.geometry import axis_angle_to_matrix

    return axis_angle_to_matrix(aa).to(device), betas.to(device)


def step(body, rot, betas, mode: str, backward: bool) -> None:
    if backward:
        rot, betas = rot.detach().requires_grad_(True), betas.detach().requires_grad_(True)
    with torch.set_grad_enabled(backward):
        out = body(rot, betas, **MODES[mode])
        if backward:
            sum(v.square().sum() for v in out.values()).backward()


def time_modes(body, rot, betas, backward, args, device) -> dict:
    """Median seconds of one step per mode; modes interleaved so both see the same load."""
    for _ in range(args.warmup):
        for mode in MODES:
            step(body, rot, betas, mode, backward)
    times = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            sync(device)
            t = time.perf_counter()
            step(body, rot, betas, mode, backward)
            sync(device)
            times[mode].append(time.perf_counter() - t)
    return {mode: statistics.median(t) for mode, t in times.items()}


def peak_memory(body, rot, betas, mode, device) -> int:
    """Bytes of peak memory added by one forward + backward step (after a warm-up step)."""
    step(body, rot, betas, mode, True)
    sync(device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        base = 1024 * reset_peak_rss_kib()
    step(body, rot, betas, mode, True)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 1024 * peak_rss_kib()
    return peak - base


def child(args) -> None:
    """Subprocess: the peak memory of one mode, printed as JSON."""
    device = torch.device(args.device)
    body = BodyModel(args.model_path).to(device)
    rot, betas = make_inputs(args, device)
    print(json.dumps({"peak": peak_memory(body, rot, betas, args.child, device)}))


def cpu_peak_in_subprocess(args, mode: str) -> int:
    cmd = [sys.executable, __file__, "--child", mode, "--device", args.device, "--model-path",
           args.model_path, "--batch", str(args.batch), "--samples", str(args.samples),
           "--seed", str(args.seed)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-path", default="procedural", help="body model (folder or file)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=26)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return 0
    device = torch.device(args.device)
    body = BodyModel(args.model_path).to(device)
    rot, betas = make_inputs(args, device)
    n = args.batch * args.samples
    print(f"bodies: {args.batch} x {args.samples} = {n}, device {device}, threads "
          f"{torch.get_num_threads()}, keypoint vertices skinned "
          f"by joints_only: {body._sub_idx.numel()} of {body.v_template.shape[0]}")
    res = {m: {} for m in MODES}
    for key, backward in (("forward", False), ("forward+backward", True)):
        for mode, t in time_modes(body, rot, betas, backward, args, device).items():
            res[mode][key] = t
    for mode in MODES:
        res[mode]["peak"] = (peak_memory(body, rot, betas, mode, device) if device.type == "cuda"
                             else cpu_peak_in_subprocess(args, mode))
    print(f"{'':22s}" + "".join(f"{m:>13s}" for m in MODES)
          + f"{'full/training':>15s}{'full/joints_only':>18s}")
    for key, unit, scale in (("forward", "ms", 1e3), ("forward+backward", "ms", 1e3),
                             ("peak", "MB", 2.0 ** -20)):
        r = {m: res[m][key] for m in MODES}
        label = "peak fwd+bwd" if key == "peak" else key
        print(f"{label + f' ({unit})':22s}" + "".join(f"{scale * r[m]:13.2f}" for m in MODES)
              + f"{r['full'] / max(r['training'], 1e-12):15.1f}"
              + f"{r['full'] / max(r['joints_only'], 1e-12):18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
