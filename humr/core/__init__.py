"""Rules shared by losses, metrics, heatmaps, data and viz (imports torch and numpy only).

* :mod:`humr.core.crop`: full image <-> crop coordinates, box = 200 * scale, inside tests.
* :mod:`humr.core.skeleton`: COCO-17 order, flips, articulated joints, ImageNet statistics.
* :mod:`humr.core.visibility`: the one visible / invisible / uncertain rule and MMD targets.
* :mod:`humr.core.checks`: input checks naming the key and the expected shape.
* :mod:`humr.core.masks`: person-mask lookups and distances (official pixel convention).
* :mod:`humr.core.numerics`: scoped hardware flush-to-zero of subnormal floats.

Every peer package (conditions, losses, metrics, data, viz) may import this package; it
imports none of them.
"""
from humr.core import checks, crop, masks, numerics, skeleton, visibility

__all__ = ["checks", "crop", "masks", "numerics", "skeleton", "visibility"]
