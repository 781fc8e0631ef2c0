"""``humr ablate TABLE``: the paper's ablation tables by swapping components."""
from __future__ import annotations

import argparse

from humr.commands.options import positive_int
from humr.commands.train import add_device_arguments, parse_devices

HELP = "ablation tables: humr ablate table3|s2 --data DIR --steps N --seeds K (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="table3 (Table 3 / S1) or s2 (Table S2): a folder of "
                                      "benchmarks/ablation")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides applied to every run (data.synth.KEY=V "
                             "also sets the generator of the table's synthetic dataset)")
    parser.add_argument("--out", default="outputs/ablation",
                        help="output folder: OUT/TABLE/ROW/seed_K runs, OUT/TABLE/table.md")
    parser.add_argument("--data", default=None,
                        help="dataset folder (default OUT/data; generated from the size "
                             "preset's counts and data.synth when missing)")
    parser.add_argument("--size", default="cpu",
                        help="compute size preset: cpu (2 CPU cores) or paper (GPU)")
    parser.add_argument("--steps", type=positive_int(), default=None,
                        help="optimiser steps per run (default: the size preset's)")
    parser.add_argument("--seeds", type=positive_int(1000), default=1, help="seeds per row (0 .. K-1)")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (names)")
    parser.add_argument("--num-samples", type=positive_int(100_000), default=100,
                        help="hypotheses per test image (paper: 100)")
    parser.add_argument("--presets", default=None,
                        help="presets folder (default: benchmarks/ablation of the checkout)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from humr.ablation import run_table

    train_kwargs = {"devices": parse_devices(args.devices), "num_nodes": args.num_nodes,
                    "strategy": args.strategy, "accelerator": args.accelerator,
                    "precision": args.precision}
    run_table(args.table, args.out, size=args.size, data=args.data, steps=args.steps,
              seeds=args.seeds, rows=args.rows, num_samples=args.num_samples,
              overrides=args.overrides, presets=args.presets, progress=not args.no_progress,
              train_kwargs=train_kwargs)
    table_md = f"{args.out}/{args.table}/table.md"
    with open(table_md) as f:
        print(f.read())
    print(f"wrote {table_md} (+ table.json, table.png)")
    return 0
