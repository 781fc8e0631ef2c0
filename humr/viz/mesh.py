"""Mesh figures of hypothesis sets: front/side renders and per-vertex uncertainty colouring.

Rendering goes through :func:`humr.viz.render.render_mesh` (vectorised numpy z-buffer, no
OpenGL). Cameras are pinhole cameras in the OpenCV frame (x right, y down, z forward), metres.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch
from matplotlib import colormaps

from humr.viz.hypotheses import _numpy

__all__ = ["HYPOTHESIS_COLORS", "crop_camera", "render_hypotheses", "side_view",
           "uncertainty_colors", "vertex_spread"]

ArrayLike = np.ndarray | torch.Tensor

# RGB in [0, 1]: the mode first (grey-blue), then one colour per random hypothesis.
HYPOTHESIS_COLORS = ((0.65, 0.74, 0.86), (0.95, 0.62, 0.35), (0.55, 0.80, 0.50),
                     (0.85, 0.50, 0.75), (0.95, 0.85, 0.40), (0.50, 0.80, 0.85))


def crop_camera(focal: ArrayLike, center: ArrayLike, box_size: float, image_hw: ArrayLike,
                crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole camera of a crop_size x crop_size crop cut from a full image.

    A full-image pixel ``x`` lands at crop pixel ``(x - c) R / b + R / 2``; with the full-image
    camera ``x = f X / Z + w / 2`` this is again a pinhole camera with focal ``f R / b`` and
    principal point ``(w / 2 - c) R / b + R / 2`` (docs/conventions.md).

    Args:
        focal: (2,) full-image focal lengths (fx, fy), px.
        center: (2,) crop centre, full-image px.
        box_size: crop side b = 200 * scale, full-image px.
        image_hw: (2,) full image (h, w).
        crop_size: R, side of the crop image in pixels.
    Returns:
        ``(focal (2,), principal (2,))`` of the crop camera in crop pixels.

    Example:
        >>> f, c = crop_camera([1000, 1000], [320, 240], 200.0, [480, 640], 100)
        >>> f.tolist(), c.tolist()
        ([500.0, 500.0], [50.0, 50.0])
    """
    ratio = crop_size / float(box_size)
    hw = _numpy(image_hw).astype(np.float64)
    principal = (hw[::-1] / 2.0 - _numpy(center).astype(np.float64)) * ratio + crop_size / 2.0
    return _numpy(focal).astype(np.float64) * ratio, principal


def side_view(vertices: np.ndarray, pivot: np.ndarray, angle_deg: float = 90.0) -> np.ndarray:
    """Rotate camera-frame vertices (..., V, 3) about the vertical (camera y) axis through
    ``pivot`` (3,) by ``angle_deg``; 90 degrees shows the person's left side."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    return (vertices - pivot) @ rot.T + pivot


def vertex_spread(vertices: ArrayLike) -> np.ndarray:
    r"""Per-vertex spread of S mesh hypotheses: the root-mean-square distance to the mean,
    :math:`\sigma_v = \sqrt{\tfrac1S\sum_s \|v_{sv} - \bar v_v\|^2}` (metres).

    Args:
        vertices: (S, V, 3) hypotheses (e.g. root-relative, without the mode).
    Returns:
        (V,) spread in the units of ``vertices``.

    Example:
        >>> import numpy as np
        >>> v = np.zeros((2, 3, 3)); v[0, 1, 0] = 1.0; v[1, 1, 0] = -1.0
        >>> vertex_spread(v).tolist()
        [0.0, 1.0, 0.0]
    """
    v = _numpy(vertices).astype(np.float64)
    if v.ndim != 3 or v.shape[-1] != 3 or v.shape[0] < 2:
        raise ValueError(f"vertices must have shape (S >= 2, V, 3), got {tuple(v.shape)}")
    return np.sqrt(((v - v.mean(axis=0)) ** 2).sum(-1).mean(axis=0))


def uncertainty_colors(vertices: ArrayLike, vmax: float | None = None,
                       cmap: str = "turbo") -> tuple[np.ndarray, np.ndarray, float]:
    """Per-vertex uncertainty colouring of S mesh hypotheses.

    The spread of :func:`vertex_spread` is divided by ``vmax`` (default: its maximum), clipped
    to [0, 1] and mapped through the matplotlib colormap ``cmap``.

    Args:
        vertices: (S, V, 3) hypotheses, metres.
        vmax: spread (m) mapped to the top of the colormap.
        cmap: matplotlib colormap name.
    Returns:
        ``(colors (V, 3) float RGB in [0, 1], spread (V,) m, vmax)``.

    Example:
        >>> import numpy as np
        >>> v = np.zeros((2, 3, 3)); v[0, 1, 0] = 0.1; v[1, 1, 0] = -0.1
        >>> colors, spread, top = uncertainty_colors(v, cmap="gray")
        >>> colors[:, 0].round(3).tolist(), round(top, 3)
        ([0.0, 1.0, 0.0], 0.1)
    """
    spread = vertex_spread(vertices)
    top = float(spread.max()) if vmax is None else float(vmax)
    scaled = np.clip(spread / top, 0.0, 1.0) if top > 0 else np.zeros_like(spread)
    return colormaps[cmap](scaled)[:, :3], spread, top


def render_hypotheses(vertices: ArrayLike, faces: ArrayLike, focal: ArrayLike,
                      principal: ArrayLike, image_hw: Sequence[int],
                      background: np.ndarray | None = None,
                      views: Sequence[str] = ("front", "side"),
                      colors: Sequence | None = None) -> np.ndarray:
    """Render S mesh hypotheses in front and side view as one image grid.

    Row ``i`` shows ``views[i]``; column ``s`` hypothesis ``s``. ``front`` is the camera's own
    view (over ``background`` when given); ``side`` turns every mesh by 90 degrees about the
    vertical axis through the centroid of hypothesis 0, on a white background.

    Args:
        vertices: (S, V, 3) camera-frame vertices in metres (translation included).
        faces: (F, 3) triangle vertex indices.
        focal: (2,) focal lengths of the camera (px).
        principal: (2,) principal point (px).
        image_hw: (h, w) of each panel in pixels.
        background: optional (h, w, 3) uint8 image behind the front view.
        views: any sequence of ``"front"`` / ``"side"``.
        colors: per hypothesis a colour: an RGB triple in [0, 1] or a (V, 3) per-vertex array
            (default :data:`HYPOTHESIS_COLORS`, cycled).
    Returns:
        (len(views) * h, S * w, 3) uint8 image.
    """
    from humr.viz.render import render_mesh

    verts = _numpy(vertices).astype(np.float64)
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (S, V, 3), got {tuple(verts.shape)}")
    if not np.isfinite(verts).all():
        raise ValueError("vertices contain NaN or inf")
    unknown = set(views) - {"front", "side"}
    if unknown:
        raise ValueError(f"unknown views {sorted(unknown)}; known: 'front', 'side'")
    fcs = _numpy(faces).astype(np.int64)
    h, w = int(image_hw[0]), int(image_hw[1])
    colors = list(colors) if colors is not None else [
        HYPOTHESIS_COLORS[s % len(HYPOTHESIS_COLORS)] for s in range(verts.shape[0])]
    pivot = verts[0].mean(axis=0)
    white = np.full((h, w, 3), 255, np.uint8)
    rows = []
    for view in views:
        panels = []
        for s in range(verts.shape[0]):
            v = verts[s] if view == "front" else side_view(verts[s], pivot)
            bg = background if (view == "front" and background is not None) else white
            panels.append(render_mesh(v, fcs, _numpy(focal), _numpy(principal), (h, w),
                                      color=colors[s], background=bg)["rgb"])
        rows.append(np.concatenate(panels, axis=1))
    return np.concatenate(rows, axis=0)
