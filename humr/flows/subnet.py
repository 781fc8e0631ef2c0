"""Conditional coupling subnet whose first layer is split into an x-part and a context-part.

The condition ``c`` is identical for all S samples of an image, so the context-part of the first
layer, ``W_c c + b``, is computed once per image (B rows) and broadcast over the S samples instead
of being recomputed for all B*S rows of the concatenated input ``[x, c]``. Both formulations use
the same parameters (one ``nn.Linear`` over ``[x, c]``); ``factorized=False`` computes the plain
concatenation and serves as the reference in tests and benchmarks.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


class ContextMLP(nn.Module):
    r"""Linear-ReLU-Linear-ReLU-Linear on ``[x, c]`` with a factorized first layer.

    .. math::
        h_1 = \mathrm{ReLU}(W_x x + (W_c c + b)),\quad
        h_2 = \mathrm{ReLU}(W_2 h_1 + b_2),\quad y = W_3 h_2 + b_3

    where ``W_c c + b`` is evaluated for the B context rows only (``factorized=True``).

    Args:
        in_features: width of the x-part (the coupling's identity half).
        out_features: width of the output (the coupling's transform parameters).
        context_features: width C of the context.
        hidden_features: hidden width (1024 in the paper).
        dropout: dropout probability after each ReLU (0 disables it).
        factorized: compute the context-part once per image (True) or concatenate (False).
        zero_init: zero the last layer, so a coupling starts as identity.

    Shapes:
        ``forward(inputs (B*S, in_features), context (B, C)) -> (B*S, out_features)``; row
        ``i`` of ``inputs`` belongs to image ``i // S`` (samples of one image are contiguous).

    Example:
        >>> import torch
        >>> net = ContextMLP(3, 4, context_features=5, hidden_features=8)
        >>> net(torch.randn(6, 3), torch.randn(2, 5)).shape
        torch.Size([6, 4])
    """

    def __init__(self, in_features: int, out_features: int, context_features: int,
                 hidden_features: int = 1024, dropout: float = 0.0, factorized: bool = True,
                 zero_init: bool = True):
        super().__init__()
        self.in_features = in_features
        self.context_features = context_features
        self.factorized = factorized
        self.first = nn.Linear(in_features + context_features, hidden_features)
        # in-place ReLUs: each overwrites a fresh product that no backward reads (the linear
        # layers' backward needs their inputs, not their outputs), so the (B*S, H) hidden
        # activations are not allocated twice (on CPU every fresh allocation of that size
        # costs page faults: about 15 % of sampling 16 x 100 hypotheses at width 1024)
        self.rest = nn.Sequential(
            nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_features, hidden_features), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden_features, out_features),
        )
        if zero_init:
            nn.init.zeros_(self.rest[-1].weight)
            nn.init.zeros_(self.rest[-1].bias)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        rows, images = inputs.shape[0], context.shape[0]
        if rows % images:
            raise ValueError(f"inputs has {rows} rows, not a multiple of the context batch "
                             f"{images}; expected inputs (B*S, {self.in_features})")
        samples = rows // images
        if self.factorized:
            w_x, w_c = self.first.weight.split([self.in_features, self.context_features], dim=1)
            per_image = F.linear(context, w_c, self.first.bias)  # (B, H): once per image
            hidden = F.linear(inputs, w_x)                         # (B*S, H), added to in place
            hidden.view(images, samples, -1).add_(per_image.unsqueeze(1))
        else:
            hidden = self.first(torch.cat([inputs, context.repeat_interleave(samples, 0)], 1))
        return self.rest(hidden)


def subnet_factory(context_features: int, hidden_features: int = 1024, dropout: float = 0.0,
                   factorized: bool = True) -> Callable[[int, int], ContextMLP]:
    """``transform_net_create_fn`` for nflows couplings: ``(in, out) -> ContextMLP``."""

    def make(in_features: int, out_features: int) -> ContextMLP:
        return ContextMLP(in_features, out_features, context_features, hidden_features,
                          dropout, factorized)

    return make
