"""``humr sample``: hypotheses of a checkpoint for chosen examples, written as .npz."""
from __future__ import annotations

import argparse
from pathlib import Path

from humr.commands.options import (
    add_body_arguments,
    body_arguments,
    int_range,
    positive_int,
    seed_int,
)
from humr.commands.train import add_data_format_argument

HELP = "draw hypotheses: humr sample --ckpt FILE --data DIR --indices 0 1 --out FILE.npz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by humr train")
    add_body_arguments(parser)
    parser.add_argument("--data", default=None,
                        help="dataset folder (default: the checkpoint's data.root)")
    parser.add_argument("--split", default="test",
                        help="dataset split (official data: e.g. 3dpw-test-cam, emdb-p1)")
    add_data_format_argument(parser)
    parser.add_argument("--indices", type=int_range(0), nargs="+", default=[0], help="example indices")
    parser.add_argument("--num-samples", type=positive_int(100_000), default=100,
                        help="hypotheses per example; hypothesis 0 is the mode")
    parser.add_argument("--vertices", action="store_true", help="also store the meshes")
    parser.add_argument("--seed", type=seed_int, default=None,
                        help="sampling seed (default: the run's train.seed, i.e. the "
                             "hypotheses humr eval scores)")
    parser.add_argument("--out", required=True, help=".npz file to write (not overwritten)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from humr.engine.inference import load_examples, sample_hypotheses
    from humr.engine.module import HumrModule
    from humr.io import atomic_write

    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"--out {out} exists; not overwriting it")
    module = HumrModule.from_checkpoint(args.ckpt, **body_arguments(args))
    if args.data_format:
        module.config.data.format = args.data_format
    batch = load_examples(args.data or module.config.data.root, args.indices, args.split,
                          config=module.config)
    seed = module.config.train.seed if args.seed is None else args.seed
    arrays = sample_hypotheses(module, batch, args.num_samples, seed=seed,
                               return_vertices=args.vertices)
    atomic_write(out, lambda f: np.savez_compressed(f, indices=np.asarray(args.indices), **arrays))
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(arrays.items()))
    print(f"wrote {out}: {shapes}")
    return 0
