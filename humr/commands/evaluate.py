"""``humr eval``: the paper's Table 1/2 metrics of a checkpoint, printed and written as JSON."""
from __future__ import annotations

import argparse
from pathlib import Path

from humr.commands.train import add_device_arguments, parse_devices

HELP = "evaluate a checkpoint: humr eval --ckpt FILE [--num-samples 100] (Tables 1/2 metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by humr train")
    parser.add_argument("--num-samples", type=int, default=100,
                        help="hypotheses per image, the mode included (paper: 100)")
    parser.add_argument("--data", default=None,
                        help="dataset folder (default: the checkpoint's data.root)")
    parser.add_argument("--split", default="test", help="dataset split")
    parser.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="evaluate only the first N examples")
    parser.add_argument("--out", default=None,
                        help="JSON file (default: RUN/eval/<split>_S<n>.json, never overwritten)")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from humr.engine.evaluation import format_table
    from humr.engine.inference import evaluate_checkpoint, fresh_path, write_json
    from humr.engine.module import HumrModule

    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"--ckpt {ckpt} is not a file")
    if args.out is not None and Path(args.out).exists():
        raise FileExistsError(f"--out {args.out} exists; not overwriting it")
    module = HumrModule.from_checkpoint(str(ckpt))
    data = args.data or module.config.data.root
    results = evaluate_checkpoint(module, data, split=args.split, num_samples=args.num_samples,
                                  batch_size=args.batch_size, max_examples=args.max_examples,
                                  devices=parse_devices(args.devices),
                                  num_nodes=args.num_nodes, strategy=args.strategy,
                                  accelerator=args.accelerator)
    title = f"{ckpt} on {data} [{args.split}], {args.num_samples} hypotheses per image"
    print(format_table(results, title))
    from humr.data.oracle import dataset_oracle, format_oracle

    oracle = dataset_oracle(module.model.body, data, args.split, args.num_samples,
                            args.max_examples)
    if oracle is not None:      # synthetic data: what draws from the true posterior score
        print(format_oracle(results, oracle, "oracle (draws from the stored true posterior)"))
    out = Path(args.out) if args.out else fresh_path(
        ckpt.parent.parent / "eval" / f"{args.split}_S{args.num_samples}.json")
    write_json({"checkpoint": str(ckpt), "data": str(data), "split": args.split,
                "num_samples": args.num_samples, "metrics": results, "oracle": oracle}, out)
    print(f"wrote {out}")
    return 0
