"""``humr convert-official CKPT OUT.ckpt``: the release's checkpoint as a humr checkpoint."""
from __future__ import annotations

import argparse

HELP = "convert the official humr_best.ckpt (FrEIA flow, HRNet, head) into a humr checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", metavar="CKPT", help="official Lightning checkpoint (humr_best.ckpt)")
    parser.add_argument("out", metavar="OUT.ckpt", help="output file (written atomically)")
    parser.add_argument("--body-model", default=None,
                        help="SMPL-X 1.1 folder or SMPLX_NEUTRAL.npz/.pkl (https://smpl-x.is.tue.mpg.de); "
                        "default: the SMPL-X body stored in the checkpoint")
    parser.add_argument("--clamp", type=float, default=None,
                        help="FrEIA clamp when the checkpoint lacks its hyper-parameters (official: 3.0)")


def run(args: argparse.Namespace) -> int:
    from humr.official.checkpoint import convert_official

    out = convert_official(args.ckpt, args.out, body_model=args.body_model, clamp=args.clamp)
    print(f"wrote {out}; load it with humr.load_official({str(out)!r}) or `humr predict --ckpt {out} ...`")
    return 0
