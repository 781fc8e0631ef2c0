"""``humr synth --out DIR [--config FILE] [key=value ...]``: generate the synthetic benchmark
with a known posterior.

The generator's parameters are the ``data.synth`` section of the configuration
(:class:`humr.data.synthetic.SynthConfig`): the defaults, a ``--config`` YAML (any
:class:`humr.config.Config` file, e.g. ``configs/demo.yaml``), dotted overrides
(``data.synth.crop_res=96``) and last the shorthand options ``--crop-res``,
``--posterior-samples``, ``--body-model``. The folder's ``meta.json`` records them; a folder
written with other parameters is refused (:func:`humr.data.synthetic.generate`).
"""
from __future__ import annotations

import argparse

from humr.commands.options import MAX_COUNT, int_range, positive_int, seed_int

HELP = "generate the synthetic benchmark (known posterior) into DIR (resumable, deterministic)"

#: shorthand option -> config key it overrides
SHORTHANDS = {k: f"data.synth.{k}" for k in ("crop_res", "posterior_samples", "body_model")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. data.synth.crop_res=96")
    parser.add_argument("--config", default=None,
                        help="YAML configuration whose data.synth section sets the generator "
                             "(default: the defaults)")
    parser.add_argument("--out", default=None,
                        help="dataset folder, created if missing (default: the config's data.root)")
    parser.add_argument("--n-train", type=int_range(0, MAX_COUNT), default=1000, help="training examples (default 1000)")
    parser.add_argument("--n-test", type=int_range(0, MAX_COUNT), default=200, help="test examples (default 200)")
    parser.add_argument("--seed", type=seed_int, default=0, help="benchmark seed (default 0)")
    parser.add_argument("--workers", type=positive_int(1024), default=1, help="worker processes (default 1)")
    parser.add_argument("--crop-res", type=int_range(16, 4096), default=None,
                        help="crop side in pixels (sets data.synth.crop_res)")
    parser.add_argument("--posterior-samples", type=positive_int(100_000), default=None,
                        help="posterior samples stored per example (sets "
                             "data.synth.posterior_samples)")
    parser.add_argument("--body-model", default=None,
                        help="'procedural' or a SMPL model folder / file (sets "
                             "data.synth.body_model)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from humr.config import Config
    from humr.data.synthetic import generate

    shorthands = {key: getattr(args, option) for option, key in SHORTHANDS.items()
                  if getattr(args, option) is not None}
    config = Config.load(args.config, overrides=args.overrides).override(shorthands)
    out = generate(args.out or config.data.root, n_train=args.n_train, n_test=args.n_test,
                   seed=args.seed, config=config.data.synth, workers=args.workers,
                   progress=not args.no_progress, preview=args.preview)
    print(f"wrote {args.n_train} train and {args.n_test} test examples to {out}"
          + (f" and {out / 'preview.png'}" if args.preview else ""))
    return 0
