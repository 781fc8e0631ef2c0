"""Evaluation with meshes: 16 images x 100 hypotheses at paper size, humr vs the reference
formulation, measured in the same run.

Both sides start from the same context c (B, C = 720 image + 256 pose2d + 3 bbox features; the
backbone is the same for both and left out) and the same RealNVP weights (8 blocks, width 1024,
D = 24 x 6), draw S = 100 hypotheses (z = 0 first) and produce the meshes of all of them:

* ``humr``: the flow with the subnets' context-part computed once per image (factorized), then
  what an evaluation of ``humr`` runs on the hypotheses: the model's joints-only body pass
  (joints, COCO-17) and the metrics' full pass with vertices (:class:`humr.body.BodyModel`,
  ``return_vertices=True``).
* ``reference``: the FrEIA-style flow with the context concatenated to every hypothesis
  (``factorized=False``, the same weights) and one full ``smplx.SMPL`` forward pass of every
  hypothesis (vertices and joints).

Printed: median time of each side (no grad), the ratio reference / humr, the split of the humr
time into flow / body passes, and the top operators of a ``torch.profiler`` run of humr.
Other processes share the machine: only the ratio measured in the same run is meaningful.

Usage::

    python benchmarks/bench_eval.py --repeats 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from humr.body import BodyModel
from humr.flows import build_flow
from humr.geometry import rot6d_to_matrix


def make_flows(dim: int, context: int, blocks: int, hidden: int, seed: int):
    """(factorized, concatenated) RealNVP flows holding the same weights."""
    fact = build_flow("realnvp", dim, context, num_blocks=blocks, hidden_features=hidden,
                      factorized=True, seed=seed)
    concat = build_flow("realnvp", dim, context, num_blocks=blocks, hidden_features=hidden,
                        factorized=False, seed=seed)
    concat.load_state_dict(fact.state_dict())
    return fact.eval(), concat.eval()


def smplx_reference(body: BodyModel):
    """``smplx.SMPL`` of the same model file as ``body`` (the reference's full pass)."""
    import smplx

    return smplx.create(str(body.model_file), model_type="smpl", gender="neutral",
                        num_betas=body.num_betas).eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--context", type=int, default=979)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = BodyModel("procedural")
    ref_body = smplx_reference(body)
    J, B, S = body.num_joints, args.batch, args.samples
    fact, concat = make_flows(6 * J, args.context, args.blocks, args.hidden, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    c = torch.randn(B, args.context, generator=gen)
    z = torch.randn(B, S, 6 * J, generator=gen)
    z[:, 0] = 0
    betas = torch.randn(B, body.num_betas, generator=gen).repeat_interleave(S, 0)

    def humr_side(parts: dict | None = None):
        t0 = time.perf_counter()
        x, _, _ = fact.sample(c, S, z=z)
        rot = rot6d_to_matrix(x.reshape(B * S, J, 6))
        t1 = time.perf_counter()
        body(rot, betas, h36m=False)                      # the model's keypoints
        t2 = time.perf_counter()
        body(rot, betas, return_vertices=True)            # the metrics' meshes
        t3 = time.perf_counter()
        if parts is not None:
            for k, v in zip(("flow", "body joints", "body meshes"), (t1 - t0, t2 - t1, t3 - t2)):
                parts.setdefault(k, []).append(v)

    def reference_side():
        x, _, _ = concat.sample(c, S, z=z)
        rot = rot6d_to_matrix(x.reshape(B * S, J, 6))
        ref_body(global_orient=rot[:, :1], body_pose=rot[:, 1:], betas=betas, pose2rot=False)

    times = {"humr": [], "reference": []}
    parts: dict = {}
    with torch.no_grad():
        humr_side(), reference_side()                         # warm-up
        for _ in range(args.repeats):
            for name, fn in (("reference", reference_side), ("humr", lambda: humr_side(parts))):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            humr_side()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{B} images x {S} hypotheses, realnvp {args.blocks} x {args.hidden}, D = {6 * J}, "
          f"C = {args.context}, {args.threads} torch threads, {args.repeats} repeats")
    for name in ("reference", "humr"):
        print(f"  {name:10s}{med[name]:8.3f} s  (runs {', '.join(f'{t:.3f}' for t in times[name])})")
    print(f"speed-up reference / humr: {med['reference'] / med['humr']:.2f}x")
    for k, v in parts.items():
        print(f"  humr {k:12s}{statistics.median(v):8.3f} s")
    print("\ntorch.profiler of the humr side, operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
