"""Conditional normalizing flows over body pose: ``nice``, ``realnvp``, ``glow``.

All are built from nflows transforms and registered in ``humr.FLOWS``; importing this package
imports torch and nflows only.

Example:
    >>> import torch
    >>> from humr.flows import build_flow
    >>> flow = build_flow("realnvp", dim=12, context_dim=7, num_blocks=2, hidden_features=32)
    >>> x, log_prob, z = flow.sample(torch.randn(3, 7), num_samples=4)
    >>> x.shape, log_prob.shape, z.shape
    (torch.Size([3, 4, 12]), torch.Size([3, 4]), torch.Size([3, 4, 12]))
"""
from __future__ import annotations

from typing import Any

from humr.flows.base import ConditionalFlow
from humr.flows.couplings import SoftClampAffineCoupling, soft_clamp
from humr.flows.glow import GlowFlow
from humr.flows.nice import NICEFlow
from humr.flows.realnvp import RealNVPFlow
from humr.flows.subnet import ContextMLP
from humr.registry import FLOWS

__all__ = [
    "ConditionalFlow",
    "ContextMLP",
    "GlowFlow",
    "NICEFlow",
    "RealNVPFlow",
    "SoftClampAffineCoupling",
    "build_flow",
    "soft_clamp",
]


def build_flow(name: str, dim: int, context_dim: int, **kw: Any) -> ConditionalFlow:
    """Build the flow registered as ``name`` (``nice``, ``realnvp``, ``glow``)."""
    return FLOWS.build(name, dim=dim, context_dim=context_dim, **kw)
