"""Speed and occlusion statistics of the synthetic benchmark generator (``humr synth``), against
the generator as it was before the speed work, measured in the same run.

The reference is the implementation at commit ``REFERENCE_COMMIT`` (per-face ``cv2.fillPoly``
rasteriser, roma Euler angles, H36M joints regressed for every posterior candidate, two extra
full-mesh passes per example): its four modules are read from git history into a temporary
package (``git show``), so the reference stays callable without a copy of it in the tree.
Both generators write N training examples with the default
:class:`humr.data.synthetic.SynthConfig` into temporary folders with the same number of worker
processes; the examples are read back with :class:`humr.data.HumrDataset` (full validation).
Other processes share the machine, so only the ratio of the two rates is meaningful; the runs
alternate (reference, new, reference, new ...) and the rate of each is the median over rounds.

Printed per generator:

* examples per second of the whole generation (posterior sampling, heatmaps, rendering,
  compression and writing of the shards), and the ratio new / reference;
* CPU seconds per example (user + system time of this process and of its worker processes,
  worker start-up included), which depends much less on the other jobs of a shared machine
  than the wall time, and the rate it implies on idle cores (``cores / CPU seconds``, the
  workers keeping every core busy);
* the share of examples with >= 1 and >= 2 invisible COCO joints, invisible as in the paper's
  evaluation (detector confidence < 0.5 or ground truth outside the crop,
  :func:`humr.engine.evaluation.invisible_joints`), also restricted to the highly articulated
  joints (elbows, wrists, knees, ankles), and the same by the generator's ground truth
  (``coco_visible``: outside the frame or behind an occluder);
* the number of distinct posterior samples kept per example (``posterior_count``, at most
  ``posterior_samples``; 1 = only the ground truth), over all examples and over those with an
  occluded joint.

Usage::

    python benchmarks/bench_synth.py --n 160 --workers 2 --rounds 1
"""
from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from humr.data import HumrDataset
from humr.data.synthetic import SynthConfig, generate
from humr.engine.evaluation import invisible_joints
from humr.heatmaps import ARTICULATED_COCO

#: the generator before the speed work (issue 16)
REFERENCE_COMMIT = "60912bff3d9aa0b33e0b429bcdf3b878c0035e4d"
_REFERENCE_MODULES = {"synthetic": "humr/data/synthetic.py", "detector": "humr/data/detector.py",
                      "pose_prior": "humr/data/pose_prior.py", "render": "humr/viz/render.py"}
_PACKAGE = "humr_synth_reference"


def reference_module(folder: Path):
    """``humr.data.synthetic`` of the reference commit, importable by spawned workers
    (``folder`` is put on ``sys.path``; the modules import each other instead of the current
    ones)."""
    repo = Path(__file__).resolve().parent.parent
    pkg = folder / _PACKAGE
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name, path in _REFERENCE_MODULES.items():
        src = subprocess.run(["git", "show", f"{REFERENCE_COMMIT}:{path}"], cwd=repo, check=True,
                             capture_output=True, text=True).stdout
        for other, other_path in _REFERENCE_MODULES.items():
            module = other_path[:-3].replace("/", ".")
            src = src.replace(f"from {module} import", f"from {_PACKAGE}.{other} import")
        (pkg / f"{name}.py").write_text(src)
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{_PACKAGE}.synthetic")


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children, seconds."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def statistics_rows(root: Path) -> dict:
    """Occlusion and posterior statistics of a generated train split."""
    arrays = HumrDataset(str(root), "train").arrays
    batch = {k: torch.from_numpy(arrays[k]).float() for k in ("coco_gt", "cond_kp", "center",
                                                             "scale")}
    invisible = invisible_joints(batch).numpy()                           # (N, 17)
    hidden = ~arrays["coco_visible"]
    art = list(ARTICULATED_COCO)
    return {"invisible": invisible, "invisible_art": invisible[:, art], "hidden": hidden,
            "hidden_art": hidden[:, art], "count": arrays["posterior_count"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160, help="examples to generate (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each generator")
    parser.add_argument("--body-model", default="procedural")
    args = parser.parse_args(argv)
    config = SynthConfig(body_model=args.body_model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref = reference_module(tmp / "code")
        generators = {"reference": (ref.generate, ref.SynthConfig(body_model=args.body_model)),
                      "new": (generate, config)}
        rates = {name: [] for name in generators}
        cpu = {name: [] for name in generators}
        stats = {}
        for r in range(args.rounds):
            for name, (gen, cfg) in generators.items():
                root = tmp / f"{name}_{r}"
                start, start_cpu = time.perf_counter(), cpu_seconds()
                gen(root, n_train=args.n, n_test=0, seed=args.seed, config=cfg,
                    workers=args.workers)
                rates[name].append(args.n / (time.perf_counter() - start))
                cpu[name].append((cpu_seconds() - start_cpu) / args.n)
                stats.setdefault(name, statistics_rows(root))
    rate = {k: statistics.median(v) for k, v in rates.items()}
    print(f"examples: {args.n}, seed {args.seed}, workers {args.workers}, rounds {args.rounds}, "
          f"crop {config.crop_res} px, posterior samples {config.posterior_samples}, candidates "
          f"{config.candidates} x {config.max_rounds} rounds; reference = {REFERENCE_COMMIT[:10]}")
    for name in generators:
        print(f"generation {name:9s}: {rate[name]:6.2f} examples/s ({1e3 / rate[name]:.0f} ms "
              f"per example; runs {', '.join(f'{x:.2f}' for x in rates[name])})")
    print(f"speed-up new / reference: {rate['new'] / rate['reference']:.2f}x")
    per = {k: statistics.median(v) for k, v in cpu.items()}
    cores = min(args.workers, 2) if args.workers > 1 else 1
    for name in generators:
        print(f"CPU time {name:9s}: {1e3 * per[name]:6.0f} ms per example -> "
              f"{cores / per[name]:6.1f} examples/s on {cores} idle core(s)")
    print(f"CPU-time ratio reference / new: {per['reference'] / per['new']:.2f}x")
    print(f"\n{'share of examples (%)':40s}{'':10s}{'>= 1 joint':>12s}{'>= 2 joints':>13s}"
          f"{'mean / ex':>11s}")
    names = (("invisible", "invisible (conf < 0.5 or outside crop)"),
             ("invisible_art", "  of them articulated"),
             ("hidden", "hidden by ground truth (coco_visible)"),
             ("hidden_art", "  of them articulated"))
    for key, label in names:
        for gen_name in generators:
            k = stats[gen_name][key].sum(1)
            print(f"{label:40s}{gen_name:10s}{100 * (k >= 1).mean():12.1f}"
                  f"{100 * (k >= 2).mean():13.1f}{k.mean():11.2f}")
    print(f"\n{'posterior samples kept (distinct)':40s}{'':10s}{'mean':>8s}{'median':>8s}"
          f"{'min':>6s}{'max':>6s}{'= 1 (%)':>9s}")
    for label, occluded_only in (("all examples", False), ("examples with a hidden joint", True)):
        for gen_name in generators:
            count = stats[gen_name]["count"]
            c = count[stats[gen_name]["hidden"].any(1)] if occluded_only else count
            if len(c):
                print(f"{label:40s}{gen_name:10s}{c.mean():8.1f}{np.median(c):8.1f}{c.min():6d}"
                      f"{c.max():6d}{100 * (c == 1).mean():9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
