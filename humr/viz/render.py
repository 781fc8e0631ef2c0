"""Triangle-mesh rasterizer on OpenCV: painter's algorithm with Lambert shading.

Hand-written because pytorch3d (the field's renderer) has no installable Linux distribution in
the package registry and no OpenGL context is assumed. Faces are projected with a pinhole
camera (OpenCV frame: x right, y down, z forward, metres), sorted far to near by mean depth and
filled with ``cv2.fillPoly`` into a face-index buffer, so that RGB, silhouette and depth all
come from the same visibility decision. Pixel ``i`` covers ``[i, i + 1)`` (docs/conventions.md),
so a point at continuous pixel coordinate ``u`` lands at pixel index ``floor(u)``. Face edges
are drawn inclusively (OpenCV's rule): a face covers up to half a pixel more than the exact
pixel-centre coverage (the 8 x 8 px square below fills 9 x 9 pixels), which also keeps the
many sub-pixel faces of a small body from leaving holes.

Example:
    >>> import numpy as np
    >>> verts = np.array([[-1., -1, 5], [1, -1, 5], [1, 1, 5], [-1, 1, 5]])
    >>> faces = np.array([[0, 2, 1], [0, 3, 2]])          # outward normal towards the camera
    >>> out = render_mesh(verts, faces, (20., 20.), (16., 16.), (32, 32))
    >>> int(out["silhouette"].sum()), out["rgb"][16, 16].tolist()
    (81, [178, 178, 178])
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["render_mesh"]

_SHIFT = 4                      # fixed-point fractional bits of cv2.fillPoly (1/16 px)


def _face_colors(color, faces: np.ndarray, num_verts: int) -> np.ndarray:
    """RGB triple in [0, 1] or per-vertex (V, 3) array -> per-face (F, 3) colours in [0, 1]."""
    col = np.asarray(color, dtype=np.float64)
    if col.shape == (3,):
        return np.broadcast_to(col, (len(faces), 3))
    if col.shape == (num_verts, 3):
        return col[faces].mean(axis=1)
    raise ValueError(f"color must be an RGB triple or a ({num_verts}, 3) per-vertex array, "
                     f"got shape {col.shape}")


def render_mesh(vertices: np.ndarray, faces: np.ndarray, focal: Sequence[float],
                principal: Sequence[float], image_hw: Sequence[int],
                color=(0.7, 0.7, 0.7), background: np.ndarray | None = None,
                ambient: float = 0.35, cull_backfaces: bool = True, znear: float = 1e-3) -> dict:
    """Render a triangle mesh seen by a pinhole camera placed at the origin.

    Shading is Lambertian with the light at the camera: ``c * (ambient + (1 - ambient) |cos a|)``
    with ``a`` the angle between the face normal and the viewing ray to the face centre.
    Faces with a vertex closer than ``znear`` are dropped. With ``cull_backfaces`` the faces whose
    normal (right-hand rule, outward for a positively oriented closed mesh) points away from
    the camera are skipped, which halves the work on closed meshes.

    Args:
        vertices: (V, 3) camera-frame vertices, metres.
        faces: (F, 3) vertex indices.
        focal: (fx, fy) in pixels.
        principal: (cx, cy) in continuous pixel coordinates.
        image_hw: (h, w) of the output.
        color: RGB triple in [0, 1] or a (V, 3) per-vertex array.
        background: optional (h, w, 3) uint8 image behind the mesh (default black).
        ambient: share of light that does not depend on the normal, in [0, 1].
        cull_backfaces: skip faces turned away from the camera.
        znear: near clipping depth, metres.
    Returns:
        ``rgb`` (h, w, 3) uint8, ``silhouette`` (h, w) bool, ``depth`` (h, w) float32 (mean
        depth of the visible face, metres; ``inf`` on the background).
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    h, w = int(image_hw[0]), int(image_hw[1])
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {f.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf")
    if background is not None and np.shape(background) != (h, w, 3):
        raise ValueError(f"background must have shape ({h}, {w}, 3), got {np.shape(background)}")
    rgb = np.zeros((h, w, 3), np.uint8) if background is None else np.array(background, np.uint8)
    face_rgb = _face_colors(color, f, len(v))

    tri = v[f]                                                      # (F, 3, 3)
    keep = (tri[..., 2] > znear).all(axis=1)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(axis=1)
    cos = np.einsum("fc,fc->f", normal, centre) / np.maximum(
        np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1), 1e-12)
    if cull_backfaces:
        keep &= cos < 0
    uv = np.stack([focal[0] * tri[..., 0] / tri[..., 2] + principal[0],
                   focal[1] * tri[..., 1] / tri[..., 2] + principal[1]], axis=-1)   # (F, 3, 2)
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    keep &= (hi[:, 0] >= 0) & (lo[:, 0] < w) & (hi[:, 1] >= 0) & (lo[:, 1] < h)
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(-centre[idx, 2], kind="stable")]          # far to near
    # fillPoly works on pixel-index coordinates (pixel centres at integers): shift by -0.5
    pts = np.round((uv[idx] - 0.5) * (1 << _SHIFT)).astype(np.int32)
    buffer = np.full((h, w), -1, np.int32)
    for k, poly in zip(idx.tolist(), pts):
        cv2.fillPoly(buffer, [poly], k, lineType=cv2.LINE_8, shift=_SHIFT)

    shade = ambient + (1.0 - ambient) * np.abs(cos)
    lit = np.clip(np.round(255.0 * face_rgb * shade[:, None]), 0, 255).astype(np.uint8)
    silhouette = buffer >= 0
    rgb[silhouette] = lit[buffer[silhouette]]
    depth = np.full((h, w), np.inf, np.float32)
    depth[silhouette] = centre[buffer[silhouette], 2]
    return {"rgb": rgb, "silhouette": silhouette, "depth": depth}
