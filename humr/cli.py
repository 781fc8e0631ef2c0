"""The ``humr`` command: probabilistic 3D human mesh recovery (train, evaluate, sample,
ablate, benchmark, demo). Each subcommand lives in ``humr/commands/<name>.py`` and provides
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported
only when their subcommand runs, so ``humr --help`` stays fast."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module under humr.commands
COMMANDS = {
    "demo": "demo",
    "make-body": "make_body",
    "synth": "synth",
    "train": "train",
    "eval": "evaluate",
    "sample": "sample",
    "ablate": "ablate",
    "bench": "bench",
    "body": "body",
    "convert-official": "convert_official",
    "predict": "predict",
}


def _load(name: str):
    return importlib.import_module(f"humr.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Parser with every available subcommand (or only ``only``, to keep imports lazy)."""
    from humr import __version__

    parser = argparse.ArgumentParser(prog="humr", description=__doc__.split(". Each")[0].replace("``", "") + ".")
    parser.add_argument("--version", action="version", version=f"humr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        mod = _load(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    if not getattr(args, "_run", None):
        build_parser().print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
