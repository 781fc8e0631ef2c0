"""``humr make-body OUT_DIR``: write the procedural SMPL-format body model."""
from __future__ import annotations

import argparse

from humr.commands.options import seed_int

HELP = "write a procedural SMPL-format body (OUT_DIR/smpl/SMPL_NEUTRAL.pkl, H36M regressor, preview)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created if missing)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the body proportions (default 0)")
    parser.add_argument("--preview", action="store_true", help="also write OUT_DIR/preview.png")


def run(args: argparse.Namespace) -> int:
    from humr.body.procedural import make_body

    out = make_body(args.out_dir, seed=args.seed, preview=args.preview)
    print(f"wrote {out / 'smpl' / 'SMPL_NEUTRAL.pkl'} and {out / 'J_regressor_h36m.npy'}"
          + (f" and {out / 'preview.png'}" if args.preview else ""))
    print(f"use it with BodyModel(model_path={str(out)!r}) or smplx.create({str(out)!r}, model_type='smpl')")
    return 0
