"""The demo's figures for one example and its hypotheses (written as PNG files).

* :func:`save_hypotheses_figure`: projections of the hypotheses of an occluded joint over the
  crop with the ground truth (paper Fig. 1).
* :func:`save_mesh_figure`: the mode and a few random hypotheses as meshes, front and side view.
* :func:`save_uncertainty_figure`: the mode mesh coloured by the per-vertex spread of all
  hypotheses (front and side view, colour bar in mm).

``example`` is one example of the sample schema (docs/conventions.md, tensors without the batch
dimension); ``hyps`` holds one example's model output for S hypotheses (hypothesis 0 = mode) as
numpy arrays or tensors: ``keypoints2d`` (S, 17, 2), ``vertices`` (S, V, 3) body frame,
``joints3d`` (S, J, 3), ``cam_t`` (S, 3).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize

from humr.core.crop import inside_crop
from humr.core.skeleton import ARTICULATED_COCO
from humr.core.visibility import invisible
from humr.geometry import estimate_focal, full_to_crop
from humr.io import atomic_savefig
from humr.viz.hypotheses import (
    COCO_NAMES,
    _numpy,
    denormalize_image,
    plot_hypotheses_2d,
)
from humr.viz.mesh import crop_camera, render_hypotheses, uncertainty_colors

__all__ = [
    "choose_occluded_joint",
    "crop_ground_truth",
    "save_hypotheses_figure",
    "save_mesh_figure",
    "save_uncertainty_figure",
    "select_example",
]

UNCERTAINTY_CMAP = "turbo"
RENDER_UPSCALE = 2    # mesh panels are rendered at twice the crop resolution


def crop_ground_truth(example: Mapping) -> np.ndarray:
    """(17, 2) ground-truth COCO joints of ``example`` in crop coordinates [-1, 1]."""
    box = 200.0 * example["scale"].reshape(())
    return _numpy(full_to_crop(example["coco_gt"][:, :2], example["center"], box))


def choose_occluded_joint(example: Mapping, keypoints2d) -> int:
    """The articulated COCO joint to show: among the invisible ones (detector confidence < 0.5)
    whose ground truth lies in the crop, the one whose hypotheses spread most in 2D; if none is
    invisible, the articulated joint of lowest confidence."""
    conf = example["cond_kp"][:, 2]
    hidden = _numpy(invisible(torch.as_tensor(conf)))
    gt = torch.as_tensor(crop_ground_truth(example))
    inside = _numpy(inside_crop(gt))
    conf = _numpy(conf)
    kp = _numpy(keypoints2d)[1:]
    spread = np.linalg.norm(kp - kp.mean(axis=0), axis=-1).mean(axis=0)
    candidates = [k for k in ARTICULATED_COCO if hidden[k] and inside[k]]
    if candidates:
        return int(max(candidates, key=lambda k: spread[k]))
    return int(min(ARTICULATED_COCO, key=lambda k: conf[k]))


def _crop_view(example: Mapping, upscale: int = RENDER_UPSCALE
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (uR, uR, 3) uint8, focal (2,), principal (2,)) of the crop camera, the crop
    enlarged ``upscale`` times so that meshes render with more detail than the R x R input."""
    image = denormalize_image(example["img"])
    size = image.shape[0] * upscale
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    hw = example["orig_shape"].reshape(2)
    focal = example["focal"] if "focal" in example else estimate_focal(hw).reshape(1).repeat(2)
    box = float(200.0 * example["scale"].reshape(()))
    f, c = crop_camera(focal, example["center"], box, hw, size)
    return image, f, c


def _camera_vertices(hyps: Mapping, index) -> np.ndarray:
    """Camera-frame vertices (n, V, 3) of hypotheses ``index``: body frame + translation."""
    return _numpy(hyps["vertices"])[index] + _numpy(hyps["cam_t"])[index][:, None]


def save_hypotheses_figure(example: Mapping, hyps: Mapping, path: str | Path,
                           joint: int | None = None) -> Path:
    """Write the Fig. 1-style plot of one joint's hypotheses (default: the most ambiguous
    occluded articulated joint); returns the path."""
    joint = choose_occluded_joint(example, hyps["keypoints2d"]) if joint is None else joint
    conf = float(example["cond_kp"][joint, 2])
    s = _numpy(hyps["keypoints2d"]).shape[0]
    plot_hypotheses_2d(denormalize_image(example["img"]), hyps["keypoints2d"], joint,
                       gt=crop_ground_truth(example), mask=example["mask"],
                       title=f"{COCO_NAMES[joint]}: {s} hypotheses (mode + {s - 1})\n"
                             f"detector confidence {conf:.2f}", out=path)
    return Path(path)


def save_mesh_figure(example: Mapping, hyps: Mapping, faces, path: str | Path,
                     num_random: int = 3) -> Path:
    """Write the mode and ``num_random`` random hypotheses, front view over the crop and side
    view; returns the path."""
    image, f, c = _crop_view(example)
    n = 1 + num_random
    grid = render_hypotheses(_camera_vertices(hyps, slice(0, n)), faces, f, c, image.shape[:2],
                             background=image)
    fig, ax = plt.subplots(figsize=(2.2 * n, 4.6), dpi=110)
    ax.imshow(grid)
    R = image.shape[0]
    ax.set_xticks([R * (i + 0.5) for i in range(n)],
                  ["mode"] + [f"hypothesis {i}" for i in range(1, n)])
    ax.set_yticks([R * 0.5, R * 1.5], ["front", "side"])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def save_uncertainty_figure(example: Mapping, hyps: Mapping, faces, path: str | Path) -> Path:
    """Write the mode mesh coloured by the per-vertex spread of the random hypotheses
    (root-relative, so that only the articulation's uncertainty shows); returns the path."""
    image, f, c = _crop_view(example)
    verts = _numpy(hyps["vertices"])
    root = _numpy(hyps["joints3d"])[:, :1]
    colors, _, vmax = uncertainty_colors(verts[1:] - root[1:], cmap=UNCERTAINTY_CMAP)
    grid = render_hypotheses(_camera_vertices(hyps, slice(0, 1)), faces, f, c, image.shape[:2],
                             views=("front", "side"), colors=[colors])
    R = image.shape[0]
    panels = [grid[:R], grid[R:]]
    fig, axes = plt.subplots(1, 2, figsize=(5.4, 3.0), dpi=110)
    for ax, panel, name in zip(axes, panels, ("front", "side")):
        ax.imshow(panel)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    mappable = plt.cm.ScalarMappable(Normalize(0.0, vmax * 1000.0), colormaps[UNCERTAINTY_CMAP])
    fig.colorbar(mappable, ax=axes, fraction=0.046, label="per-vertex spread (mm)")
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def select_example(batch: Mapping, i: int) -> dict:
    """Example ``i`` of a collated batch (tensors indexed on the batch dimension)."""
    return {k: v[i] for k, v in batch.items() if torch.is_tensor(v)}
