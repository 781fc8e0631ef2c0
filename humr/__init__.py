"""humr: probabilistic 3D human mesh recovery supervised with 2D detector heatmaps and masks.

Importing ``humr`` is light: the flows, conditioners, losses and metrics register themselves
when their registry is first used (or their subpackage imported); the body model (smplx) and
the training engine (lightning) are imported only when first used, so that single parts such
as ``humr.losses.MMDLoss`` can be lifted into other projects cheaply.
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
]

# The registries import their subpackages on first use (humr.registry.Registry.module).


def __getattr__(name: str):
    if name == "build_model":
        from humr.model import build_model

        return build_model
    raise AttributeError(f"module 'humr' has no attribute {name!r}")
