"""Where a trained model's error comes from (issue 16): the MPJPE-24 of its mode and best of N
hypotheses on a synthetic split, recomputed with parts of the prediction replaced by the ground
truth, on the test split and on training examples.

For every example the model draws N hypotheses (the mode first); the errors (``emdb``
protocol: 24 SMPL joints, hips-midpoint root, mm) are computed

* ``model``: as predicted;
* ``gt shape``: the hypotheses' rotations with the ground-truth betas;
* ``gt root``: the ground-truth global orientation (joint 0) with the hypotheses' body
  rotations and betas;
* ``gt shape + root``: both replaced: what remains is the body pose alone.

Also printed: the betas' RMS error and the global orientation's geodesic error of the mode
(degrees). Test and training examples scoring alike means the model underfits (more steps
would help); training examples scoring much better means it overfits (more data would).

Usage::

    python benchmarks/error_decomposition.py --ckpt RUN/checkpoints/last.ckpt --data DIR \\
        --splits test train --max-examples 128 --out decomposition.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import roma
import torch

from humr.engine.checkpoint import load_module
from humr.engine.datamodule import HumrDataModule
from humr.geometry import axis_angle_to_matrix
from humr.metrics.functional import hypothesis_errors

#: the variants: (name, ground-truth shape?, ground-truth root?)
VARIANTS = (("model", False, False), ("gt shape", True, False), ("gt root", False, True),
            ("gt shape + root", True, True))


@torch.no_grad()
def decompose(model, loader, num_samples: int, seed: int = 0) -> dict[str, float]:
    """Mean errors (mm, degrees) over ``loader``'s examples; keys ``<variant>/mode``,
    ``<variant>/best`` (best of ``num_samples``), ``betas_rms``, ``root_deg``."""
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    count = 0
    J = model.num_joints
    for batch in loader:
        B = batch["pose"].shape[0]
        z = torch.randn(B, num_samples, model.pose_dim, generator=gen)
        z[:, 0] = 0.0
        out = model(batch, num_samples=num_samples, z=z.to(model.dtype))
        gt_rot = axis_angle_to_matrix(batch["pose"].reshape(B, -1, 3)[:, :J]).to(model.dtype)
        gt_betas = batch["betas"][:, None].expand_as(out["betas"]).to(model.dtype)
        truth = model.body_geometry(gt_rot, batch["betas"].to(model.dtype))["joints"]
        for name, use_shape, use_root in VARIANTS:
            rot = out["rotmat"].clone()
            if use_root:
                rot[:, :, 0] = gt_rot[:, None, 0]
            joints = model.body_geometry(rot, gt_betas if use_shape else out["betas"])["joints"]
            err = hypothesis_errors(joints, truth, "emdb")["mpjpe"]             # (B, S)
            sums[f"{name}/mode"] = sums.get(f"{name}/mode", 0.0) + float(err[:, 0].sum())
            sums[f"{name}/best"] = sums.get(f"{name}/best", 0.0) + float(err.min(1).values.sum())
        betas_err = (out["betas"][:, 0] - gt_betas[:, 0]).pow(2).mean(-1).sqrt()
        root = roma.rotmat_geodesic_distance(out["rotmat"][:, 0, 0], gt_rot[:, 0])
        sums["betas_rms"] = sums.get("betas_rms", 0.0) + float(betas_err.sum())
        sums["root_deg"] = sums.get("root_deg", 0.0) + float(torch.rad2deg(root).sum())
        count += B
    return {key: value / count for key, value in sums.items()} | {"num_examples": count}


def markdown(results: dict[str, dict[str, float]], num_samples: int) -> str:
    """One row per split: mode / best-of-N MPJPE-24 of each variant, betas and root error."""
    head = ["split", "examples"] + [f"{v} (mode / best-of-{num_samples})" for v, _, _ in VARIANTS]
    head += ["betas RMS", "root error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split, r in results.items():
        cells = [split, str(int(r["num_examples"]))]
        cells += [f"{r[f'{v}/mode']:.1f} / {r[f'{v}/best']:.1f} mm" for v, _, _ in VARIANTS]
        cells += [f"{r['betas_rms']:.2f}", f"{r['root_deg']:.1f} deg"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of humr train")
    parser.add_argument("--data", required=True, help="synthetic dataset folder")
    parser.add_argument("--splits", nargs="+", default=["test", "train"])
    parser.add_argument("--max-examples", type=int, default=128, help="examples per split")
    parser.add_argument("--num-samples", type=int, default=100, help="hypotheses per image")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)
    from humr.io import atomic_write_text

    model = load_module(args.ckpt).model.eval()
    data = HumrDataModule(args.data, batch_size=args.batch_size, eval_batch_size=args.batch_size,
                          max_eval_examples=args.max_examples)
    results = {split: decompose(model, data.eval_dataloader(split), args.num_samples, args.seed)
               for split in args.splits}
    print(markdown(results, args.num_samples))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
