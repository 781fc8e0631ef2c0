"""Argparse types that validate numeric command-line options at parse time.

Each factory returns a callable for ``add_argument(type=...)`` that raises
``argparse.ArgumentTypeError`` with what was expected, so ``humr`` prints one line such as
``humr eval: error: argument --num-samples: expected an integer >= 1, got '0'`` and exits 2.

Example:
    >>> count = int_range(1, 10)
    >>> count("3")
    3
    >>> count("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer in [1, 10], got '0'
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["MAX_COUNT", "MAX_SEED", "add_body_arguments", "body_arguments", "int_range",
           "positive_int", "seed_int"]

MAX_COUNT = 10 ** 7          # examples, steps, hypotheses: beyond this a run cannot fit anyway
MAX_SEED = 2 ** 32 - 1       # numpy's seed range


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (``high`` None: no upper bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            want = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return value

    parse.__name__ = "integer"   # argparse names the type in its messages
    return parse


def positive_int(high: int = MAX_COUNT) -> Callable[[str], int]:
    """An integer in ``[1, high]``."""
    return int_range(1, high)


seed_int = int_range(0, MAX_SEED)


def add_body_arguments(parser: argparse.ArgumentParser) -> None:
    """``--body-model`` / ``--trust-checkpoint-body`` of commands that load a checkpoint
    (:func:`humr.engine.checkpoint.load_module`)."""
    parser.add_argument("--body-model", default=None,
                        help="body model folder / file the checkpoint was trained with (needed "
                             "when its config names one other than 'procedural')")
    parser.add_argument("--trust-checkpoint-body", action="store_true",
                        help="load the body model file named inside the checkpoint")


def body_arguments(args: argparse.Namespace) -> dict:
    """Keywords of :func:`humr.engine.checkpoint.load_module` from :func:`add_body_arguments`."""
    return {"body_model": args.body_model, "trust_checkpoint_body": args.trust_checkpoint_body}
