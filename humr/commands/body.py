"""``humr body convert SRC DST``: chumpy-free copy of an official SMPL / SMPL-X file."""
from __future__ import annotations

import argparse

HELP = "body-model files: `humr body convert SRC DST` writes a chumpy-free copy (.pkl or .npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="body_command", metavar="ACTION", required=True)
    conv = sub.add_parser("convert", help="read an official (chumpy) SMPL / SMPL-X file without "
                          "chumpy and write plain numpy arrays (DST ending .pkl or .npz)")
    conv.add_argument("src", metavar="SRC", help="official model file, e.g. "
                      "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
    conv.add_argument("dst", metavar="DST", help="output file (.pkl: smplx reads it; .npz)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from humr.body.model import load_model_data
    from humr.body.safe_pickle import write_body_file

    src = Path(args.src).expanduser()
    if not src.is_file():
        raise FileNotFoundError(f"body model {src} does not exist")
    model_type = "smplx" if src.name.upper().startswith("SMPLX") else "smpl"
    out = write_body_file(load_model_data(src, model_type), args.dst)
    print(f"wrote {out} (chumpy-free copy of {src})")
    return 0
