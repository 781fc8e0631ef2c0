"""RealNVP with soft-clamped affine couplings (the paper's flow, appendix A)."""
from __future__ import annotations

from nflows.transforms import CompositeTransform

from humr.flows.base import ConditionalFlow
from humr.flows.couplings import SoftClampAffineCoupling, coupling_blocks
from humr.flows.subnet import subnet_factory
from humr.registry import FLOWS


@FLOWS.register("realnvp")
class RealNVPFlow(ConditionalFlow):
    r"""Conditional RealNVP with GLOW-style coupling blocks and FrEIA 0.2's soft clamping.

    Each block updates both halves with affine couplings,
    :math:`x_b \leftarrow x_b \odot e^{s(x_a, c)} + t(x_a, c)` then the same for :math:`x_a`
    given :math:`x_b`, with :math:`s = 0.636\,\alpha\arctan(s_{raw})` (FrEIA's "ATAN" clamp;
    ``clamp="atan_scaled"``: :math:`\frac{2\alpha}{\pi}\arctan(s_{raw}/\alpha)`); fixed random
    permutations (seeded, saved in the state dict) sit between blocks (``layout="freia"``: the
    official flow's order, see :func:`humr.flows.couplings.coupling_blocks`). Subnets are
    Linear-ReLU-Linear-ReLU-Linear whose last layer is zero-initialised, so the flow starts
    as the identity.

    Args:
        dim: data dimension D (132 in the paper).
        context_dim: context dimension C.
        num_blocks: number of coupling blocks (8 in the paper).
        hidden_features: subnet hidden width (1024 in the paper).
        dropout: subnet dropout probability.
        alpha: soft-clamp bound of the log-scale (2.0 in the paper, 3.0 in the official config).
        clamp: "freia" (default, FrEIA 0.2's form) or "atan_scaled" (see
            :func:`humr.flows.couplings.soft_clamp`).
        layout: "humr" or "freia" (block order and permutation placement of FrEIA's graph).
        factorized: compute the subnets' context-part once per image.
        seed: seed of the permutations.

    Example:
        >>> import torch
        >>> flow = RealNVPFlow(dim=4, context_dim=3, num_blocks=2, hidden_features=16)
        >>> c = torch.randn(2, 3)
        >>> z = torch.zeros(2, 1, 4)
        >>> x, log_prob, _ = flow.sample(c, 1, z=z)   # identity at initialisation
        >>> bool(torch.equal(x, z))
        True
    """

    def __init__(self, dim: int, context_dim: int, num_blocks: int = 8,
                 hidden_features: int = 1024, dropout: float = 0.0, alpha: float = 2.0,
                 factorized: bool = True, seed: int = 0, clamp: str = "freia", layout: str = "humr"):
        make_net = subnet_factory(context_dim, hidden_features, dropout, factorized)
        layers = coupling_blocks(dim, num_blocks,
                                 lambda mask: SoftClampAffineCoupling(mask, make_net, alpha, clamp),
                                 seed, layout)
        super().__init__(CompositeTransform(layers), dim, context_dim)
