"""Input checks: symbolic shapes, dtypes, finiteness; batch / output key lookup.

Errors name the key (``batch['coco_gt']``, ``out['keypoints2d']``, ...) and the expected
shape. Finiteness is checked only when asked (``finite=True``, the losses' ``validate_args``),
because it synchronises with the device on every call.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["Spec", "as_float", "check_inputs", "fetch", "require_at_least"]

Spec = Sequence[int | str]


def check_inputs(specs: Mapping[str, tuple[Tensor | None, Spec]],
                 finite: bool = True) -> dict[str, int]:
    """Check tensors against symbolic shapes and return the bound sizes.

    Args:
        specs: ``key -> (tensor or None, shape)``; a shape entry is an int (fixed size) or a
            letter bound by its first use, e.g. ``{"gt": (x, ("B", "K", 3))}``. ``None``
            tensors (optional inputs) are skipped.
        finite: also reject NaN / inf in floating inputs.
    Returns:
        ``{letter: size}`` for every bound letter.
    Raises:
        TypeError: an input is not a tensor.
        ValueError: wrong rank or size (the message names the key and the expected shape) or
            (with ``finite``) a floating-point input holding NaN / inf.
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
        if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{key} contains NaN or infinite values")
    return sizes


def require_at_least(sizes: Mapping[str, int], sym: str, minimum: int, key: str, why: str) -> None:
    """Raise a ValueError naming ``key`` when the size bound to ``sym`` is below ``minimum``."""
    if sizes[sym] < minimum:
        raise ValueError(f"{key} needs {sym} >= {minimum} ({why}), got {sym} = {sizes[sym]}")


def as_float(x: Tensor, key: str, dtype: torch.dtype | None = None) -> Tensor:
    """``x`` as a floating tensor: integer / bool inputs are cast to ``dtype`` (default: torch's
    default dtype); complex inputs are refused with an error naming ``key``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{key} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{key} must be real, got {x.dtype}")
    if x.is_floating_point():
        return x if dtype is None else x.to(dtype)
    return x.to(dtype or torch.get_default_dtype())


def fetch(batch: Mapping[str, Tensor], out: Mapping[str, Tensor],
          batch_keys: Mapping[str, Spec], out_keys: Mapping[str, Spec] | None = None,
          finite: bool = True) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Look up and check keys of the batch and of the model output.

    Args:
        batch, out: the batch dict and the model output dict.
        batch_keys, out_keys: ``key -> symbolic shape``, e.g. ``{"coco_gt": ("B", 17, 3)}``;
            letters are bound across all keys of both dicts.
        finite: also reject NaN / inf values (the losses pass their ``validate_args``).
    Returns:
        The batch tensors and the output tensors, as two dicts keyed like the specs.
    Raises:
        KeyError: a key is missing (the message names ``batch[...]`` or ``out[...]``).
        ValueError: wrong shape, an empty batch (B = 0) or, with ``finite``, non-finite values.
    """
    specs, taken = {}, ({}, {})
    for where, mapping, keys, dest in (("batch", batch, batch_keys, taken[0]),
                                       ("out", out, out_keys or {}, taken[1])):
        for key, spec in keys.items():
            if key not in mapping:
                shape = "(" + ", ".join(str(s) for s in spec) + ")"
                raise KeyError(f"{where}['{key}'] is missing; expected a tensor of shape {shape}")
            dest[key] = mapping[key]
            specs[f"{where}['{key}']"] = (mapping[key], spec)
    sizes = check_inputs(specs, finite=finite)
    if sizes.get("B", 1) == 0:
        raise ValueError("empty batch: B = 0 examples (a loss needs at least one)")
    return taken
