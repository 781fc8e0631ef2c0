"""Safe file input / output: atomic durable writes and loaders that execute no code.

Writes (:func:`atomic_write`) go to a temporary file in the destination's folder, are flushed
and ``fsync``-ed, then renamed over the destination with ``os.replace`` (atomic on POSIX) and
the folder is ``fsync``-ed: a crash or a full disk leaves either the old file or the new one,
never a truncated file under the destination's name.

Loads never unpickle arbitrary objects: checkpoints go through ``torch.load(weights_only=True)``
(:func:`load_checkpoint_file`), ``.npz`` / ``.npy`` through ``numpy.load(allow_pickle=False)``,
and pickles that a format requires (SMPL body models) through
:func:`humr.body.safe_pickle.load_body_pickle`, an unpickler that only rebuilds numpy arrays,
chumpy arrays (as numpy), scipy sparse matrices and plain containers.
Every error names the file and what was expected.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write_bytes(p, b"hello"); p.read_bytes()
    b'hello'
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["CheckpointError", "atomic_savefig", "atomic_write", "atomic_write_bytes",
           "atomic_write_image", "atomic_write_text", "load_checkpoint_file", "sha256_file"]

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint file is not a readable humr / Lightning checkpoint (the message names it)."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any], mode: int = 0o644) -> None:
    """Write ``path`` atomically and durably: ``write(f)`` fills a binary temporary file in the
    same folder, which is fsync-ed and renamed over ``path``. On any error (disk full,
    interruption) the temporary file is removed and the previous ``path`` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """:func:`atomic_write` of a byte string."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig: Any, path: PathLike, **kwargs: Any) -> Path:
    """``fig.savefig(path, **kwargs)`` of a matplotlib figure through :func:`atomic_write`, in
    the format of the path's suffix (or ``format=``); returns the path."""
    path = Path(path)
    fmt = kwargs.pop("format", None) or path.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(f"{path}: no suffix to tell the figure's format (.png, .pdf, .svg); "
                         "add one or pass format=")
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, **kwargs))
    return path


def atomic_write_image(path: PathLike, image: Any) -> Path:
    """An image array (H, W) or (H, W, 3) BGR uint8, as OpenCV writes it, encoded in the format of
    the path's suffix and written through :func:`atomic_write`; returns the path."""
    import cv2

    path = Path(path)
    suffix = path.suffix or ".png"
    problem = (f"{path}: OpenCV cannot encode this image ({getattr(image, 'shape', None)}, "
               f"{getattr(image, 'dtype', type(image).__name__)}) as {suffix}")
    try:
        ok, data = cv2.imencode(suffix, image)
    except cv2.error as err:
        raise ValueError(f"{problem} ({err})") from err
    if not ok:
        raise ValueError(problem)
    atomic_write_bytes(path, data.tobytes())
    return path


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_checkpoint_file(path: PathLike, map_location: Any = "cpu") -> dict:
    """A checkpoint dict read with ``torch.load(weights_only=True)`` (tensors, numbers,
    strings and containers only: a crafted file cannot run code).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        CheckpointError: the file is not a torch checkpoint, holds objects other than plain
            data, or is not a dict with a ``state_dict`` (message names the file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} is not a file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a checkpoint (expected the zip archive torch.save "
                              "writes, as humr train does); the file is damaged or of another kind")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if "global" in ln.lower()]
        detail = f" ({lines[0]})" if lines else ""
        raise CheckpointError(f"{path}: refused to load: the checkpoint holds objects other than "
                              f"tensors and plain data{detail}; humr never unpickles them") from err
    except Exception as err:  # torch raises RuntimeError / EOFError / zip errors on garbage
        raise CheckpointError(f"{path}: not a readable checkpoint written by humr train "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a humr checkpoint (expected a dict with a "
                              "'state_dict'; written by humr train)")
    return ckpt
