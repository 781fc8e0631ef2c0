"""The ``humr`` command: probabilistic 3D human mesh recovery (train, evaluate, sample,
ablate, benchmark, demo). Each subcommand lives in ``humr/commands/<name>.py`` and provides
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported
only when their subcommand runs, so ``humr --help`` stays fast. ``humr --import MODULE COMMAND``
imports a user module first, so components it registers (flows, conditioners, losses) can be
named in the configuration of any command (docs/extending.md).

Errors: every failure prints one line ``humr <cmd>: error: ...`` on stderr (no traceback unless
``--debug`` is given, anywhere on the command line, or ``HUMR_DEBUG=1``); bad input (a wrong
option value, a missing or malformed file, an unknown config key) exits with 2, an internal
failure with 1, an interrupt with 130."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path

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


def import_user_modules(argv: list[str]) -> list[str]:
    """Import the modules named by leading ``--import MODULE`` options (a dotted module name,
    importable from the working directory, or a ``.py`` file) so that the components they
    register exist for every command; returns the remaining arguments."""
    rest = list(argv)
    while rest and (rest[0] == "--import" or rest[0].startswith("--import=")):
        if rest[0] == "--import":
            if len(rest) < 2:
                print("humr: error: --import needs a module name or a .py file", file=sys.stderr)
                raise SystemExit(2)
            target, rest = rest[1], rest[2:]
        else:
            target, rest = rest[0].split("=", 1)[1], rest[1:]
        try:
            load_module(target)
        except (ImportError, FileNotFoundError) as err:     # argparse's convention: exit 2
            print(f"humr: error: --import {target}: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    return rest


def load_module(target: str):
    """Import ``target``: a ``.py`` file path or a dotted module name (the working directory
    is searched first, as ``python -m`` does)."""
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"--import {target}: no such file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(target)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ``humr <cmd>: error: ...`` (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# exceptions that mean bad input (a file, key or value the user gave): exit code 2
_INPUT_ERRORS = (ValueError, KeyError, TypeError, LookupError, FileNotFoundError,
                 FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split()) or type(err).__name__
    return text if isinstance(err, (ValueError, OSError, KeyError)) else f"{type(err).__name__}: {text}"


def _describe(err: BaseException, args: argparse.Namespace) -> tuple[str, int]:
    """(one-line message, exit code) of an exception raised by a subcommand."""
    import yaml

    if isinstance(err, yaml.YAMLError):
        where = getattr(args, "config", None)
        return f"malformed YAML{f' in {where}' if where else ''}: {_one_line(err)}", 2
    if isinstance(err, _INPUT_ERRORS) or type(err).__name__ == "UnpicklingError":
        return _one_line(err), 2
    return (f"internal error ({type(err).__name__}: {' '.join(str(err).split())}); rerun with "
            "--debug for the traceback"), 1


def _load(name: str):
    return importlib.import_module(f"humr.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Parser with every available subcommand (or only ``only``, to keep imports lazy)."""
    from humr import __version__

    parser = _Parser(prog="humr", description=__doc__.split(". Each")[0].replace("``", "") + ".")
    parser.add_argument("--version", action="version", version=f"humr {__version__}")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module (or .py file) registering user components before "
                             "the command runs; repeatable; goes before COMMAND")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of errors (also HUMR_DEBUG=1)")
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
    """Run ``humr`` with ``argv``; returns the exit code (errors are printed as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("HUMR_DEBUG", "") not in ("", "0")
    argv = import_user_modules([a for a in argv if a != "--debug"])
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    if not getattr(args, "_run", None):
        build_parser().print_help()
        return 2
    try:
        from humr.core.numerics import flush_to_zero

        with flush_to_zero():    # before the command's first parallel op (humr.core.numerics)
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"humr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (the one top-level error path of the CLI)
        if debug:
            traceback.print_exc()
        message, code = _describe(err, args)
        print(f"humr {args.command}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
