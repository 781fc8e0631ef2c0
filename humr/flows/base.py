"""Conditional flow over (B, S, D) samples given a per-image context (B, C).

nflows transforms work on rows; the S samples of each image are flattened to B*S contiguous
rows, while the context is passed with its B rows unchanged: the coupling subnets
(:class:`humr.flows.subnet.ContextMLP`) broadcast it over the S samples themselves. Direction
(nflows convention): the transform maps data ``x`` to noise ``z``; sampling runs its inverse.
"""
from __future__ import annotations

import torch
from nflows.distributions import StandardNormal
from nflows.transforms import CompositeTransform
from torch import nn


class ConditionalFlow(nn.Module):
    r"""Base class of the registered flows: a conditional bijection with a N(0, I) base.

    .. math::
        \log p(x \mid c) = \log \mathcal{N}(f(x; c); 0, I) + \log\left|\det \partial f / \partial x\right|

    Args:
        transform: nflows composite transform ``x -> z`` taking the context (B, C).
        dim: data dimension D.
        context_dim: context dimension C.

    The module's parameters set the dtype and device; inputs must match them (``flow.to(...)``),
    except that under autocast any floating dtype is accepted. Sampled ``z`` takes the
    parameters' dtype and device.
    """

    def __init__(self, transform: CompositeTransform, dim: int, context_dim: int):
        super().__init__()
        self.dim = int(dim)
        self.context_dim = int(context_dim)
        self.transform = transform
        self.base = StandardNormal([self.dim])

    # ---------------------------------------------------------------- validation
    def _check_context(self, context: torch.Tensor) -> int:
        if not torch.is_tensor(context) or context.dim() != 2 or context.shape[1] != self.context_dim:
            shape = tuple(context.shape) if torch.is_tensor(context) else type(context).__name__
            raise ValueError(f"context must have shape (B, {self.context_dim}), got {shape}")
        if context.shape[0] == 0:
            raise ValueError(f"context must have at least one row, got shape {tuple(context.shape)}")
        self._check_dtype_device("context", context)
        if not torch.isfinite(context).all():
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
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} (B, S, {self.dim}) contains NaN or inf")

    # ---------------------------------------------------------------- density and sampling
    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (B, S, D) under the flow given ``context`` (B, C) -> (B, S)."""
        self._check_context(context)
        self._check_samples("x", x, context)
        batch, samples, _ = x.shape
        z, logabsdet = self.transform(x.reshape(batch * samples, self.dim), context)
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
        x, logabsdet = self.transform.inverse(flat, context)
        log_prob = self.base.log_prob(flat) - logabsdet
        return x.view(batch, num_samples, self.dim), log_prob.view(batch, num_samples), z
