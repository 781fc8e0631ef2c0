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
_RELEASE = ("converted", "official")      # checkpoints of the official model (SMPL-X)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True,
                        help="checkpoint written by humr train or humr convert-official, or the "
                             "official humr_best.ckpt (the last two need --data-format official "
                             "data and --gt-body-dir)")
    add_body_arguments(parser)
    parser.add_argument("--gt-body-dir", default=None,
                        help="body folder posing the ground truth (official: the SMPL neutral / "
                             "male / female models, SMPL_python_v.1.1.0/smpl/models; 'procedural': "
                             "neutral for all, with a warning); default: the run's body")
    parser.add_argument("--smplx2smpl", default=None,
                        help="official model: the release's SMPL-X -> SMPL vertex mapping "
                             "smplx2smpl.pkl (default: found in --utils or near the body files)")
    parser.add_argument("--utils", default=None,
                        help="folder of the release's utils.zip (smplx2smpl.pkl, J_regressor_h36m.npy)")
    parser.add_argument("--num-samples", type=positive_int(100_000), default=100,
                        help="hypotheses per image, the mode included (paper: 100)")
    parser.add_argument("--temperature", type=_temperature, default=1.0,
                        help="sampling temperature T of the hypotheses after the mode (latents "
                             "N(0, T^2 I); default 1, the paper's evaluation)")
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
                        help="JSON file (default: RUN/eval/<split>_S<n>.json; for a converted / "
                             "official checkpoint eval/ beside it; never overwritten)")
    add_device_arguments(parser)


def _temperature(text: str) -> float:
    from humr.engine.module import check_temperature

    try:
        return check_temperature(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _eval_name(prefix: str, args: argparse.Namespace) -> str:
    """Default JSON name: ``<prefix>_S<n>.json``, ``_T<t>`` added at a temperature other than 1."""
    tag = "" if args.temperature == 1.0 else f"_T{args.temperature:g}"
    return f"{prefix}_S{args.num_samples}{tag}.json"


def _hypotheses(args: argparse.Namespace) -> str:
    return f"{args.num_samples} hypotheses per image" + (
        "" if args.temperature == 1.0 else f" at temperature {args.temperature:g}")


def run(args: argparse.Namespace) -> int:
    from humr.engine.module import HumrModule
    from humr.official.evaluation import checkpoint_kind

    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"--ckpt {ckpt} is not a file")
    if args.out is not None and Path(args.out).exists():
        raise FileExistsError(f"--out {args.out} exists; not overwriting it")
    trainer_kw = {"num_samples": args.num_samples, "batch_size": args.batch_size,
                  "max_examples": args.max_examples, "devices": parse_devices(args.devices),
                  "num_nodes": args.num_nodes, "strategy": args.strategy,
                  "accelerator": args.accelerator, "temperature": args.temperature}
    kind = checkpoint_kind(ckpt)
    if kind in _RELEASE:
        return _run_release_model(args, ckpt, kind, trainer_kw)
    module = HumrModule.from_checkpoint(str(ckpt), **body_arguments(args))
    if args.gt_body_dir is not None:
        from humr.engine.evaluation import GenderedBodies

        module.gt_bodies = GenderedBodies.from_folder(args.gt_body_dir, follow=module.model.body,
                                                      utils_dir=args.utils)
    if args.data_format:
        module.config.data.format = args.data_format
    data = args.data or module.config.data.root
    if module.config.data.format == "official":
        return _run_official(args, ckpt, module, data, trainer_kw)
    from humr.engine.evaluation import format_table
    from humr.engine.inference import evaluate_checkpoint, fresh_path, write_json

    split = args.split or "test"
    results = evaluate_checkpoint(module, data, split=split, **trainer_kw)
    title = f"{ckpt} on {data} [{split}], {_hypotheses(args)}"
    print(format_table(results, title))
    from humr.data.oracle import dataset_oracle, format_oracle

    oracle = dataset_oracle(module.model.body, data, split, args.num_samples,
                            args.max_examples)
    if oracle is not None:      # synthetic data: what draws from the true posterior score
        print(format_oracle(results, oracle, "oracle (draws from the stored true posterior)"))
    out = Path(args.out) if args.out else fresh_path(
        ckpt.parent.parent / "eval" / _eval_name(split, args))
    write_json({"checkpoint": str(ckpt), "data": str(data), "split": split,
                "num_samples": args.num_samples, "temperature": args.temperature,
                "metrics": results, "oracle": oracle}, out)
    print(f"wrote {out}")
    return 0


def _run_release_model(args, ckpt: Path, kind: str, trainer_kw: dict) -> int:
    """A converted / official checkpoint: the release's evaluation (SMPL meshes, gendered SMPL
    ground truth, :func:`humr.official.evaluation.official_eval_module`) on its data."""
    from humr.official.evaluation import official_eval_module

    what = f"--ckpt {ckpt} is the official model ({kind} checkpoint)"
    if args.data is None or args.data_format not in (None, "official"):
        raise ValueError(f"{what}: evaluate it on the release's data: --data ROOT --data-format official")
    if args.gt_body_dir is None:
        raise ValueError(f"{what}: its ground truth is posed by the gendered SMPL models; pass "
                         "--gt-body-dir SMPL_DIR (SMPL_python_v.1.1.0/smpl/models of "
                         "https://smpl.is.tue.mpg.de)")
    module = official_eval_module(ckpt, args.data, args.gt_body_dir, args.num_samples,
                                  body_model=args.body_model, smplx2smpl=args.smplx2smpl,
                                  utils_dir=args.utils)
    return _run_official(args, ckpt, module, args.data, trainer_kw, kind=kind)


def _run_official(args, ckpt: Path, module, data, trainer_kw: dict, kind: str = "humr") -> int:
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
    print(f"{ckpt} on the official release {data}, {_hypotheses(args)}")
    print(format_paper_tables(results, args.num_samples))
    run_dir = ckpt.parent.parent if kind == "humr" else ckpt.parent    # RUN/checkpoints/x.ckpt
    out = Path(args.out) if args.out else fresh_path(
        run_dir / "eval" / _eval_name("official", args))
    write_json_atomic({"checkpoint": str(ckpt), "checkpoint_kind": kind,
                       "gt_body": args.gt_body_dir, "data": str(data), "format": "official",
                       "splits": list(splits), "num_samples": args.num_samples,
                       "temperature": args.temperature,
                       "metrics": results, "paper": paper_rows(results)}, out)
    print(f"wrote {out}")
    return 0
