"""Preview grid of the synthetic benchmark (``humr synth --preview``).

One row per example (those with a hidden articulated joint first): the crop image with the
occluders, the plausibility mask, the heatmap of a hidden articulated joint (the one with the
highest heatmap maximum, i.e. the most visible density) and the projections of the posterior samples of that
joint (red) over the image with the ground truth (green).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch
from matplotlib import pyplot as plt

from humr.heatmaps import ARTICULATED_COCO
from humr.io import atomic_savefig

__all__ = ["write_preview"]


def _crop_px(points: np.ndarray, center: np.ndarray, box: float, res: int) -> np.ndarray:
    """Full-image px (..., 2) -> continuous crop px of the R x R crop."""
    return (points - center + box / 2) * res / box


def write_preview(path: str | Path, seed: int, config, split: str = "test", rows: int = 4,
                  search: int = 24) -> Path:
    """Generate up to ``search`` examples of ``split`` and draw ``rows`` of them to ``path``."""
    from humr.body import BodyModel
    from humr.data.synthetic import make_example

    body, prior = BodyModel(config.body_model, dtype=torch.float64), config.prior()
    examples = [make_example(i, split, seed, config, body, prior, extras=True) for i in range(search)]
    art = list(ARTICULATED_COCO)
    examples.sort(key=lambda e: not e["hidden"][art].any())
    fig, axes = plt.subplots(rows, 4, figsize=(10, 2.6 * rows), squeeze=False)
    for row, ex in zip(axes, examples[:rows]):
        res, center, box = ex["img"].shape[0], ex["center"], float(ex["scale"][0]) * 200
        hidden = [j for j in art if ex["hidden"][j]] or art
        k = hidden[int(np.argmax(ex["hm_max_conf"][hidden]))]
        post = _crop_px(ex["posterior_coco"][:, k], center, box, res)
        gt = _crop_px(ex["coco_gt"][k, :2], center, box, res)
        row[0].imshow(ex["img"])
        row[0].set_title(f"image ({int((~ex['coco_visible']).sum())} hidden)", fontsize=8)
        row[1].imshow(ex["mask"], cmap="gray", vmin=0, vmax=1)
        row[1].set_title("plausibility mask", fontsize=8)
        row[2].imshow(ex["heatmaps"][k], cmap="magma", vmin=0, vmax=1,
                      extent=(0, res, res, 0))
        row[2].set_title(f"heatmap joint {k} (max {ex['hm_max_conf'][k]:.2f})", fontsize=8)
        row[3].imshow(ex["img"])
        row[3].scatter(post[:, 0], post[:, 1], s=4, c="red", label="posterior")
        row[3].scatter([gt[0]], [gt[1]], s=20, c="lime", marker="x", label="GT")
        row[3].set_title(f"posterior of joint {k} ({int(ex['posterior_count'])} samples)", fontsize=8)
        for ax in row:
            ax.set_xlim(0, res)
            ax.set_ylim(res, 0)
            ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    atomic_savefig(fig, path, dpi=90)
    plt.close(fig)
    return path
