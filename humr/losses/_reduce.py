"""Weighted reductions that ignore (and pass no gradient to) zero-weight entries (torch only)."""
from __future__ import annotations

import torch
from torch import Tensor


def weighted(values: Tensor, weights: Tensor) -> Tensor:
    """``w * v`` elementwise, with entries of zero weight set to 0 before multiplying.

    NaN or infinite values at zero weight thus neither reach the result nor its gradient.
    """
    weights = weights.to(values.dtype).expand_as(values)
    return torch.where(weights != 0, values, torch.zeros_like(values)) * weights


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """``sum(w * v) / sum(w)`` over all elements; 0 (still attached to the graph) if ``sum(w) = 0``."""
    total = weights.to(values.dtype).expand_as(values).sum()
    return weighted(values, weights).sum() / torch.where(total != 0, total, torch.ones_like(total))
