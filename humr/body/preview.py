"""Preview image of a body model in a few poses, front and side (matplotlib polygon fill).

Faces are drawn back to front (painter's algorithm) with Lambert shading; hand-written because
no installed renderer is required (pytorch3d is optional, see DESIGN.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from humr.io import atomic_savefig

__all__ = ["PREVIEW_POSES", "draw_mesh", "render_preview"]

# name -> {SMPL joint: axis-angle (rad)}; y up, the body faces +z, left = +x
PREVIEW_POSES = {
    "rest": {},
    "walk": {16: (0, 0, -1.2), 17: (0, 0, 1.2), 18: (0, -0.5, 0), 19: (0, 0.5, 0),
             1: (-0.5, 0, 0), 4: (0.3, 0, 0), 2: (0.35, 0, 0), 5: (0.6, 0, 0)},
    "sit-reach": {1: (-1.4, 0, 0.1), 2: (-1.4, 0, -0.1), 4: (1.5, 0, 0), 5: (1.5, 0, 0),
                  16: (0, 1.0, -0.3), 17: (0, 0, 1.3), 19: (0, 1.4, 0), 3: (0.3, 0, 0), 15: (0.3, 0.4, 0)},
}


def draw_mesh(ax, vertices: np.ndarray, faces: np.ndarray, view: str = "front") -> None:
    """Draw ``vertices`` (V, 3) / ``faces`` (F, 3) on a matplotlib axis.

    ``view``: "front" (seen from +z: image x = body x) or "side" (seen from the body's left,
    +x: image x = -z).
    """
    from matplotlib.collections import PolyCollection

    h, d, flip = (0, 2, 1.0) if view == "front" else (2, 0, -1.0)
    tri = vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    light = np.zeros(3)
    light[d], light[1] = 0.8, 0.6
    shade = 0.25 + 0.75 * np.clip(normal @ light, 0.0, 1.0)
    order = np.argsort(tri[:, :, d].mean(1))   # far to near
    polys = tri[order][:, :, [h, 1]] * np.array([flip, 1.0])
    colors = shade[order, None] * np.array([0.85, 0.65, 0.5])[None]
    ax.add_collection(PolyCollection(polys, facecolors=colors, edgecolors=colors, linewidths=0.3))
    xs = flip * vertices[:, h]
    ax.set_xlim(xs.min() - 0.1, xs.max() + 0.1)
    ax.set_ylim(vertices[:, 1].min() - 0.1, vertices[:, 1].max() + 0.1)
    ax.set_aspect("equal")
    ax.axis("off")


def render_preview(body_dir, out_png) -> Path:
    """Render the SMPL body in ``body_dir`` in :data:`PREVIEW_POSES`, front and side, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import smplx
    import torch

    model = smplx.create(str(body_dir), model_type="smpl")
    fig, axes = plt.subplots(2, len(PREVIEW_POSES), figsize=(4 * len(PREVIEW_POSES), 9))
    for col, (name, pose) in enumerate(PREVIEW_POSES.items()):
        full = torch.zeros(24, 3)
        for j, aa in pose.items():
            full[j] = torch.tensor(aa)
        with torch.no_grad():
            verts = model(global_orient=full[None, 0], body_pose=full[None, 1:].reshape(1, -1)).vertices[0]
        for row, view in enumerate(("front", "side")):
            draw_mesh(axes[row, col], verts.numpy(), model.faces, view)
            axes[row, col].set_title(f"{name} ({view})")
    fig.tight_layout()
    atomic_savefig(fig, out_png, dpi=80)
    plt.close(fig)
    return Path(out_png)
