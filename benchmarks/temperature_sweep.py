"""Is a trained model's distance to the true posterior a matter of calibration (issue 16)?

Evaluates one checkpoint on a synthetic split at several sampling temperatures T (hypotheses
1.. from latents N(0, T^2 I), the mode unchanged; :func:`humr.engine.module.example_latents`)
and prints, per T, the metrics issue 16 judges beside the oracle of the stored posterior:
best-of-N and mode MPJPE-24 (emdb protocol, mm), the energy distance of the hypotheses to the
posterior on occluded and on visible joints, and the hypotheses' 3D spread on visible and
invisible joints.

Reading it: if the energy distance fell well below its T = 1 value at some T < 1, the model
would be too broad (over-dispersed) and a temperature would close part of the gap; if it only
grows as T shrinks, the hypotheses are spread around the wrong centre (bias), which no
temperature removes.

Usage::

    python benchmarks/temperature_sweep.py --ckpt RUN/checkpoints/last.ckpt --data DIR \\
        --temperatures 0.5 0.8 1 1.25 1.5 --out temperature.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: (metric key, column title)
COLUMNS = (("emdb/mpjpe_min", "best-of-N MPJPE-24"), ("emdb/mpjpe_mode", "mode MPJPE-24"),
           ("energy_occluded", "E-dist occluded"), ("energy_visible", "E-dist visible"),
           ("spread_visible", "3D spread visible"), ("spread_invisible", "3D spread invisible"))


def markdown(results: dict[float, dict[str, float]], oracle: dict[str, float] | None,
             num_samples: int) -> str:
    """One row per temperature, then the oracle's row (``emdb/mpjpe_mean``: one posterior
    draw, the oracle's counterpart of a mode; energy: the noise floor)."""
    head = ["temperature"] + [title.replace("N", str(num_samples)) for _, title in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t, r in results.items():
        lines.append("| " + " | ".join([f"{t:g}"] + [f"{r[k]:.1f} mm" for k, _ in COLUMNS]) + " |")
    if oracle:
        alias = {"emdb/mpjpe_mode": "emdb/mpjpe_mean"}
        cells = [f"{oracle[alias.get(k, k)]:.1f} mm" if alias.get(k, k) in oracle else "" for k, _ in COLUMNS]
        lines.append("| " + " | ".join(["oracle"] + cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of humr train")
    parser.add_argument("--data", required=True, help="synthetic dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.8, 1.0, 1.25, 1.5])
    parser.add_argument("--num-samples", type=int, default=100, help="hypotheses per image")
    parser.add_argument("--max-examples", type=int, default=None, help="evaluate the first N")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args(argv)
    import torch

    from humr.data.oracle import dataset_oracle
    from humr.engine.inference import evaluate_checkpoint
    from humr.engine.module import HumrModule
    from humr.io import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    module = HumrModule.from_checkpoint(args.ckpt)
    results = {t: evaluate_checkpoint(module, args.data, split=args.split,
                                      num_samples=args.num_samples,
                                      max_examples=args.max_examples, temperature=t)
               for t in sorted(set(args.temperatures))}
    oracle = dataset_oracle(module.model.body, args.data, args.split, args.num_samples,
                            args.max_examples)
    print(markdown(results, oracle, args.num_samples))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(
            {"checkpoint": args.ckpt, "data": args.data, "split": args.split,
             "num_samples": args.num_samples, "oracle": oracle,
             "temperatures": {f"{t:g}": r for t, r in results.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
