"""Safe readers of the release's files: annotation ``.npz`` and gzip heatmap-sample files.

The official code opens its annotation files with ``np.load(..., allow_pickle=True)``: string
keys (``imgname``, ``gender``) may be stored as object arrays, which numpy writes as a pickle.
humr never unpickles arbitrary data: :func:`read_npz` reads plain arrays with
``allow_pickle=False`` and an object array with humr's restricted unpickler
(:class:`humr.body.safe_pickle.RestrictedUnpickler` limited to
:data:`~humr.body.safe_pickle.NUMPY_ARRAYS`), which only rebuilds numpy arrays (``ndarray``,
``dtype``, ``_reconstruct``) and refuses every other class, then requires every element to be
a string (returned as a numpy unicode array).
"""
from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from humr.body.safe_pickle import NUMPY_ARRAYS, RestrictedUnpickler
from humr.data.schema import DataFormatError

__all__ = ["read_heatmap_samples", "read_npz"]

def _object_member(zf: zipfile.ZipFile, key: str, path: Path) -> np.ndarray:
    """An object array of strings stored as ``key.npy`` in the zip, as a unicode array."""
    with zf.open(f"{key}.npy") as f:
        raw = io.BytesIO(f.read())
    from numpy.lib import format as npy

    version = npy.read_magic(raw)
    read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    if version not in read_header:
        raise DataFormatError(f"{path}: key '{key}' has .npy format version {version}")
    shape, _, dtype = read_header[version](raw)
    if dtype != np.dtype(object):
        raise DataFormatError(f"{path}: key '{key}' is not an object array")
    try:
        array = RestrictedUnpickler(raw, f"{path} [{key}]", allowed=NUMPY_ARRAYS).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as err:
        raise DataFormatError(f"{path}: key '{key}' is an object array humr does not read "
                              f"({err}); expected strings") from err
    array = np.asarray(array, dtype=object).reshape(shape)
    flat = [v.decode() if isinstance(v, bytes) else v for v in array.ravel()]
    if not all(isinstance(v, str) for v in flat):
        raise DataFormatError(f"{path}: key '{key}' holds non-string objects; expected strings")
    return np.asarray(flat, dtype=str).reshape(shape)


def read_npz(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (only ``keys`` that it holds, when given: the release's
    files carry large keys humr does not use); object arrays of strings come back as unicode
    arrays.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: not a readable npz, or an object array of non-strings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        out = {}
        with np.load(path, allow_pickle=False) as f, zipfile.ZipFile(path) as zf:
            wanted = f.files if keys is None else [k for k in f.files if k in set(keys)]
            for key in wanted:
                try:
                    out[key] = f[key]
                except ValueError as err:       # object array: allow_pickle=False refuses it
                    if "allow_pickle" not in str(err):
                        raise
                    out[key] = _object_member(zf, key, path)
        return out
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DataFormatError(f"{path}: not a readable .npz annotation file ({err})") from err


def read_heatmap_samples(path: str | Path) -> np.ndarray:
    """(S, 17, 4) float32 of one gzip-compressed ``.npy`` heatmap-sample file: full-image
    ``x, y`` px, heatmap value, distance of the sample to the person mask.

    Raises:
        FileNotFoundError / DataFormatError naming the file and the expected shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"heatmap sample file {path} is missing")
    try:
        with gzip.open(path, "rb") as f:
            data = np.load(f, allow_pickle=False)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataFormatError(f"{path}: not a readable gzip-compressed .npy heatmap sample "
                              f"file ({err})") from err
    if data.ndim != 3 or data.shape[1:] != (17, 4) or data.dtype.kind not in "fiu":
        raise DataFormatError(f"{path}: heatmap samples have shape {data.shape} and dtype "
                              f"{data.dtype}, expected numbers of shape (S, 17, 4) = "
                              "(samples, joints, [x, y, value, mask distance])")
    return data.astype(np.float32)
