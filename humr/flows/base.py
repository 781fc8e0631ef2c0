"""Conditional flow over (B, S, D) samples given a per-image context (B, C).

nflows transforms work on rows; the S samples of each image are flattened to B*S contiguous
rows (image-major). The context reaches the transform in one of two ways:

* broadcast by this base class to B*S rows (``context[b]`` repeated for the S samples of image
  b), so that any nflows conditional transform (e.g. ``MaskedAffineAutoregressiveTransform``)
  works for S > 1 unchanged; this is the default;
* with its B rows unchanged, when every context-reading part is a coupling whose subnet is a
  :class:`humr.flows.subnet.ContextMLP`: those subnets compute the context part once per image
  and broadcast it themselves (the built-in flows; detected, see :func:`context_per_image`).

Direction (nflows convention): the transform maps data ``x`` to noise ``z``; sampling runs its
inverse.
"""
from __future__ import annotations

import torch
from nflows.distributions import StandardNormal
from nflows.transforms import ActNorm, BatchNorm, CompositeTransform, Permutation
from nflows.transforms.base import Transform
from nflows.transforms.coupling import CouplingTransform
from nflows.transforms.linear import Linear
from torch import nn

from humr.flows.subnet import ContextMLP

# nflows transforms that never read the context
_CONTEXT_FREE = (ActNorm, BatchNorm, Linear, Permutation)


def context_per_image(transform: Transform) -> bool:
    """Whether ``transform`` takes the (B, C) context for B*S rows itself: every leaf is
    context-free (permutation, linear / LU, ActNorm, BatchNorm) or a coupling with a
    :class:`~humr.flows.subnet.ContextMLP` subnet, and at least one coupling exists."""
    leaves, stack = [], [transform]
    while stack:
        t = stack.pop()
        if isinstance(t, CompositeTransform):
            stack.extend(t._transforms)
        else:
            leaves.append(t)
    couplings = [t for t in leaves if isinstance(t, CouplingTransform)]
    return bool(couplings) and all(
        isinstance(t, _CONTEXT_FREE) or (isinstance(t, CouplingTransform)
                                         and isinstance(t.transform_net, ContextMLP))
        for t in leaves)


class ConditionalFlow(nn.Module):
    r"""Base class of the registered flows: a conditional bijection with a N(0, I) base.

    .. math::
        \log p(x \mid c) = \log \mathcal{N}(f(x; c); 0, I) + \log\left|\det \partial f / \partial x\right|

    Args:
        transform: nflows transform ``x -> z`` (any conditional nflows transform).
        dim: data dimension D.
        context_dim: context dimension C.
        validate_args: also check inputs for NaN / inf on every call (a host synchronisation
            each; shapes, dtypes and devices are always checked, which costs nothing).

    The module's parameters set the dtype and device; inputs must match them (``flow.to(...)``),
    except that under autocast any floating dtype is accepted. Sampled ``z`` takes the
    parameters' dtype and device. ``per_image_context`` tells whether the transform gets the
    context's B rows (see :func:`context_per_image`) or B*S broadcast rows.

    Example (a user flow from plain nflows transforms, S = 3 hypotheses):
        >>> from nflows.transforms import MaskedAffineAutoregressiveTransform
        >>> t = CompositeTransform([MaskedAffineAutoregressiveTransform(4, 8, context_features=5)])
        >>> x, logp, z = ConditionalFlow(t, 4, 5).sample(torch.randn(2, 5), 3)
        >>> x.shape, logp.shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))
    """

    def __init__(self, transform: Transform, dim: int, context_dim: int,
                 validate_args: bool = False):
        super().__init__()
        self.dim = int(dim)
        self.context_dim = int(context_dim)
        self.transform = transform
        self.base = StandardNormal([self.dim])
        self.validate_args = bool(validate_args)
        self.per_image_context = context_per_image(transform)

    def _context_rows(self, context: torch.Tensor, samples: int) -> torch.Tensor:
        """The context as the transform takes it: (B, C), or (B*S, C) broadcast image-major."""
        if self.per_image_context or samples == 1:
            return context
        batch = context.shape[0]
        return context[:, None].expand(batch, samples, self.context_dim).reshape(batch * samples, -1)

    # ---------------------------------------------------------------- validation
    def _check_context(self, context: torch.Tensor) -> int:
        if not torch.is_tensor(context) or context.dim() != 2 or context.shape[1] != self.context_dim:
            shape = tuple(context.shape) if torch.is_tensor(context) else type(context).__name__
            raise ValueError(f"context must have shape (B, {self.context_dim}), got {shape}")
        if context.shape[0] == 0:
            raise ValueError(f"context must have at least one row, got shape {tuple(context.shape)}")
        self._check_dtype_device("context", context)
        if self.validate_args and not torch.isfinite(context).all():
            raise ValueError(f"context (B, {self.context_dim}) contains NaN or inf")
        return context.shape[0]

    def _check_dtype_device(self, name: str, value: torch.Tensor) -> None:
        """Inputs live on the parameters' device with their dtype (any float under autocast)."""
        param = next(self.parameters())
        autocast = torch.is_autocast_enabled(param.device.type)
        if value.device != param.device or not (value.dtype == param.dtype or (
                autocast and value.is_floating_point())):
            raise ValueError(f"{name} is {value.dtype} on {value.device} but the flow is "
                             f"{param.dtype} on {param.device}; move one with .to()")

    def _check_samples(self, name: str, value: torch.Tensor, context: torch.Tensor) -> None:
        batch = context.shape[0]
        if (not torch.is_tensor(value) or value.dim() != 3 or value.shape[0] != batch
                or value.shape[2] != self.dim or value.shape[1] == 0):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"{name} must have shape (B={batch}, S>=1, {self.dim}) matching "
                             f"context (B, {self.context_dim}), got {shape}")
        self._check_dtype_device(name, value)
        if self.validate_args and not torch.isfinite(value).all():
            raise ValueError(f"{name} (B, S, {self.dim}) contains NaN or inf")

    # ---------------------------------------------------------------- density and sampling
    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (B, S, D) under the flow given ``context`` (B, C) -> (B, S)."""
        self._check_context(context)
        self._check_samples("x", x, context)
        batch, samples, _ = x.shape
        z, logabsdet = self.transform(x.reshape(batch * samples, self.dim),
                                      self._context_rows(context, samples))
        return (self.base.log_prob(z) + logabsdet).view(batch, samples)

    def sample(self, context: torch.Tensor, num_samples: int, z: torch.Tensor | None = None,
               generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``num_samples`` samples per context row.

        Args:
            context: (B, C) condition.
            num_samples: S >= 1.
            z: optional (B, S, D) latent; ``z = 0`` maps to the approximate mode (callers put
                the mode first with ``z[:, 0] = 0``). Drawn from N(0, I) when None.
            generator: optional ``torch.Generator`` (on the context's device) for repeatable draws.

        Returns:
            x (B, S, D), log_prob (B, S) of x, z (B, S, D).
        """
        batch = self._check_context(context)
        param = next(self.parameters())
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if z is None:
            z = torch.randn(batch, num_samples, self.dim, generator=generator,
                            dtype=param.dtype, device=param.device)
        else:
            self._check_samples("z", z, context)
            if z.shape[1] != num_samples:
                raise ValueError(f"z has {z.shape[1]} samples per row, num_samples={num_samples}")
        flat = z.reshape(batch * num_samples, self.dim)
        x, logabsdet = self.transform.inverse(flat, self._context_rows(context, num_samples))
        log_prob = self.base.log_prob(flat) - logabsdet
        return x.view(batch, num_samples, self.dim), log_prob.view(batch, num_samples), z
