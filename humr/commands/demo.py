"""``humr demo``: the end-to-end demo on the embedded synthetic benchmark.

Generates a small synthetic dataset (cached in the output folder; its generator is the
configuration's ``data.synth``, so ``humr demo data.synth.crop_res=96 --out DIR`` changes it
like any other key), trains the CPU-sized model of ``configs/demo.yaml``
(small CNN backbone on the crop resized to 64 px, 4-block RealNVP of width 256; losses nll +
mmd + mask + kp2d_mode + betas + orth; about 0.15 s per step of 32 images on 2 CPU cores),
evaluates it with 100 hypotheses per image beside the oracle (draws from the test examples' stored
true posterior, :mod:`humr.data.oracle`) and writes the metrics JSON and three figures into a
new run folder ``OUT/runs/version_K``. Its checks compare the model with the oracle (issue 16's
targets): best-of-100 MPJPE within 2x of the oracle's best of 100, the energy distance of
occluded joints within 1.5x of the oracle's noise floor, and invisible joints spreading more in
3D than visible ones (the model's own mode is no reference: best-of-N <= mode holds by
construction).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from humr.commands.options import positive_int, seed_int

HELP = "end-to-end demo: synthetic data, CPU training, 100-hypothesis evaluation, figures"

# Sizes of the two demo configurations (the full one: about 3 minutes on 2 CPU cores).
PRESETS = {
    "full": {"n_train": 768, "n_test": 64, "steps": 900, "batch_size": 32,
             "val_every": 300, "val_examples": 16, "figure_examples": 4},
    "quick": {"n_train": 48, "n_test": 8, "steps": 20, "batch_size": 8,
              "val_every": 10, "val_examples": 8, "figure_examples": 1},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides of the demo configuration, e.g. "
                             "data.synth.crop_res=96 (data.synth generates the dataset)")
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="tiny configuration (about a minute; what CI runs)")
    parser.add_argument("--steps", type=positive_int(), default=None, help="override the training steps")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of data and training")
    parser.add_argument("--num-samples", type=positive_int(100_000), default=100,
                        help="hypotheses per image in the evaluation")


def demo_overrides(preset: dict, data_dir: Path, seed: int) -> list[str]:
    """Dotted overrides of ``configs/demo.yaml`` (the demo's model, losses and optimiser) that
    size the run to ``preset`` and point it at ``data_dir``."""
    return [
        f"data.root={data_dir}",
        f"train.batch_size={preset['batch_size']}",
        f"train.eval_batch_size={min(preset['batch_size'], 16)}",
        f"train.max_steps={preset['steps']}",
        f"train.val_every={preset['val_every']}",
        f"train.ckpt_every={preset['val_every']}",
        f"train.val_examples={preset['val_examples']}",
        "train.val_batches=1.0",
        f"train.seed={seed}",
    ]


def ensure_dataset(data_dir: Path, preset: dict, seed: int, synth=None) -> Path:
    """The synthetic dataset in ``data_dir``, generated with ``synth`` (the configuration's
    ``data.synth``, :class:`humr.data.synthetic.SynthConfig`; default its defaults) on the first
    run and reused afterwards (:func:`humr.data.synthetic.generate` keeps complete shards of
    the same parameters and refuses a folder written with other ones)."""
    from humr.data.synthetic import generate

    return generate(data_dir, n_train=preset["n_train"], n_test=preset["n_test"], seed=seed,
                    config=synth, workers=2 if preset["n_train"] > 256 else 1)


#: model / oracle ratios the demo's checks require (issue 16's convergence targets)
ORACLE_FACTORS = {"best_of_n_mpjpe": 2.0, "energy_occluded": 1.5}


def checks(metrics: dict, oracle: dict) -> dict:
    """The demo's evidence that the method works (True = passed), judged against the oracle
    (:func:`humr.data.oracle.oracle_report` of the same split and hypothesis count)."""
    best = ORACLE_FACTORS["best_of_n_mpjpe"]
    edist = ORACLE_FACTORS["energy_occluded"]
    return {
        f"best_of_n_mpjpe_within_{best:g}x_oracle":
            metrics["emdb/mpjpe_min"] <= best * oracle["emdb/mpjpe_min"],
        f"energy_occluded_within_{edist:g}x_oracle_floor":
            metrics.get("energy_occluded", float("inf")) <= edist * oracle["energy_occluded"],
        "spread_invisible_above_visible":
            metrics["spread_invisible"] > metrics["spread_visible"],
    }


def write_figures(module, data_dir: Path, fig_dir: Path, num_examples: int,
                  num_samples: int, seed: int) -> list[Path]:
    """The three figures for the first test examples that have an occluded articulated joint."""
    from humr.data import HumrDataset
    from humr.engine.inference import load_examples, sample_hypotheses
    from humr.heatmaps import ARTICULATED_COCO
    from humr.viz.figures import (
        save_hypotheses_figure,
        save_mesh_figure,
        save_uncertainty_figure,
        select_example,
    )

    dataset = HumrDataset(str(data_dir), "test")
    chosen = []
    for i in range(len(dataset)):
        conf = dataset[i]["cond_kp"][:, 2]
        if (conf[list(ARTICULATED_COCO)] < 0.5).any():
            chosen.append(i)
        if len(chosen) == num_examples:
            break
    chosen = chosen or [0]
    batch = load_examples(data_dir, chosen, "test")
    hyps = sample_hypotheses(module, batch, num_samples, seed=seed, return_vertices=True)
    faces = module.model.body.faces
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for b, index in enumerate(chosen):
        example = select_example(batch, b)
        one = {k: v[b] for k, v in hyps.items()}
        paths += [
            save_hypotheses_figure(example, one, fig_dir / f"hypotheses2d_{index:03d}.png"),
            save_mesh_figure(example, one, faces, fig_dir / f"meshes_{index:03d}.png"),
            save_uncertainty_figure(example, one, faces, fig_dir / f"uncertainty_{index:03d}.png"),
        ]
    return paths


def run(args: argparse.Namespace) -> int:
    from humr.config import Config
    from humr.data.oracle import format_oracle, oracle_report
    from humr.engine.evaluation import format_table
    from humr.engine.inference import evaluate_checkpoint, write_json
    from humr.engine.train import train
    from humr.resources import preset_config

    start = time.perf_counter()
    preset = dict(PRESETS["quick" if args.quick else "full"])
    if args.steps is not None:
        preset["steps"] = args.steps
    out = Path(args.out)
    config = Config.load(preset_config("demo"), overrides=demo_overrides(
        preset, out / ("data_quick" if args.quick else "data"), args.seed) + args.overrides)
    data_dir = ensure_dataset(Path(config.data.root), preset, args.seed, config.data.synth)
    t_data = time.perf_counter()
    print(f"[demo] data: {data_dir} ({t_data - start:.0f} s)")

    result = train(config, out / "runs", progress=not args.quick)
    t_train = time.perf_counter()
    print(f"[demo] trained {preset['steps']} steps in {t_train - t_data:.0f} s: {result.run_dir}")

    metrics = evaluate_checkpoint(result.module, data_dir, num_samples=args.num_samples)
    t_eval = time.perf_counter()
    print(format_table(metrics, f"[demo] test split, {args.num_samples} hypotheses per image "
                                f"({t_eval - t_train:.0f} s)"))
    oracle = oracle_report(result.module.model.body, data_dir, "test", args.num_samples,
                           seed=args.seed)
    print(format_oracle(metrics, oracle, "[demo] model vs oracle (draws from the stored true "
                                         "posterior)"))

    figures = write_figures(result.module, data_dir, result.run_dir / "figures",
                            preset["figure_examples"], args.num_samples, args.seed)
    passed = checks(metrics, oracle)
    seconds = time.perf_counter() - start
    report = {"metrics": metrics, "oracle": oracle, "checks": passed, "preset": preset,
              "seconds": seconds,
              "checkpoint": str(result.last_checkpoint),
              "figures": [str(p) for p in figures]}
    path = write_json(report, result.run_dir / "metrics.json")
    for name, ok in passed.items():
        print(f"[demo] check {name}: {'PASS' if ok else 'FAIL'}")
    if not all(ok for name, ok in passed.items() if "oracle" in name):
        print("[demo] the oracle knows each body's true shape, which this benchmark hides (the "
              "'mean body shape' rows above score without it): issue 16 measured the oracle "
              "checks out of reach from these inputs (benchmarks/README.md, 'Convergence "
              "against the oracle')")
    print(f"[demo] wrote {path} and {len(figures)} figures to {result.run_dir / 'figures'} "
          f"({seconds:.0f} s in total)")
    return 0
