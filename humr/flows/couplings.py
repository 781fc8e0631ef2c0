"""Coupling layers (nflows subclasses) and the coupling-block stack shared by NICE and RealNVP."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from nflows.transforms import AffineCouplingTransform, Permutation, Transform


def soft_clamp(s: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Soft clamp of a log-scale, :math:`\frac{2\alpha}{\pi}\arctan(s/\alpha)`, in [-alpha, alpha].

    Its slope at 0 is 2/pi (as in FrEIA's coupling blocks), so small log-scales are damped too.

    Example:
        >>> import torch
        >>> [round(v, 4) for v in soft_clamp(torch.tensor([0.0, 2.0, -1e6]), 2.0).tolist()]
        [0.0, 1.0, -2.0]
    """
    return (2.0 * alpha / math.pi) * torch.atan(s / alpha)


class SoftClampAffineCoupling(AffineCouplingTransform):
    r"""Affine coupling ``y_t = x_t * exp(s) + t`` with a soft-clamped log-scale (FrEIA style).

    The subnet outputs ``[t, s_raw]`` (nflows layout: shift first); the log-scale is
    ``s = soft_clamp(s_raw, alpha)``, so ``|s| < alpha`` for every element, which keeps the
    per-coupling log-determinant within ``alpha * D_t`` and stabilizes training.

    Args:
        mask: 1-D mask, ``mask[i] > 0`` marks the transformed features (nflows convention).
        transform_net_create_fn: ``(in, out) -> net`` with ``net(x_identity, context)``.
        alpha: clamp bound (2.0 in the paper).
    """

    def __init__(self, mask, transform_net_create_fn, alpha: float = 2.0):
        self.alpha = float(alpha)
        super().__init__(mask, transform_net_create_fn)

    def _scale_and_shift(self, transform_params: torch.Tensor):
        shift = transform_params[:, : self.num_transform_features]
        log_scale = soft_clamp(transform_params[:, self.num_transform_features:], self.alpha)
        return torch.exp(log_scale), shift


def half_mask(dim: int) -> torch.Tensor:
    """Mask transforming the second half ``[dim // 2, dim)``; ``1 - mask`` the first half."""
    if dim < 2:
        raise ValueError(f"a coupling flow needs dim >= 2, got dim={dim}")
    mask = torch.zeros(dim, dtype=torch.long)
    mask[dim // 2:] = 1
    return mask


def coupling_blocks(dim: int, num_blocks: int, make_coupling: Callable[[torch.Tensor], Transform],
                    seed: int = 0) -> list[Transform]:
    """``num_blocks`` GLOW-style coupling blocks (one coupling per half) with fixed random
    permutations between blocks, drawn from ``torch.Generator().manual_seed(seed)``.

    The permutations are nflows ``Permutation`` buffers, hence saved in the state dict.
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    generator = torch.Generator().manual_seed(seed)
    mask = half_mask(dim)
    layers: list[Transform] = []
    for block in range(num_blocks):
        if block:
            layers.append(Permutation(torch.randperm(dim, generator=generator)))
        layers += [make_coupling(mask), make_coupling(1 - mask)]
    return layers
