"""Running an ablation table: every row x seed trained, evaluated with 100 hypotheses, recorded.

Layout under ``out`` (``humr ablate TABLE --out OUT``)::

    OUT/TABLE/ROW/seed_K/version_0/...   the training run (humr.engine.train layout)
    OUT/TABLE/ROW/seed_K/result.json     written once the run is trained and evaluated
    OUT/TABLE/table.md, table.json, table.png   the report (humr.ablation.report)

A run with a ``result.json`` is finished and skipped; a run without one resumes from its newest
``last.ckpt`` (exactly, see :mod:`humr.engine.train`) or starts afresh, so an interrupted table
continues where it stopped. ``result.json`` is written atomically (temporary file + rename).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from humr.ablation.presets import (
    Row,
    Size,
    load_size,
    load_table,
    run_config,
    size_config,
)
from humr.io import atomic_write_text

if TYPE_CHECKING:
    from humr.config import Config

__all__ = ["RunResult", "collect_results", "ensure_data", "run_one", "run_table", "table_oracle"]

RESULT_FILE = "result.json"


@dataclass
class RunResult:
    """One finished row x seed: its metrics and where they came from."""

    row: str
    seed: int
    metrics: dict[str, float]
    steps: int
    seconds_train: float
    seconds_eval: float
    path: Path

    @classmethod
    def read(cls, path: Path) -> RunResult:
        """Load a ``result.json``; a malformed file raises ValueError naming it."""
        try:
            data = json.loads(path.read_text())
            return cls(str(data["row"]), int(data["seed"]), {k: float(v) for k, v in
                                                             data["metrics"].items()},
                       int(data["steps"]), float(data["seconds_train"]),
                       float(data["seconds_eval"]), path)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: malformed ablation result ({err!r}); delete it to "
                             "re-run this row and seed") from None

    def write(self) -> None:
        data = {"row": self.row, "seed": self.seed, "metrics": self.metrics, "steps": self.steps,
                "seconds_train": self.seconds_train, "seconds_eval": self.seconds_eval}
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True))


def collect_results(table_dir: Path, rows: Sequence[Row]) -> dict[str, list[RunResult]]:
    """``row name -> finished results`` (seed order) found under ``table_dir`` for ``rows``."""
    found = {}
    for row in rows:
        paths = sorted((table_dir / row.name).glob(f"seed_*/{RESULT_FILE}"),
                       key=lambda p: int(p.parent.name.split("_")[1]))
        if paths:
            found[row.name] = [RunResult.read(p) for p in paths]
    return found


def ensure_data(data_root: str | Path, size: Size, progress: bool = True,
                config: Config | None = None) -> Path:
    """The dataset folder of a table.

    With ``data.format`` official the paper's release is used as it is. Otherwise a complete
    folder is used as it is, unless it is a synthetic benchmark generated with other parameters
    than ``config.data.synth`` (then ValueError naming the differing keys); a missing or
    incomplete one is generated (or its generation resumed) with ``config.data.synth`` and the
    counts and seed of ``size.data`` (``n_train``, ``n_test``, ``seed``, ``workers``).
    ``config`` defaults to the size's (:func:`humr.ablation.presets.size_config`).
    """
    from humr.data.format import read_meta
    from humr.data.schema import DataFormatError
    from humr.data.synthetic import generate, recorded_config

    root = Path(data_root)
    config = config if config is not None else size_config(size)
    if config.data.format == "official":                # the release: never generated
        if not (root / "annotations").is_dir():
            raise FileNotFoundError(f"{root} has no annotations/ folder: with data.format "
                                    "official, --data must be the paper's data release "
                                    "(DATASET.MD layout)")
        return root
    synth = config.data.synth
    try:
        meta = read_meta(root)
    except DataFormatError:      # missing or incomplete: generate / finish it
        d = size.data
        return generate(root, n_train=d["n_train"], n_test=d["n_test"], seed=d.get("seed", 0),
                        config=synth, workers=d.get("workers", 1), progress=progress)
    written = recorded_config(meta)
    if written is not None and written != synth.to_dict():
        wanted = synth.to_dict()
        diff = sorted(k for k in set(written) | set(wanted) if written.get(k) != wanted.get(k))
        raise ValueError(f"{root}/meta.json: the dataset was generated with other data.synth "
                         "parameters than the ablation's (size preset + overrides): "
                         + ", ".join(f"{k}={written.get(k)!r} (wanted {wanted.get(k)!r})"
                                     for k in diff) + "; use another --data folder")
    return root


def table_oracle(config: Config, data_root: str | Path, num_samples: int
                 ) -> dict[str, float] | None:
    """What draws from the stored true posterior score on the test split with ``num_samples``
    hypotheses (:func:`humr.data.oracle.dataset_oracle`, seed 0; ground truth from the
    generator's body ``config.data.synth.body_model``), or None for data without a stored
    posterior (the paper's release, other humr folders)."""
    if config.data.format == "official":
        return None
    from humr.body import BodyModel
    from humr.data.oracle import dataset_oracle

    synth = config.data.synth
    return dataset_oracle(BodyModel(synth.body_model, num_betas=synth.num_betas), data_root,
                          "test", num_samples)


def run_one(row: Row, size: Size, seed: int, data_root: Path, run_dir: Path, *,
            steps: int | None = None, num_samples: int = 100, overrides: Sequence[str] = (),
            progress: bool = True, train_kwargs: dict[str, Any] | None = None) -> RunResult:
    """Train (or resume) and evaluate one row with one seed; skipped when already finished.

    Args:
        row, size: presets (:mod:`humr.ablation.presets`).
        seed: ``train.seed`` of the run (training order, latents, evaluation hypotheses).
        data_root: dataset folder (test split evaluated).
        run_dir: ``OUT/TABLE/ROW/seed_K``.
        steps: optimiser steps (default: the size's ``train.max_steps``).
        num_samples: hypotheses per test image (100 in the paper).
        overrides: dotted ``key=value`` config overrides applied to every run.
        progress: progress bars.
        train_kwargs: further :func:`humr.engine.train.train` arguments (devices, strategy, ...).
    """
    from humr.engine.inference import evaluate_checkpoint
    from humr.engine.train import find_last_checkpoint, train

    result_path = run_dir / RESULT_FILE
    if result_path.is_file():
        return RunResult.read(result_path)
    config = run_config(size, row, data_root, seed, list(overrides))
    total = int(steps if steps is not None else config.train.max_steps)
    config = config.override({"train.max_steps": total})
    try:
        resume = find_last_checkpoint(run_dir)
    except FileNotFoundError:
        resume = None
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trained = train(config, run_dir, resume=resume, max_steps=total, progress=progress,
                    **(train_kwargs or {}))
    seconds_train = time.perf_counter() - start
    if config.data.format == "official":
        from humr.data.official_report import ablation_metrics

        metrics = ablation_metrics(trained.module, data_root, num_samples=num_samples,
                                   progress=progress)
    else:
        metrics = evaluate_checkpoint(trained.module, data_root, num_samples=num_samples,
                                      progress=progress)
    result = RunResult(row.name, int(seed), metrics, total, seconds_train,
                       time.perf_counter() - start - seconds_train, result_path)
    if trained.trainer.is_global_zero:
        result.write()
    return result


def run_table(table: str, out: str | Path, *, size: str = "cpu", data: str | Path | None = None,
              steps: int | None = None, seeds: int = 1, rows: Sequence[str] | None = None,
              num_samples: int = 100, overrides: Sequence[str] = (),
              presets: str | Path | None = None, progress: bool = True,
              log: Callable[[str], None] = print,
              train_kwargs: dict[str, Any] | None = None) -> dict[str, list[RunResult]]:
    """Run the rows of ``table`` for seeds ``0 .. seeds-1`` and write the report.

    Args:
        table: ``table3`` or ``s2`` (folders of the presets).
        out: output folder (layout in the module doc).
        size: compute size preset (``cpu``, ``paper``).
        data: dataset folder (default ``OUT/data``; generated from the size when missing).
        steps: optimiser steps per run (default: the size's).
        seeds: number of seeds per row.
        rows: only these rows (names), default all.
        num_samples: hypotheses per test image.
        overrides: dotted config overrides for every run.
        presets: presets folder (default ``benchmarks/ablation`` of the checkout).
        progress: progress bars.
        log: where one line per finished run goes.
        train_kwargs: further :func:`humr.engine.train.train` arguments.
    Returns:
        ``row name -> results`` of every row of the table finished so far (this call's and
        earlier ones'), as reported by :func:`humr.ablation.report.write_report`.
    """
    from humr.ablation.report import write_report

    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    all_rows = load_table(table, presets)
    selected = [r for r in all_rows if not rows or r.name in rows]
    unknown = sorted(set(rows or ()) - {r.name for r in all_rows})
    if unknown:
        raise KeyError(f"unknown rows {unknown} of table '{table}'; rows: "
                       f"{', '.join(r.name for r in all_rows)}")
    size_preset = load_size(size, presets)
    shared = size_config(size_preset, list(overrides))
    for row in selected:            # one dataset for the table: its generator is the size's
        if run_config(size_preset, row, "", 0, list(overrides)).data.synth != shared.data.synth:
            raise ValueError(f"{row.path}: a row may not change data.synth (the rows share one "
                             "dataset); set it in the size preset or as an override")
    out = Path(out)
    data_root = ensure_data(data if data is not None else out / "data", size_preset, progress,
                            shared)
    for row in selected:
        for seed in range(seeds):
            run_dir = out / table / row.name / f"seed_{seed}"
            done = (run_dir / RESULT_FILE).is_file()
            res = run_one(row, size_preset, seed, data_root, run_dir, steps=steps,
                          num_samples=num_samples, overrides=overrides, progress=progress,
                          train_kwargs=train_kwargs)
            what = "finished earlier" if done else (f"trained {res.steps} steps in "
                                                    f"{res.seconds_train:.0f} s, evaluated in "
                                                    f"{res.seconds_eval:.0f} s")
            log(f"[ablate] {table}/{row.name} seed {seed}: {what}")
    from lightning.pytorch.utilities import rank_zero_only

    results = collect_results(out / table, all_rows)
    oracle = table_oracle(shared, data_root, num_samples) if rank_zero_only.rank == 0 else None
    write_report(table, all_rows, results, out / table, size_preset, num_samples, oracle)
    return results
