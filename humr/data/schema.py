"""The stored sample schema (docs/conventions.md) and its validation.

:data:`STORED_SCHEMA` lists every key as stored on disk with a leading example dimension
``N``: its symbolic shape and dtype kind. Letters are sizes bound across the keys of one file
(``R`` crop side, ``n`` heatmap samples per joint, ``P`` posterior samples, ``D = J * 3`` pose
size, ``nb`` betas, ``F`` feature size). :func:`validate_arrays` checks a mapping of arrays
(one shard, or an official annotation file mapped onto the schema) and raises
:class:`DataFormatError` naming the key, the file and the expected shape.

Example:
    >>> import numpy as np
    >>> validate_arrays({"center": np.zeros((2, 3), np.float32)}, "x.npz", required=("center",))
    Traceback (most recent call last):
    ...
    humr.data.schema.DataFormatError: x.npz: key 'center' has shape (2, 3), expected (N, 2) with N=2
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["OPTIONAL_KEYS", "REQUIRED_KEYS", "STORED_SCHEMA", "DataFormatError", "validate_arrays"]


class DataFormatError(ValueError):
    """A stored dataset file does not follow the format: missing key, wrong shape or dtype,
    NaN / infinite values. The message names the file, the key and the expected shape."""


# key -> (symbolic shape, dtype kind: "float" | "uint8" | "bool" | "int", allow +inf)
STORED_SCHEMA: dict[str, tuple[tuple, str, bool]] = {
    "img": (("N", "R", "R", 3), "uint8", False),
    "center": (("N", 2), "float", False),
    "scale": (("N", 1), "float", False),
    "orig_shape": (("N", 2), "float", False),
    "focal": (("N", 2), "float", False),
    "pose": (("N", "D"), "float", False),
    "betas": (("N", "nb"), "float", False),
    "kp2d_gt": (("N", 24, 3), "float", False),
    "coco_gt": (("N", 17, 3), "float", False),
    "cond_kp": (("N", 17, 3), "float", False),
    "hm_samples": (("N", 17, "n", 2), "float", False),
    "hm_values": (("N", 17, "n"), "float", False),
    "hm_max_conf": (("N", 17), "float", False),
    # +inf: distance to an empty mask (such examples carry mask_valid = False)
    "hm_samples_mask_dist": (("N", 17, "n"), "float", True),
    "mask": (("N", "R", "R"), "uint8", False),
    "mask_valid": (("N",), "bool", False),
    "posterior": (("N", "P", "D"), "float", False),
    "posterior_count": (("N",), "int", False),
    "coco_visible": (("N", 17), "bool", False),
    "features": (("N", "F"), "float", False),
    "gender": (("N",), "int", False),       # 0 neutral, 1 male, 2 female
}
REQUIRED_KEYS = ("img", "center", "scale", "orig_shape", "pose", "betas", "kp2d_gt", "coco_gt",
                 "cond_kp", "hm_samples", "hm_values", "hm_max_conf", "hm_samples_mask_dist",
                 "mask", "mask_valid")
OPTIONAL_KEYS = tuple(k for k in STORED_SCHEMA if k not in REQUIRED_KEYS)

_KINDS = {"float": "f", "uint8": "u", "bool": "b", "int": "iu"}


def _fmt(spec: tuple) -> str:
    return "(" + ", ".join(str(s) for s in spec) + ")"


def validate_arrays(arrays: Mapping[str, np.ndarray], source: str,
                    required: Iterable[str] = REQUIRED_KEYS,
                    sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """Check shapes, dtypes and finiteness of the schema keys present in ``arrays``.

    Args:
        arrays: key -> array with the leading example dimension N.
        source: file name used in error messages.
        required: keys that must be present.
        sizes: known symbol sizes (e.g. ``{"R": 128, "N": 32}``) the arrays must agree with.
    Returns:
        The bound symbol sizes (N, R, n, D, ...).
    Raises:
        DataFormatError: naming ``source``, the key and the expected shape.
    """
    bound = dict(sizes or {})
    for key in required:
        if key not in arrays:
            spec = STORED_SCHEMA[key][0]
            raise DataFormatError(f"{source}: key '{key}' is missing; expected an array of "
                                  f"shape {_fmt(spec)} ({STORED_SCHEMA[key][1]})")
    for key, (spec, kind, allow_inf) in STORED_SCHEMA.items():
        if key not in arrays:
            continue
        arr = np.asarray(arrays[key])
        ok = arr.ndim == len(spec)
        for dim, sym in zip(arr.shape, spec) if ok else ():
            if isinstance(sym, int):
                ok &= dim == sym
            elif bound.setdefault(sym, dim) != dim:
                ok = False
        if not ok:
            have = ", ".join(f"{s}={bound[s]}" for s in spec if isinstance(s, str) and s in bound)
            raise DataFormatError(f"{source}: key '{key}' has shape {tuple(arr.shape)}, expected "
                                  f"{_fmt(spec)}" + (f" with {have}" if have else ""))
        if arr.dtype.kind not in _KINDS[kind] or (kind == "uint8" and arr.dtype != np.uint8):
            raise DataFormatError(f"{source}: key '{key}' has dtype {arr.dtype}, expected {kind} "
                                  f"of shape {_fmt(spec)}")
        if kind == "float":
            bad = np.isnan(arr) | (np.isneginf(arr) if allow_inf else ~np.isfinite(arr))
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise DataFormatError(f"{source}: key '{key}' holds NaN or infinite values (first "
                                      f"at index {where}); expected finite values of shape "
                                      f"{_fmt(spec)}")
    return bound
