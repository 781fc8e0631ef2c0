"""Glow: ActNorm + invertible linear (LU) + affine coupling per step (ProHMR's flow)."""
from __future__ import annotations

from nflows.transforms import (
    ActNorm,
    CompositeTransform,
    LULinear,
)

from humr.flows.base import ConditionalFlow
from humr.flows.couplings import HalfAffineCoupling, half_mask
from humr.flows.subnet import subnet_factory
from humr.registry import FLOWS


@FLOWS.register("glow")
class GlowFlow(ConditionalFlow):
    r"""Conditional Glow (Kingma & Dhariwal 2018) as used by ProHMR, from nflows transforms.

    Each step (data -> noise direction) is ``ActNorm -> LULinear -> AffineCoupling``; the
    coupling transforms the second half, :math:`x_b \leftarrow x_b \odot \sigma(h + 2) + t`
    (nflows' Glow scale, in (1e-3, 1 + 1e-3)), and the learned LU linear layer mixes the halves
    between steps, so no permutation is needed.

    ActNorm uses nflows' data-dependent initialisation: the first ``log_prob`` call in training
    mode sets its scale and shift so that that batch has zero mean and unit variance per
    feature (the ``initialized`` buffer is saved in the state dict). Before it, and for sampling
    of a never-trained flow, ActNorm is the identity.

    Args:
        dim: data dimension D.
        context_dim: context dimension C.
        num_blocks: number of Glow steps.
        hidden_features: subnet hidden width.
        dropout: subnet dropout probability.
        factorized: compute the subnets' context-part once per image.

    Example:
        >>> import torch
        >>> flow = GlowFlow(dim=4, context_dim=3, num_blocks=2, hidden_features=16).eval()
        >>> x = torch.randn(2, 5, 4)
        >>> flow.log_prob(x, torch.randn(2, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(self, dim: int, context_dim: int, num_blocks: int = 8,
                 hidden_features: int = 1024, dropout: float = 0.0, factorized: bool = True):
        make_net = subnet_factory(context_dim, hidden_features, dropout, factorized)
        mask = half_mask(dim)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        layers = []
        for _ in range(num_blocks):
            layers += [ActNorm(dim), LULinear(dim, identity_init=True),
                       HalfAffineCoupling(mask, make_net)]
        super().__init__(CompositeTransform(layers), dim, context_dim)
