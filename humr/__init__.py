"""humr: probabilistic 3D human mesh recovery supervised with 2D detector heatmaps and masks.

Importing ``humr`` registers the flows, conditioners, losses and metrics; the body model
(smplx) and the training engine (lightning) are imported only when first used, so that
single parts such as ``humr.losses.MMDLoss`` can be lifted into other projects cheaply.
"""
from __future__ import annotations

import importlib

from humr.registry import BACKBONES, CONDITIONS, FLOWS, LOSSES, METRICS, Registry

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "CONDITIONS",
    "FLOWS",
    "LOSSES",
    "METRICS",
    "Registry",
    "__version__",
    "build_model",
    "load_official",
    "predict",
]

# Populate the registries (these subpackages depend on torch/nflows/torchmetrics only).
for _sub in ("flows", "conditions", "losses", "metrics"):
    try:
        importlib.import_module(f"humr.{_sub}")
    except ModuleNotFoundError as _err:  # subpackage not written yet or optional dependency missing
        if _err.name is None or not _err.name.startswith(f"humr.{_sub}"):
            raise


def __getattr__(name: str):
    if name == "build_model":
        from humr.model import build_model

        return build_model
    if name == "load_official":
        from humr.official.checkpoint import load_official

        return load_official
    if name == "predict":
        from humr.prediction import predict

        return predict
    raise AttributeError(f"module 'humr' has no attribute {name!r}")
