"""Training and evaluation engine (Lightning): module, data module, runs, evaluation.

``from humr.engine import train, evaluate_checkpoint`` trains a configuration into a new run
folder and evaluates a checkpoint with the paper's metrics; see :mod:`humr.engine.train`.
"""
from humr.engine.datamodule import EpochSampler, HumrDataModule, ShardBatchSampler
from humr.engine.evaluation import (
    TABLES,
    EvaluationMetrics,
    format_table,
    invisible_joints,
)
from humr.engine.inference import evaluate_checkpoint, load_examples, sample_hypotheses
from humr.engine.module import HumrModule, step_seed
from humr.engine.train import (
    TrainResult,
    build_trainer,
    find_last_checkpoint,
    new_run_dir,
    train,
)

__all__ = [
    "TABLES",
    "EpochSampler",
    "EvaluationMetrics",
    "HumrDataModule",
    "HumrModule",
    "ShardBatchSampler",
    "TrainResult",
    "build_trainer",
    "evaluate_checkpoint",
    "find_last_checkpoint",
    "format_table",
    "invisible_joints",
    "load_examples",
    "new_run_dir",
    "sample_hypotheses",
    "step_seed",
    "train",
]
