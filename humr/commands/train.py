"""``humr train``: train a model from a YAML configuration (CPU, one GPU or DDP)."""
from __future__ import annotations

import argparse

from humr.commands.options import positive_int

HELP = "train a model: humr train --config FILE [key=value ...] (Lightning, CPU or multi-GPU DDP)"


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices --num-nodes --strategy --accelerator --precision`` (Lightning Trainer)."""
    parser.add_argument("--devices", default="auto", type=parse_devices,
                        help="devices per node: 'auto', a count or a list like '0,1'")
    parser.add_argument("--num-nodes", type=positive_int(100_000), default=1, help="number of machines")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    parser.add_argument("--precision", default=None,
                        help="e.g. 32-true, 16-mixed, bf16-mixed (default: config.train.precision)")


def add_data_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-format {humr,official}`` (config key ``data.format``)."""
    parser.add_argument("--data-format", choices=("humr", "official"), default=None,
                        help="humr: a folder written by humr synth; official: the paper's data "
                             "release (DATASET.MD layout) (default: the config's data.format)")


def parse_devices(value):
    """'auto' -> 'auto', '2' -> 2, '0,1' -> [0, 1] (Lightning's forms; parsed values pass
    through). Raises ``argparse.ArgumentTypeError`` for anything else (0, negatives, words)."""
    if not isinstance(value, str) or value == "auto":
        return value
    try:
        devices = [int(v) for v in value.split(",") if v] if "," in value else int(value)
    except ValueError:
        devices = None
    if (devices is None or (isinstance(devices, int) and not 1 <= devices <= 4096)
            or (isinstance(devices, list) and (not devices or min(devices) < 0))):
        raise argparse.ArgumentTypeError(
            f"expected 'auto', a device count >= 1 or device indices like '0,1', got {value!r}")
    return devices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML configuration (humr.config.Config)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides, e.g. train.lr=3e-4 model.flow=nice")
    parser.add_argument("--data", default=None, help="dataset folder (default: data.root)")
    add_data_format_argument(parser)
    parser.add_argument("--out", default="runs", help="runs folder; each run gets out/version_K")
    parser.add_argument("--resume", default=None,
                        help="continue from a last.ckpt, or the newest run under a folder")
    parser.add_argument("--override", action="store_true",
                        help="with --resume: continue with a changed configuration (the changes "
                             "are recorded in the run folder's config_changes.yaml)")
    parser.add_argument("--max-steps", type=positive_int(10 ** 9), default=None,
                        help="total optimiser steps (default: train.max_steps)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from humr.config import Config
    from humr.engine.train import train

    overrides = list(args.overrides)
    if args.data_format:
        overrides.append(f"data.format={args.data_format}")
    config = Config.load(args.config, overrides=overrides)
    if args.data:            # recorded in the run's config: eval / sample default to it
        config = config.override({"data.root": str(args.data)})
    result = train(config, args.out, data_root=args.data, resume=args.resume,
                   devices=parse_devices(args.devices), num_nodes=args.num_nodes,
                   strategy=args.strategy, accelerator=args.accelerator,
                   precision=args.precision, max_steps=args.max_steps,
                   progress=not args.no_progress, override=args.override)
    if result.trainer.is_global_zero:
        print(f"run folder: {result.run_dir}")
        print(f"last checkpoint: {result.last_checkpoint}")
        if result.best_checkpoint:
            print(f"best checkpoint: {result.best_checkpoint}")
    return 0
