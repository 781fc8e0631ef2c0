"""NICE: additive (volume-preserving) coupling blocks with fixed random permutations."""
from __future__ import annotations

from nflows.transforms import CompositeTransform

from humr.flows.base import ConditionalFlow
from humr.flows.couplings import HalfAdditiveCoupling, coupling_blocks
from humr.flows.subnet import subnet_factory
from humr.registry import FLOWS


@FLOWS.register("nice")
class NICEFlow(ConditionalFlow):
    r"""Conditional NICE (Dinh et al. 2015), the volume-preserving flow of ProHMR's baseline.

    Each block applies two additive couplings, one per half,
    :math:`x_b \leftarrow x_b + t(x_a, c)`, :math:`x_a \leftarrow x_a + t'(x_b, c)`, followed by
    a fixed random permutation (between blocks). The Jacobian determinant is exactly 1, so
    :math:`\log p(x \mid c) = \log \mathcal{N}(f(x; c); 0, I)`.

    Args:
        dim: data dimension D (132 = 22 SMPL-X joints x 6D).
        context_dim: context dimension C.
        num_blocks: number of coupling blocks (2 couplings each).
        hidden_features: subnet hidden width.
        dropout: subnet dropout probability.
        factorized: compute the subnets' context-part once per image.
        seed: seed of the permutations.

    Example:
        >>> import torch
        >>> flow = NICEFlow(dim=4, context_dim=3, num_blocks=2, hidden_features=16)
        >>> x, log_prob, z = flow.sample(torch.randn(2, 3), num_samples=5)
        >>> x.shape, log_prob.shape
        (torch.Size([2, 5, 4]), torch.Size([2, 5]))
    """

    def __init__(self, dim: int, context_dim: int, num_blocks: int = 8,
                 hidden_features: int = 1024, dropout: float = 0.0, factorized: bool = True,
                 seed: int = 0):
        make_net = subnet_factory(context_dim, hidden_features, dropout, factorized)
        layers = coupling_blocks(dim, num_blocks,
                                 lambda mask: HalfAdditiveCoupling(mask, make_net), seed)
        super().__init__(CompositeTransform(layers), dim, context_dim)
