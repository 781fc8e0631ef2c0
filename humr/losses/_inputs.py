"""Input fetching and reductions shared by the losses.

Batch and model-output keys follow ``docs/conventions.md``; every loss fetches its keys with
:func:`fetch`, which names the missing or malformed key and its expected shape.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from humr.geometry import full_to_crop
from humr.metrics._validation import check_inputs

Spec = Sequence[int | str]


def fetch(batch: Mapping[str, Tensor], out: Mapping[str, Tensor],
          batch_keys: Mapping[str, Spec], out_keys: Mapping[str, Spec] | None = None
          ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Look up and check keys of the batch and of the model output.

    Args:
        batch, out: the batch dict and the model output dict.
        batch_keys, out_keys: ``key -> symbolic shape``, e.g. ``{"coco_gt": ("B", 17, 3)}``;
            letters are bound across all keys of both dicts.
    Returns:
        The batch tensors and the output tensors, as two dicts keyed like the specs.
    Raises:
        KeyError: a key is missing (the message names ``batch[...]`` or ``out[...]``).
        ValueError: wrong shape or non-finite values (raised by ``check_inputs``).
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
    check_inputs(specs)
    return taken


def to_crop(points: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
    """Full-image pixels (B, ..., 2) -> crop coordinates [-1, 1] of each example's crop box.

    Uses ``batch['center']`` (B, 2) and ``batch['scale']`` (B, 1) (box side ``200 * scale``).
    """
    center, scale = fetch(batch, {}, {"center": ("B", 2), "scale": ("B", 1)})[0].values()
    flat = points.reshape(points.shape[0], -1, 2)
    return full_to_crop(flat, center.to(points.dtype), 200.0 * scale[:, 0].to(points.dtype)
                        ).reshape(points.shape)


def in_crop(uv: Tensor) -> Tensor:
    """Points (..., 2) inside the crop, ``-1 <= u < 1`` on both axes (pixel i covers [i, i+1))."""
    return ((uv >= -1.0) & (uv < 1.0)).all(dim=-1)
