"""Coupling layers (nflows subclasses) and the coupling-block stack shared by NICE and RealNVP."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from nflows.transforms import (
    AdditiveCouplingTransform,
    AffineCouplingTransform,
    Permutation,
    Transform,
)

FREIA_ATAN = 0.636   # FrEIA 0.2's constant of its "ATAN" clamp activation (not exactly 2/pi)
CLAMPS = ("freia", "atan_scaled")


def soft_clamp(s: torch.Tensor, alpha: float, form: str = "freia") -> torch.Tensor:
    r"""Soft clamp of a raw log-scale ``s``.

    - ``"freia"`` (default): :math:`0.636\,\alpha \arctan(s)`, exactly the log-scale of FrEIA
      0.2's coupling blocks with ``clamp=alpha`` and ``clamp_activation="ATAN"`` (the official
      release's flow), so official weights load unchanged. Bound :math:`0.999\,\alpha`, slope
      :math:`0.636\,\alpha` at 0.
    - ``"atan_scaled"``: :math:`\frac{2\alpha}{\pi}\arctan(s/\alpha)`, bound :math:`\alpha`,
      slope :math:`2/\pi` at 0 (humr's earlier form).

    Example:
        >>> import torch
        >>> [round(v, 4) for v in soft_clamp(torch.tensor([0.0, 1.0, -1e6]), 2.0).tolist()]
        [0.0, 0.999, -1.9981]
        >>> [round(v, 4) for v in soft_clamp(torch.tensor([0.0, 2.0]), 2.0, "atan_scaled").tolist()]
        [0.0, 1.0]
    """
    if form == "freia":
        return (alpha * FREIA_ATAN) * torch.atan(s)
    if form == "atan_scaled":
        return (2.0 * alpha / math.pi) * torch.atan(s / alpha)
    raise ValueError(f"clamp must be one of {', '.join(CLAMPS)}, got {form!r}")


class HalfSplit:
    """Mixin for nflows couplings: contiguous identity / transformed halves by slicing.

    nflows' ``CouplingTransform`` splits the features with index tensors and assembles the
    output with ``torch.empty_like`` and two index assignments, which costs a gather, two
    scatters and a zero-filled gradient buffer per coupling in the forward and backward
    passes. When the identity and transformed features are two contiguous blocks (the half
    masks of :func:`half_mask`), this mixin slices them and joins them with one ``cat``: the
    same numbers up to float rounding (the subnet reads a strided view, which BLAS may sum in
    another order than nflows' gathered copy). Other masks, 4D inputs and unconditional
    transforms use nflows' path.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        identity, transform = self.identity_features.tolist(), self.transform_features.tolist()
        n_id, n_tr = len(identity), len(transform)
        self._halves = None                     # (identity first?, n_id, n_tr) when contiguous
        if self.unconditional_transform is None:
            if identity == list(range(n_id)) and transform == list(range(n_id, n_id + n_tr)):
                self._halves = (True, n_id, n_tr)
            elif transform == list(range(n_tr)) and identity == list(range(n_tr, n_tr + n_id)):
                self._halves = (False, n_id, n_tr)

    def _split(self, inputs: torch.Tensor):
        identity_first, n_id, n_tr = self._halves
        first, second = inputs.split([n_id, n_tr] if identity_first else [n_tr, n_id], dim=1)
        return (first, second) if identity_first else (second, first)

    def _join(self, identity: torch.Tensor, transformed: torch.Tensor) -> torch.Tensor:
        parts = (identity, transformed) if self._halves[0] else (transformed, identity)
        return torch.cat(parts, dim=1)

    def _run(self, inputs: torch.Tensor, context, inverse: bool):
        if inputs.shape[1] != self.features:
            raise ValueError(f"Expected features = {self.features}, got {inputs.shape[1]}.")
        identity, transformed = self._split(inputs)
        params = self.transform_net(identity, context)
        step = self._coupling_transform_inverse if inverse else self._coupling_transform_forward
        transformed, logabsdet = step(transformed, params)
        return self._join(identity, transformed), logabsdet

    def forward(self, inputs, context=None):
        if self._halves is None or inputs.dim() != 2:
            return super().forward(inputs, context)
        return self._run(inputs, context, inverse=False)

    def inverse(self, inputs, context=None):
        if self._halves is None or inputs.dim() != 2:
            return super().inverse(inputs, context)
        return self._run(inputs, context, inverse=True)


class HalfAffineCoupling(HalfSplit, AffineCouplingTransform):
    """nflows' ``AffineCouplingTransform`` with :class:`HalfSplit` (Glow's coupling)."""


class HalfAdditiveCoupling(HalfSplit, AdditiveCouplingTransform):
    """nflows' ``AdditiveCouplingTransform`` with :class:`HalfSplit` (NICE's coupling)."""


class SoftClampAffineCoupling(HalfSplit, AffineCouplingTransform):
    r"""Affine coupling ``y_t = x_t * exp(s) + t`` with a soft-clamped log-scale (FrEIA style).

    The subnet outputs ``[t, s_raw]`` (nflows layout: shift first; FrEIA's subnets output
    ``[s_raw, t]``, :mod:`humr.official` swaps the rows of their last layer); the log-scale is
    ``s = soft_clamp(s_raw, alpha, clamp)``, so ``|s| < alpha`` for every element, which keeps
    the per-coupling log-determinant within ``alpha * D_t`` and stabilizes training.

    Args:
        mask: 1-D mask, ``mask[i] > 0`` marks the transformed features (nflows convention).
        transform_net_create_fn: ``(in, out) -> net`` with ``net(x_identity, context)``.
        alpha: clamp bound (2.0 in the paper; the official configuration uses 3.0).
        clamp: form of the soft clamp, see :func:`soft_clamp`.
    """

    def __init__(self, mask, transform_net_create_fn, alpha: float = 2.0, clamp: str = "freia"):
        if clamp not in CLAMPS:
            raise ValueError(f"clamp must be one of {', '.join(CLAMPS)}, got {clamp!r}")
        self.alpha = float(alpha)
        self.clamp = clamp
        super().__init__(mask, transform_net_create_fn)

    def _scale_and_shift(self, transform_params: torch.Tensor):
        shift = transform_params[:, : self.num_transform_features]
        log_scale = soft_clamp(transform_params[:, self.num_transform_features:], self.alpha, self.clamp)
        return torch.exp(log_scale), shift


def half_mask(dim: int) -> torch.Tensor:
    """Mask transforming the second half ``[dim // 2, dim)``; ``1 - mask`` the first half."""
    if dim < 2:
        raise ValueError(f"a coupling flow needs dim >= 2, got dim={dim}")
    mask = torch.zeros(dim, dtype=torch.long)
    mask[dim // 2:] = 1
    return mask


LAYOUTS = ("humr", "freia")


def coupling_blocks(dim: int, num_blocks: int, make_coupling: Callable[[torch.Tensor], Transform],
                    seed: int = 0, layout: str = "humr") -> list[Transform]:
    """``num_blocks`` GLOW-style coupling blocks (one coupling per half) with fixed random
    permutations, drawn from ``torch.Generator().manual_seed(seed)``.

    Layouts (direction x -> z):
    - ``"humr"``: each block updates the second half given the first, then the first half given
      the second; permutations between blocks (``num_blocks - 1``).
    - ``"freia"``: FrEIA 0.2's ``GLOWCouplingBlock`` + ``PermuteRandom`` graph (the official
      flow): each block updates the first half (FrEIA's ``subnet2``) before the second
      (``subnet1``), and a permutation follows every block, the last one included.

    The permutations are nflows ``Permutation`` buffers, hence saved in the state dict.
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    generator = torch.Generator().manual_seed(seed)
    perm = lambda: Permutation(torch.randperm(dim, generator=generator))
    mask = half_mask(dim)
    layers: list[Transform] = []
    for block in range(num_blocks):
        if layout == "humr":
            if block:
                layers.append(perm())
            layers += [make_coupling(mask), make_coupling(1 - mask)]
        else:
            layers += [make_coupling(1 - mask), make_coupling(mask), perm()]
    return layers
