"""2D figures of hypothesis sets: projections of many hypotheses over the crop image (Fig. 1).

Everything is drawn with matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from humr.core.skeleton import COCO17_NAMES, IMAGENET_MEAN, IMAGENET_STD
from humr.io import atomic_savefig

__all__ = [
    "COCO_NAMES",
    "COCO_SKELETON",
    "crop_to_pixels",
    "denormalize_image",
    "plot_hypotheses_2d",
]

COCO_NAMES = COCO17_NAMES
# Limbs of the COCO-17 skeleton as (joint, joint) index pairs.
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
                 (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4))

ArrayLike = np.ndarray | torch.Tensor


def _numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def denormalize_image(img: ArrayLike) -> np.ndarray:
    """ImageNet-normalised crop (3, R, R) float -> displayable RGB (R, R, 3) uint8.

    Example:
        >>> import numpy as np
        >>> mean = np.array(IMAGENET_MEAN)[:, None, None]; std = np.array(IMAGENET_STD)[:, None, None]
        >>> denormalize_image((np.ones((3, 2, 2)) - mean) / std)[0, 0].tolist()
        [255, 255, 255]
    """
    arr = _numpy(img).astype(np.float64)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"img must have shape (3, R, R), got {tuple(arr.shape)}")
    mean = np.asarray(IMAGENET_MEAN)[:, None, None]
    std = np.asarray(IMAGENET_STD)[:, None, None]
    rgb = np.clip((arr * std + mean) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb.transpose(1, 2, 0)


def crop_to_pixels(points: ArrayLike, size: int) -> np.ndarray:
    """Crop coordinates [-1, 1] (..., 2) -> continuous pixel coordinates of a size x size crop.

    Pixel ``i`` covers ``[i, i + 1)``, so ``u = -1`` maps to 0 and ``u = 1`` to ``size``
    (docs/conventions.md). matplotlib's ``imshow`` places pixel centres at integers, hence
    callers plotting over an image subtract 0.5.
    """
    return (_numpy(points).astype(np.float64) + 1.0) * 0.5 * size


def plot_hypotheses_2d(image: np.ndarray, hypotheses: ArrayLike, joint: int,
                       gt: ArrayLike | None = None, mode_pose: ArrayLike | None = None,
                       mask: ArrayLike | None = None, title: str | None = None,
                       joint_names: Sequence[str] = COCO_NAMES,
                       out: str | Path | None = None) -> plt.Figure:
    """Projections of the hypotheses of one joint over the crop image, with the ground truth.

    Like the paper's Fig. 1: every random hypothesis of ``joint`` is a dot, the ground truth a
    star, and the mode's full skeleton (hypothesis 0) is drawn for reference.

    Args:
        image: (R, R, 3) uint8 RGB crop (see :func:`denormalize_image`).
        hypotheses: (S, K, 2) projected joints in crop coordinates [-1, 1]; hypothesis 0 is
            the mode (z = 0), 1..S-1 are random samples.
        joint: index k of the joint whose hypotheses are scattered.
        gt: optional (K, 2) ground-truth joints in crop coordinates.
        mode_pose: optional (K, 2) pose drawn as the skeleton (default: hypothesis 0);
            the skeleton is drawn only when K = 17 (COCO).
        mask: optional (R, R) person-plausible region, drawn as a translucent overlay.
        title: figure title (default: the joint's name).
        joint_names: names of the K joints.
        out: PNG path to write (the figure is closed after writing).
    Returns:
        The matplotlib figure.
    """
    hyp = _numpy(hypotheses)
    if hyp.ndim != 3 or hyp.shape[-1] != 2:
        raise ValueError(f"hypotheses must have shape (S, K, 2), got {tuple(hyp.shape)}")
    if not 0 <= joint < hyp.shape[1]:
        raise ValueError(f"joint {joint} out of range for K = {hyp.shape[1]} joints")
    size = image.shape[0]
    px = crop_to_pixels(hyp, size) - 0.5
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(image)
    if mask is not None:
        m = _numpy(mask).astype(bool)
        overlay = np.zeros((*m.shape, 4))
        overlay[m] = (0.2, 0.6, 1.0, 0.25)
        ax.imshow(overlay, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
    skeleton = px[0] if mode_pose is None else crop_to_pixels(mode_pose, size) - 0.5
    if skeleton.shape[0] == len(COCO_NAMES):
        for a, b in COCO_SKELETON:
            ax.plot(skeleton[[a, b], 0], skeleton[[a, b], 1], color="white", lw=1.5, alpha=0.8)
    ax.scatter(px[1:, joint, 0], px[1:, joint, 1], s=9, c="tab:orange", alpha=0.7,
               edgecolors="none", label=f"{hyp.shape[0] - 1} hypotheses")
    ax.scatter(px[0, joint, 0], px[0, joint, 1], s=60, c="tab:blue", marker="x", label="mode")
    if gt is not None:
        g = crop_to_pixels(gt, size) - 0.5
        ax.scatter(g[joint, 0], g[joint, 1], s=160, c="lime", marker="*", edgecolors="black",
                   linewidths=0.6, label="ground truth")
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_axis_off()
    name = joint_names[joint] if joint < len(joint_names) else f"joint {joint}"
    ax.set_title(title or name, fontsize=10)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    fig.tight_layout()
    if out is not None:
        atomic_savefig(fig, out)
        plt.close(fig)
    return fig
