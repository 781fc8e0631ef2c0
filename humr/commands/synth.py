"""``humr synth --out DIR``: generate the synthetic benchmark with a known posterior."""
from __future__ import annotations

import argparse

from humr.commands.options import MAX_COUNT, int_range, positive_int, seed_int

HELP = "generate the synthetic benchmark (known posterior) into DIR (resumable, deterministic)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset folder (created if missing)")
    parser.add_argument("--n-train", type=int_range(0, MAX_COUNT), default=1000, help="training examples (default 1000)")
    parser.add_argument("--n-test", type=int_range(0, MAX_COUNT), default=200, help="test examples (default 200)")
    parser.add_argument("--seed", type=seed_int, default=0, help="benchmark seed (default 0)")
    parser.add_argument("--workers", type=positive_int(1024), default=1, help="worker processes (default 1)")
    parser.add_argument("--crop-res", type=int_range(16, 4096), default=128, help="crop side in pixels (default 128)")
    parser.add_argument("--posterior-samples", type=positive_int(100_000), default=64,
                        help="posterior samples stored per example (default 64)")
    parser.add_argument("--body-model", default="procedural",
                        help="'procedural' or a SMPL model folder / file (default procedural)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from humr.data.synthetic import SynthConfig, generate

    config = SynthConfig(crop_res=args.crop_res, posterior_samples=args.posterior_samples,
                         body_model=args.body_model)
    out = generate(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                   config=config, workers=args.workers, progress=not args.no_progress,
                   preview=args.preview)
    print(f"wrote {args.n_train} train and {args.n_test} test examples to {out}"
          + (f" and {out / 'preview.png'}" if args.preview else ""))
    return 0
