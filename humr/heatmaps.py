"""2D detector heatmaps as distributions: sampling, confidences, visibility, precomputation.

A heatmap of H x W pixels (ViTPose: 64 x 48 = rows x cols) is read as a multinomial over its
pixels (paper section 4.2). Pixel indices follow the flattening of a row-major (H, W) map:
``x = idx mod W`` (column), ``y = idx div W`` (row). Two ways of placing a pixel in the crop
(:func:`heatmap_to_crop`):

* ``"mmpose"`` (default, the official release's ViTPose samples): the map covers the
  detector's person box of height ``box = 200 * scale`` and width ``box * W / H`` (3:4 for
  64 x 48) centred on the crop, and pixel ``(x, y)`` maps like mmpose's ``transform_preds``
  (no half-pixel offset): ``u = (2 x / W - 1) * W / H``, ``v = 2 y / H - 1``;
* ``"centers"`` (humr's synthetic detector): the map covers the whole square crop and pixel
  ``(x, y)`` sits at its centre, ``u = (x + 0.5) / W * 2 - 1``, ``v = (y + 0.5) / H * 2 - 1``.

Example:
    >>> import torch
    >>> hm = torch.zeros(17, 64, 48); hm[:, 10, 20] = 0.75         # row 10, column 20
    >>> xy, val = sample_heatmaps(hm, 3)
    >>> xy[0, 0].tolist(), val[0].tolist()
    ([20.0, 10.0], [0.75, 0.75, 0.75])
    >>> (heatmap_to_crop(xy, (64, 48))[0, 0] * 64).round().tolist()   # ((2 x / W - 1) W / H, 2 y / H - 1)
    [-8.0, -44.0]
    >>> (heatmap_to_crop(xy, (64, 48), "centers")[0, 0] * 192).round().tolist()
    [-28.0, -129.0]
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from humr.core.crop import crop_to_full, crop_to_pixels
from humr.core.masks import mask_distance
from humr.core.skeleton import ARTICULATED_COCO

__all__ = [
    "ARTICULATED_COCO",
    "CONVENTIONS",
    "heatmap_to_crop",
    "heatmap_to_full",
    "max_confidence",
    "precompute_samples",
    "sample_heatmaps",
    "sample_stored",
]

#: Heatmap-pixel placements of :func:`heatmap_to_crop`.
CONVENTIONS = ("mmpose", "centers")


def _check_heatmaps(heatmaps: Tensor, key: str = "heatmaps") -> None:
    if not isinstance(heatmaps, Tensor) or heatmaps.dim() < 3 or not heatmaps.is_floating_point():
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, Tensor) else type(heatmaps).__name__
        raise ValueError(f"{key} must be a floating tensor of shape (..., K, H, W), got {shape}")
    if heatmaps.numel() == 0:
        raise ValueError(f"{key} is empty: shape {tuple(heatmaps.shape)}")
    bad = ~torch.isfinite(heatmaps).flatten(-2).all(dim=-1)          # (..., K)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        raise ValueError(f"{key} holds NaN or infinite values at joint index {where[-1]} "
                         f"(index {tuple(where)} of the leading (..., K) dimensions)")


def sample_heatmaps(heatmaps: Tensor, n: int, threshold: float = 0.05,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw ``n`` pixels per heatmap, with replacement, with probability proportional to value.

    Values below ``threshold`` (and negative values) are set to zero first. Rule for a map that
    is all zero after thresholding (no evidence): its ``n`` samples are padding, with value 0
    and position at the map centre ``((W - 1) / 2, (H - 1) / 2)`` (crop (0, 0) under the
    ``"centers"`` convention; consumers skip value-0 samples).
    A map holding NaN or infinite values raises a ``ValueError`` naming the joint index.

    Args:
        heatmaps: (..., K, H, W) non-negative confidences.
        n: samples per map.
        threshold: values below it do not count.
        generator: optional ``torch.Generator`` on the heatmaps' device, for repeatable draws.
    Returns:
        xy (..., K, n, 2): heatmap pixel indices (x = column, y = row) as floats.
        values (..., K, n): heatmap value at each sample (0 = padding).
    """
    _check_heatmaps(heatmaps)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    *lead, height, width = heatmaps.shape
    flat = heatmaps.reshape(-1, height * width)
    probs = torch.where(flat >= threshold, flat, torch.zeros_like(flat)).clamp(min=0)
    empty = probs.sum(dim=-1) <= 0                                      # (N,)
    # torch.multinomial rejects all-zero rows: give them uniform weights and mark them padding.
    safe = torch.where(empty[:, None], torch.ones_like(probs), probs)
    idx = torch.multinomial(safe, n, replacement=True, generator=generator)   # (N, n)
    values = torch.gather(probs, 1, idx)
    x = (idx % width).to(heatmaps.dtype)
    y = torch.div(idx, width, rounding_mode="floor").to(heatmaps.dtype)
    centre = heatmaps.new_tensor([(width - 1) / 2.0, (height - 1) / 2.0])
    xy = torch.where(empty[:, None, None], centre, torch.stack([x, y], dim=-1))
    return xy.reshape(*lead, n, 2), values.reshape(*lead, n)


def heatmap_to_crop(xy: Tensor, hw: Sequence[int], convention: str = "mmpose") -> Tensor:
    """Heatmap pixel indices (..., 2) (x, y) -> crop coordinates, ``hw = (H, W)``.

    ``"mmpose"``: ``u = (2 x / W - 1) W / H``, ``v = 2 y / H - 1`` (map over the centred
    W:H person box, mmpose's ``transform_preds``); ``"centers"``: ``u = (x + 0.5) / W * 2 - 1``,
    ``v = (y + 0.5) / H * 2 - 1`` (map over the square crop, pixel centres).
    """
    height, width = int(hw[0]), int(hw[1])
    size = xy.new_tensor([width, height])
    if convention == "mmpose":
        return (2.0 * xy / size - 1.0) * xy.new_tensor([width / height, 1.0])
    if convention == "centers":
        return (xy + 0.5) / size * 2.0 - 1.0
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def heatmap_to_full(xy: Tensor, hw: Sequence[int], center: Tensor, box_size: Tensor,
                    convention: str = "mmpose") -> Tensor:
    """Heatmap pixel indices (..., K, n, 2) -> full-image pixels via :func:`crop_to_full`.

    Args:
        xy: (..., K, n, 2) heatmap pixel indices.
        hw: heatmap size (H, W).
        center: (..., 2) crop centre, full-image pixels.
        box_size: (...) crop side in pixels (``200 * scale``).
        convention: see :func:`heatmap_to_crop`.
    Returns:
        (..., K, n, 2) full-image pixels.
    """
    crop = heatmap_to_crop(xy, hw, convention)
    flat = crop.reshape(*crop.shape[:-3], -1, 2)
    return crop_to_full(flat, center, box_size).reshape(crop.shape)


def max_confidence(heatmaps: Tensor) -> Tensor:
    """Maximum of each heatmap: (..., K, H, W) -> (..., K), the visibility proxy of section 4.5."""
    _check_heatmaps(heatmaps)
    return heatmaps.flatten(-2).amax(dim=-1)


def sample_stored(n: int, stored: int, batch: int, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """Indices of ``n`` of the ``stored`` samples per example, drawn without replacement.

    The official release shuffles the stored 150 samples of an example (one permutation for
    all joints) and uses the first ones; this draws the same distribution.

    Args:
        n: samples to keep (``n <= stored``).
        stored: stored samples per joint P.
        batch: number of examples B.
        device, generator: where to draw, and an optional ``torch.Generator`` there.
    Returns:
        (B, n) int64 indices into the P stored samples, distinct within each row.
    """
    if not 0 < n <= stored:
        raise ValueError(f"cannot draw n = {n} of {stored} stored samples without replacement")
    keys = torch.rand(batch, stored, generator=generator, device=device)
    return keys.argsort(dim=1)[:, :n]


def precompute_samples(heatmaps: Tensor, center: Tensor, scale: Tensor, mask: Tensor | None = None,
                       n: int = 150, min_conf: float = 0.05,
                       generator: torch.Generator | None = None,
                       convention: str = "mmpose") -> dict[str, Tensor]:
    """The stored heatmap sample keys of one example (or a batch) (section 4.5).

    Samples are drawn by :func:`sample_heatmaps` with ``threshold = min_conf``, so samples of
    confidence below ``min_conf`` never occur; a joint without any pixel at ``min_conf`` gets
    ``n`` padding samples (value 0, at the crop centre). The distance of a sample to the person
    mask is the exact Euclidean distance of its pixel-space position ``(u + 1) R / 2`` to the
    nearest mask pixel (:func:`humr.core.masks.mask_distance`, official convention), in
    pixels of the R x R crop; a sample counts as inside when it is at most 0.71. Without a mask (``mask=None``) every distance is 0; with an empty mask every distance is
    ``inf`` (such examples should carry ``mask_valid = False``).

    Args:
        heatmaps: (K, H, W) or (B, K, H, W) detector heatmaps of the crop.
        center: (2,) or (B, 2) crop centre, full-image pixels.
        scale: (1,) or (B, 1) crop side / 200.
        mask: optional (R, R) or (B, R, R) person-plausible region on the crop, nonzero = in.
        n: samples per joint (150 in the paper).
        min_conf: samples below this confidence are discarded.
        generator: optional ``torch.Generator`` for repeatable draws.
        convention: heatmap pixel placement, see :func:`heatmap_to_crop`.
    Returns:
        ``hm_samples`` (..., K, n, 2) full-image px, ``hm_values`` (..., K, n),
        ``hm_max_conf`` (..., K), ``hm_samples_mask_dist`` (..., K, n) crop px.

    Example:
        >>> import torch
        >>> hm = torch.zeros(17, 64, 48); hm[:, 31, 23] = 1.0       # crop pixel (62, 62)
        >>> mask = torch.zeros(128, 128, dtype=torch.uint8); mask[:, 70:] = 1
        >>> out = precompute_samples(hm, torch.tensor([300., 200.]), torch.tensor([1.0]), mask, n=2)
        >>> out["hm_samples"][0, 0].tolist(), out["hm_samples_mask_dist"][0].tolist()
        ([296.875, 196.875], [8.0, 8.0])
    """
    single = heatmaps.dim() == 3
    if single:
        heatmaps, center, scale = heatmaps[None], center[None], scale[None]
        mask = None if mask is None else mask[None]
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must have shape (K, H, W) or (B, K, H, W), "
                         f"got {tuple(heatmaps.shape)}")
    batch, _, height, width = heatmaps.shape
    if tuple(center.shape) != (batch, 2) or tuple(scale.shape) != (batch, 1):
        raise ValueError(f"center must have shape (B, 2) and scale (B, 1) with B = {batch} "
                         f"(or (2,) and (1,) unbatched), got {tuple(center.shape)}, "
                         f"{tuple(scale.shape)}")
    xy, values = sample_heatmaps(heatmaps, n, threshold=min_conf, generator=generator)
    crop = heatmap_to_crop(xy, (height, width), convention)              # (B, K, n, 2)
    box = 200.0 * scale[:, 0]
    out = {
        "hm_samples": crop_to_full(crop.reshape(batch, -1, 2), center, box).reshape(crop.shape),
        "hm_values": values,
        "hm_max_conf": max_confidence(heatmaps),
    }
    if mask is None:
        out["hm_samples_mask_dist"] = torch.zeros_like(values)
    else:
        if mask.dim() != 3 or mask.shape[0] != batch:
            raise ValueError(f"mask must have shape (R, R) or (B, R, R) with B = {batch}, "
                             f"got {tuple(mask.shape)}")
        pixels = crop_to_pixels(crop.reshape(batch, -1, 2), mask.shape[-1])
        out["hm_samples_mask_dist"] = mask_distance(pixels, mask).reshape(values.shape)
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out
