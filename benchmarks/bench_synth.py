"""Speed and occlusion statistics of the synthetic benchmark generator (``humr synth``).

Generates N training examples with the default :class:`humr.data.synthetic.SynthConfig`
(``generate`` into a temporary folder, or ``--out``), reads them back with
:class:`humr.data.HumrDataset` (full validation) and prints:

* examples per second of the whole generation (posterior sampling, heatmaps, rendering,
  compression and writing of the shards);
* the share of examples with >= 1 and >= 2 invisible COCO joints, invisible as in the paper's
  evaluation (detector confidence < 0.5 or ground truth outside the crop,
  :func:`humr.engine.evaluation.invisible_joints`), also restricted to the highly articulated
  joints (elbows, wrists, knees, ankles), and the same by the generator's ground truth
  (``coco_visible``: outside the frame or behind an occluder);
* the number of distinct posterior samples kept per example (``posterior_count``, at most
  ``posterior_samples``; 1 = only the ground truth), over all examples and over those with an
  occluded joint.

Usage::

    python benchmarks/bench_synth.py --n 320 --workers 1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch

from humr.data import HumrDataset
from humr.data.synthetic import SynthConfig, generate
from humr.engine.evaluation import invisible_joints
from humr.heatmaps import ARTICULATED_COCO


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=320, help="examples to generate (default 320)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="generator processes (default 1)")
    parser.add_argument("--body-model", default="procedural")
    parser.add_argument("--out", default=None, help="dataset folder (default: a temporary one)")
    args = parser.parse_args(argv)
    config = SynthConfig(body_model=args.body_model)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or tmp
        start = time.perf_counter()
        generate(root, n_train=args.n, n_test=0, seed=args.seed, config=config,
                 workers=args.workers)
        seconds = time.perf_counter() - start
        arrays = HumrDataset(root, "train").arrays
    batch = {k: torch.from_numpy(arrays[k]).float() for k in ("coco_gt", "cond_kp", "center",
                                                             "scale")}
    invisible = invisible_joints(batch).numpy()                           # (N, 17)
    hidden = ~arrays["coco_visible"]
    art = list(ARTICULATED_COCO)
    count = arrays["posterior_count"]
    occluded = hidden.any(1)
    print(f"examples: {args.n}, seed {args.seed}, workers {args.workers}, torch threads "
          f"{threads}, crop {config.crop_res} px, posterior samples "
          f"{config.posterior_samples}, candidates {config.candidates} x {config.max_rounds} "
          "rounds")
    print(f"generation: {seconds:.1f} s, {args.n / seconds:.2f} examples/s "
          f"({1e3 * seconds / args.n:.0f} ms per example)")
    print(f"\n{'share of examples (%)':44s}{'>= 1 joint':>12s}{'>= 2 joints':>13s}"
          f"{'mean / ex':>11s}")
    rows = (("invisible (conf < 0.5 or outside crop)", invisible),
            ("  of them articulated", invisible[:, art]),
            ("hidden by ground truth (coco_visible)", hidden),
            ("  of them articulated", hidden[:, art]))
    for name, flags in rows:
        k = flags.sum(1)
        print(f"{name:44s}{100 * (k >= 1).mean():12.1f}{100 * (k >= 2).mean():13.1f}"
              f"{k.mean():11.2f}")
    print(f"\n{'posterior samples kept (distinct)':44s}{'mean':>8s}{'median':>8s}{'min':>6s}"
          f"{'max':>6s}{'= 1 (%)':>9s}")
    for name, sel in (("all examples", np.ones(len(count), bool)),
                      ("examples with a hidden joint", occluded)):
        c = count[sel]
        if len(c):
            print(f"{name:44s}{c.mean():8.1f}{np.median(c):8.1f}{c.min():6d}{c.max():6d}"
                  f"{100 * (c == 1).mean():9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
