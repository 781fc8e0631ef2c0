"""Figures of hypothesis sets (matplotlib Agg / OpenCV; no OpenGL).

``plot_hypotheses_2d`` (projections of one joint's hypotheses over the crop, paper Fig. 1),
``render_hypotheses`` (meshes in front / side view via :func:`humr.viz.render.render_mesh`),
``uncertainty_colors`` (per-vertex spread mapped to a colormap); :mod:`humr.viz.figures`
writes the demo's PNG files.
"""
from humr.viz.hypotheses import denormalize_image, plot_hypotheses_2d
from humr.viz.mesh import (
           crop_camera,
           render_hypotheses,
           uncertainty_colors,
           vertex_spread,
)

__all__ = ["crop_camera", "denormalize_image", "plot_hypotheses_2d", "render_hypotheses",
           "uncertainty_colors", "vertex_spread"]
