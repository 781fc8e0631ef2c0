"""On-disk dataset format of humr (written by ``humr synth``, read by :class:`HumrDataset`).

Layout::

    DIR/meta.json                 format version, generator parameters, per-split counts,
                                  shard files and stored keys
    DIR/train/shard_00000.npz     examples [0, S) of the split, S = meta["shard_size"]
    DIR/train/shard_00001.npz     examples [S, 2 S) ...
    DIR/test/shard_00000.npz

Each shard is an ``.npz`` (zip, deflate) holding the schema keys of docs/conventions.md stacked
over its examples (:data:`humr.data.schema.STORED_SCHEMA`): ``img`` as uint8 (N, R, R, 3) RGB
(normalised with the ImageNet mean / std to float (3, R, R) on load), ``mask`` uint8 (N, R, R),
``mask_valid`` bool (N,), the rest float32 (``scale`` (N, 1)). Synthetic-only keys:
``posterior`` (N, P, J*3) with ``posterior_count`` (N,) distinct samples (the rest repeat
them cyclically) and ``coco_visible`` (N, 17) ground-truth visibility. Zip entries carry a
fixed timestamp, so the same content gives byte-identical files.

``meta.json``::

    {"format": "humr-shards", "version": 1, "complete": true, "seed": 0, "crop_res": 128,
     "shard_size": 32, "keys": [...], "generator": {...parameters...},
     "splits": {"train": {"count": 100, "shards": ["train/shard_00000.npz", ...]}, ...}}

``complete`` is false while a generator is still writing; readers refuse such a folder.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from humr.data.schema import DataFormatError
from humr.io import atomic_write

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "META_NAME", "check_shard_values", "read_meta",
           "read_shard", "shard_name", "shard_path", "write_meta", "write_shard"]

FORMAT_NAME = "humr-shards"
FORMAT_VERSION = 1
META_NAME = "meta.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def shard_name(split: str, index: int) -> str:
    """Path of shard ``index`` of ``split`` relative to the dataset folder."""
    return f"{split}/shard_{index:05d}.npz"


def shard_path(root: str | Path, name: str) -> Path:
    """``root / name`` for a shard listed in ``meta.json``; raises :class:`DataFormatError`
    when ``name`` is absolute or leads outside the dataset folder (``../x.npz``, a symlink out)."""
    root = Path(root)
    path = root / str(name)
    base = root.resolve()
    if Path(str(name)).is_absolute() or not path.resolve().is_relative_to(base):
        raise DataFormatError(f"{root / META_NAME}: shard path {name!r} leads outside the "
                              f"dataset folder {root}; expected a relative path like "
                              f"'{shard_name('train', 0)}'")
    return path


def check_shard_values(arrays: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Value checks the shapes cannot express: ``scale`` > 0 (a crop side of 0 divides by
    zero downstream). Raises :class:`DataFormatError` naming the file, key and examples."""
    if "scale" in arrays:
        bad = np.flatnonzero(~(np.asarray(arrays["scale"]).reshape(len(arrays["scale"]), -1) > 0).all(1))
        if bad.size:
            raise DataFormatError(f"{path}: key 'scale' is <= 0 at examples {bad[:5].tolist()}; "
                                  "expected the crop side / 200 > 0")


def write_shard(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an ``.npz`` readable by ``numpy.load``, atomically and reproducibly
    (sorted entries, fixed timestamps; ``numpy.savez`` stamps the current time)."""
    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(arrays):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as entry:
                    np.lib.format.write_array(entry, np.asarray(arrays[key], order="C"),
                                              allow_pickle=False)
    atomic_write(Path(path), write)


def read_shard(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a shard (no pickles). Raises :class:`DataFormatError` naming the file
    when it is missing or not a readable npz."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: shard file is missing (listed in {META_NAME})")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise DataFormatError(f"{path}: not a readable npz shard ({err})") from err


def write_meta(root: str | Path, meta: Mapping) -> None:
    """Write ``root/meta.json`` atomically (sorted keys: reproducible)."""
    text = json.dumps(dict(meta), indent=1, sort_keys=True) + "\n"
    atomic_write(Path(root) / META_NAME, lambda f: f.write(text.encode()))


def read_meta(root: str | Path, require_complete: bool = True) -> dict:
    """``root/meta.json`` checked for format, version and completeness."""
    path = Path(root) / META_NAME
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; not a humr dataset folder (write one with "
                              "`humr synth --out DIR`)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON ({err})") from err
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise DataFormatError(f"{path}: format {meta.get('format')!r} version "
                              f"{meta.get('version')!r}, expected {FORMAT_NAME!r} version "
                              f"{FORMAT_VERSION}")
    if require_complete and not meta.get("complete", False):
        raise DataFormatError(f"{path}: the dataset is incomplete (generation interrupted?); "
                              "run the generator again to finish it")
    return meta
