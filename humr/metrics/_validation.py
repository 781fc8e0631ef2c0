"""Input checks shared by the metrics: symbolic shapes, finiteness, minimum sizes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

Spec = Sequence[int | str]


def check_inputs(specs: Mapping[str, tuple[Tensor | None, Spec]]) -> dict[str, int]:
    """Check tensors against symbolic shapes and return the bound sizes.

    Args:
        specs: ``key -> (tensor or None, shape)``; a shape entry is an int (fixed size) or a
            letter bound by its first use, e.g. ``{"gt": (x, ("B", "K", 3))}``. ``None``
            tensors (optional inputs) are skipped.
    Returns:
        ``{letter: size}`` for every bound letter.
    Raises:
        TypeError: an input is not a tensor.
        ValueError: wrong rank or size (the message names the key and the expected shape) or
            a floating-point input holding NaN / inf.
    """
    sizes: dict[str, int] = {}
    for key, (x, spec) in specs.items():
        if x is None:
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"{key} must be a torch.Tensor, got {type(x).__name__}")
        expected = "(" + ", ".join(str(s) for s in spec) + ")"
        if x.dim() != len(spec):
            raise ValueError(f"{key} must have shape {expected}, got {tuple(x.shape)}")
        for size, sym in zip(x.shape, spec):
            want = sym if isinstance(sym, int) else sizes.setdefault(sym, size)
            if size != want:
                bound = "" if isinstance(sym, int) else f" with {sym} = {want}"
                raise ValueError(f"{key} must have shape {expected}{bound}, got {tuple(x.shape)}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{key} contains NaN or infinite values")
    return sizes


def require_at_least(sizes: Mapping[str, int], sym: str, minimum: int, key: str, why: str) -> None:
    """Raise a ValueError naming ``key`` when the size bound to ``sym`` is below ``minimum``."""
    if sizes[sym] < minimum:
        raise ValueError(f"{key} needs {sym} >= {minimum} ({why}), got {sym} = {sizes[sym]}")
