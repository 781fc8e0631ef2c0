"""humr: probabilistic 3D human mesh recovery supervised with 2D detector heatmaps and masks.

Importing ``humr`` imports torch-free code only: the registries fill themselves when first
asked (``humr.FLOWS.names()`` imports :mod:`humr.flows`, ...), and ``humr.build_model`` imports
the model on first use, so single parts such as ``humr.losses.MMDLoss`` can be lifted into
other projects cheaply.
"""
from __future__ import annotations

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
