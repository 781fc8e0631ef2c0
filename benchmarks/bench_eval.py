"""Evaluation with meshes: 16 images x 100 hypotheses at paper size, humr vs the reference
formulation, measured in the same run.

Both sides start from the same context c (B, C = 720 image + 256 pose2d + 3 bbox features; the
backbone is the same for both and left out) and the same RealNVP weights (8 blocks, width 1024,
D = 24 x 6), draw S = 100 hypotheses (z = 0 first) and produce the meshes of all of them:

* ``humr``: the flow with the subnets' context-part computed once per image (factorized), then
  the one body pass an evaluation of ``humr`` runs on the hypotheses
  (:func:`humr.engine.evaluation.evaluation_outputs` asks the model for
  :data:`~humr.engine.evaluation.EVAL_OUTPUTS`): :class:`humr.body.BodyModel` with
  ``return_vertices=True`` and the H36M regressor (meshes, joints, COCO-17, H36M-17), with
  the betas of an image shared by its hypotheses (broadcast, as the model passes them).
* ``reference``: the FrEIA-style flow with the context concatenated to every hypothesis
  (``factorized=False``, the same weights) and one full ``smplx.SMPL`` forward pass of every
  hypothesis (vertices and joints).

Printed: median time of each side (no grad), the ratio reference / humr of the medians and of
the fastest runs (on a shared machine, the least disturbed ones), the split of the humr
time into flow / body passes, each side's arithmetic floor (below), and the top operators of a
``torch.profiler`` run of humr. Other processes share the machine: only the ratio measured in
the same run is meaningful.

The arithmetic floor of a side is the time its matrix products alone would take (FLOPs
counted by ``torch.utils.flop_counter``) at the rate of the flow's largest product shape,
``(B*S, H) x (H, H)`` in float32, the fastest of three runs after each round of the timing.
Float32 products on the machine run at about that rate at best, so the reference's median
over humr's floor bounds the speed-up humr's arithmetic allows there, whatever the rest costs.

``--bf16`` also times humr's flow under ``torch.autocast`` to bfloat16 (what Lightning's
``precision="bf16-mixed"`` does; the body model stays in float32) and prints how far its
joints move from float32's, in mm, for a flow whose zero-initialised last layers are given
random weights (std 0.02), since the identity flow of the timing moves nothing.

Usage::

    python benchmarks/bench_eval.py --repeats 3 --threads 2
    python benchmarks/bench_eval.py --device cuda
    python benchmarks/bench_eval.py --bf16
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial

import torch

from humr.body import BodyModel
from humr.flows import build_flow
from humr.geometry import matrix_to_rot6d, rot6d_to_matrix


def rotations(x: torch.Tensor, *lead: int) -> torch.Tensor:
    """Rotation matrices (*lead, J, 3, 3) of flow outputs ``x`` (..., J * 6) taken as offsets
    from the identity's 6D vector, as ``HumrModel`` offsets them from its mean pose: the
    identity flow's mode x = 0 is then the rest pose, not a degenerate 6D vector (NaN)."""
    identity = matrix_to_rot6d(torch.eye(3, dtype=x.dtype, device=x.device))
    return rot6d_to_matrix(x.reshape(*lead, -1, 6) + identity)


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


def seconds(fn, clock) -> float:
    """Seconds of one call ``fn()``, between two readings of ``clock`` (which synchronises the
    device)."""
    start = clock()
    fn()
    return clock() - start


@torch.no_grad()
def bf16_report(flow, body: BodyModel, c: torch.Tensor, z: torch.Tensor, repeats: int,
                clock) -> None:
    """Median time of ``flow.sample`` in float32 and under bfloat16 autocast, and the joint
    displacement (mm, root-relative) of the bfloat16 hypotheses of a non-identity copy."""
    import copy

    device, (B, S) = c.device, z.shape[:2]

    def sample(f, low: bool) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
            return f.sample(c, S, z=z)[0].float()

    times = {}
    for low in (False, True):
        sample(flow, low)
        times[low] = statistics.median(seconds(partial(sample, flow, low), clock)
                                       for _ in range(repeats))
    moved = copy.deepcopy(flow)
    gen = torch.Generator().manual_seed(1)
    for p in moved.parameters():
        if not p.any():
            p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    betas = z.new_zeros(B, S, body.num_betas)
    joints = [body(rotations(sample(moved, low), B, S), betas)["joints"]
              for low in (False, True)]
    err = 1000 * ((joints[1] - joints[1][..., :1, :]) - (joints[0] - joints[0][..., :1, :])
                  ).norm(dim=-1)
    print(f"bf16 autocast flow: {times[True]:.3f} s against {times[False]:.3f} s in float32 "
          f"({times[False] / times[True]:.2f}x); joints of a non-identity flow move by "
          f"{err.mean():.2f} mm on average, {err.amax():.1f} mm at most")


@torch.no_grad()
def arithmetic_floor(sides: dict, rate: float) -> dict[str, float]:
    """Matrix-product GFLOP of each side's call (``sides``: name -> callable, counted by
    ``torch.utils.flop_counter``) and its floor in seconds at ``rate`` GFLOP/s: prints both and
    returns ``{name: floor seconds}``."""
    from torch.utils.flop_counter import FlopCounterMode

    floor = {}
    for name, fn in sides.items():
        with FlopCounterMode(display=False) as counter:
            fn()
        gflop = counter.get_total_flops() / 1e9
        floor[name] = gflop / rate
        print(f"  {name:10s}{gflop:10.4g} GFLOP {floor[name]:8.3f} s")
    return floor


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
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the flow under bfloat16 autocast (see above)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    body = BodyModel("procedural").to(device)
    ref_body = smplx_reference(body).to(device)
    J, B, S = body.num_joints, args.batch, args.samples
    fact, concat = (f.to(device) for f in make_flows(6 * J, args.context, args.blocks,
                                                      args.hidden, args.seed))
    gen = torch.Generator().manual_seed(args.seed)
    c = torch.randn(B, args.context, generator=gen).to(device)
    z = torch.randn(B, S, 6 * J, generator=gen)
    z[:, 0] = 0
    z = z.to(device)
    betas = torch.randn(B, 1, body.num_betas, generator=gen).to(device)   # one shape per image

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def flow_pass() -> torch.Tensor:
        return rotations(fact.sample(c, S, z=z)[0], B, S)

    def body_pass(rot: torch.Tensor):
        body(rot, betas.expand(B, S, -1), return_vertices=True)   # meshes, joints, H36M-17

    def humr_side(parts: dict | None = None):
        t0 = clock()
        rot = flow_pass()
        t1 = clock()
        body_pass(rot)
        t2 = clock()
        if parts is not None:
            for k, v in zip(("flow", "body meshes"), (t1 - t0, t2 - t1)):
                parts.setdefault(k, []).append(v)

    def reference_side():
        x, _, _ = concat.sample(c, S, z=z)
        rot = rotations(x, B * S)
        ref_body(global_orient=rot[:, :1], body_pose=rot[:, 1:],
                 betas=betas.expand(B, S, -1).reshape(B * S, -1), pose2rot=False)

    times = {"humr": [], "reference": []}
    parts: dict = {}
    a, b = (torch.randn(B * S, args.hidden, device=device),
            torch.randn(args.hidden, args.hidden, device=device))

    def product():                            # the arithmetic floor's calibration product
        torch.mm(a, b)

    product_times = []                        # the arithmetic floor's rate, sampled every round
    with torch.no_grad():
        humr_side(), reference_side(), product()                            # warm-up
        for _ in range(args.repeats):
            for name, fn in (("reference", reference_side), ("humr", lambda: humr_side(parts))):
                times[name].append(seconds(fn, clock))
            product_times += [seconds(product, clock) for _ in range(3)]
        from torch.profiler import ProfilerActivity, profile

        cuda = device.type == "cuda"
        with profile(activities=[ProfilerActivity.CPU]
                     + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
            humr_side()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{B} images x {S} hypotheses, realnvp {args.blocks} x {args.hidden}, D = {6 * J}, "
          f"C = {args.context}, device {args.device}, {args.threads} torch threads, "
          f"{args.repeats} repeats")
    for name in ("reference", "humr"):
        print(f"  {name:10s}{med[name]:8.3f} s  (runs {', '.join(f'{t:.3f}' for t in times[name])})")
    fastest = {k: min(v) for k, v in times.items()}
    print(f"speed-up reference / humr: {med['reference'] / med['humr']:.2f}x (medians), "
          f"{fastest['reference'] / fastest['humr']:.2f}x (fastest runs, the least disturbed by "
          "other processes)")
    for k, v in parts.items():
        print(f"  humr {k:12s}{statistics.median(v):8.3f} s")
    rate = 2 * B * S * args.hidden ** 2 / min(product_times) / 1e9
    print(f"arithmetic floor (matrix products at {rate:.0f} GFLOP/s, the fastest of "
          f"{len(product_times)} float32 products {B * S} x {args.hidden} x {args.hidden} timed "
          "between the rounds):")
    with torch.no_grad():
        rot = flow_pass()
    floor = arithmetic_floor({"reference": reference_side, "humr flow": flow_pass,
                              "humr body": lambda: body_pass(rot)}, rate)
    humr_floor = floor["humr flow"] + floor["humr body"]
    print(f"the largest speed-up humr's arithmetic allows: reference median / humr floor = "
          f"{med['reference'] / humr_floor:.2f}x (humr's median is {med['humr'] / humr_floor:.2f}x "
          f"its floor: flow {statistics.median(parts['flow']) / floor['humr flow']:.2f}x, body "
          f"{statistics.median(parts['body meshes']) / floor['humr body']:.2f}x)")
    if args.bf16:
        bf16_report(fact, body, c, z, args.repeats, clock)
    print("\ntorch.profiler of the humr side, operators by self time:")
    print(prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else
                                    "self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
