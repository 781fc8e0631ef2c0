"""``humr eval``: the paper's Table 1/2 metrics of a checkpoint, printed and written as JSON."""
from __future__ import annotations

import argparse
from pathlib import Path

from humr.commands.options import add_body_arguments, body_arguments, positive_int
from humr.commands.train import (
    add_data_format_argument,
    add_device_arguments,
    parse_devices,
)

HELP = "evaluate a checkpoint: humr eval --ckpt FILE [--num-samples 100] (Tables 1/2 metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by humr train")
    add_body_arguments(parser)
    parser.add_argument("--num-samples", type=positive_int(100_000), default=100,
                        help="hypotheses per image, the mode included (paper: 100)")
    parser.add_argument("--data", default=None,
                        help="dataset folder (default: the checkpoint's data.root)")
    parser.add_argument("--split", default=None,
                        help="dataset split (default: test; official data: all of "
                             "3dpw-test-cam, emdb-p1, emdb-p1-occl, printed as Tables 1 and 2 "
                             "beside the paper's numbers)")
    add_data_format_argument(parser)
    parser.add_argument("--batch-size", type=positive_int(1 << 16), default=None, help="evaluation batch size")
    parser.add_argument("--max-examples", type=positive_int(), default=None,
                        help="evaluate only the first N examples")
    parser.add_argument("--out", default=None,
                        help="JSON file (default: RUN/eval/<split>_S<n>.json, never overwritten)")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from humr.engine.module import HumrModule

    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"--ckpt {ckpt} is not a file")
    if args.out is not None and Path(args.out).exists():
        raise FileExistsError(f"--out {args.out} exists; not overwriting it")
    module = HumrModule.from_checkpoint(str(ckpt), **body_arguments(args))
    if args.data_format:
        module.config.data.format = args.data_format
    data = args.data or module.config.data.root
    trainer_kw = {"num_samples": args.num_samples, "batch_size": args.batch_size,
                  "max_examples": args.max_examples, "devices": parse_devices(args.devices),
                  "num_nodes": args.num_nodes, "strategy": args.strategy,
                  "accelerator": args.accelerator}
    if module.config.data.format == "official":
        return _run_official(args, ckpt, module, data, trainer_kw)
    from humr.engine.evaluation import format_table
    from humr.engine.inference import evaluate_checkpoint, fresh_path, write_json

    split = args.split or "test"
    results = evaluate_checkpoint(module, data, split=split, **trainer_kw)
    title = f"{ckpt} on {data} [{split}], {args.num_samples} hypotheses per image"
    print(format_table(results, title))
    from humr.data.oracle import dataset_oracle, format_oracle

    oracle = dataset_oracle(module.model.body, data, split, args.num_samples,
                            args.max_examples)
    if oracle is not None:      # synthetic data: what draws from the true posterior score
        print(format_oracle(results, oracle, "oracle (draws from the stored true posterior)"))
    out = Path(args.out) if args.out else fresh_path(
        ckpt.parent.parent / "eval" / f"{split}_S{args.num_samples}.json")
    write_json({"checkpoint": str(ckpt), "data": str(data), "split": split,
                "num_samples": args.num_samples, "metrics": results, "oracle": oracle}, out)
    print(f"wrote {out}")
    return 0


def _run_official(args, ckpt: Path, module, data, trainer_kw: dict) -> int:
    """The release's test splits -> Tables 1 and 2 beside the paper's numbers, and JSON."""
    from humr.data.official_report import (
        evaluate_official,
        format_paper_tables,
        paper_rows,
        write_json_atomic,
    )
    from humr.data.official_splits import EVAL_SPLITS
    from humr.engine.inference import fresh_path

    splits = EVAL_SPLITS if args.split is None else (args.split,)
    results = evaluate_official(module, data, splits, **trainer_kw)
    print(f"{ckpt} on the official release {data}, {args.num_samples} hypotheses per image")
    print(format_paper_tables(results, args.num_samples))
    out = Path(args.out) if args.out else fresh_path(
        ckpt.parent.parent / "eval" / f"official_S{args.num_samples}.json")
    write_json_atomic({"checkpoint": str(ckpt), "data": str(data), "format": "official",
                       "splits": list(splits), "num_samples": args.num_samples,
                       "metrics": results, "paper": paper_rows(results)}, out)
    print(f"wrote {out}")
    return 0
