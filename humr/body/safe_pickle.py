"""Chumpy-free, restricted reading of the official SMPL / SMPL-X pickles.

The official SMPL 1.0 / 1.1 files are Python 2 pickles (protocol 2, read with
``encoding="latin1"``) whose arrays are partly chumpy objects (``chumpy.ch.Ch``: the object's
state is its attribute dict, the array under ``"x"``), partly numpy arrays
(``numpy.core.multiarray._reconstruct``), the joint regressor a ``scipy.sparse.csc.csc_matrix``
(a module path that newer SciPy deprecates) and a few ``__builtin__.set`` objects. chumpy no
longer installs on Python >= 3.11, so :class:`RestrictedUnpickler` maps these class paths to
inert stand-ins and builds plain numpy / scipy objects from their states afterwards. Every other
global is refused before anything is imported or called: the error names the file and the
class. A hand-written unpickler is needed because neither smplx nor numpy offers a safe reader
for these files (smplx calls ``pickle.load``, which would import chumpy).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from humr.io import atomic_write_bytes

__all__ = ["NUMPY_ARRAYS", "RestrictedUnpickler", "UnsafePickleError", "load_body_pickle",
           "write_body_file"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle references a class or function outside the whitelist of body-model files."""


class _ChState:
    """Inert stand-in for chumpy array classes: keeps the pickled attribute dict."""

    def __setstate__(self, state):
        self.state = state


class _SparseState:
    """Inert stand-in for scipy sparse matrices: keeps the pickled attribute dict."""

    fmt = "csc"

    def __setstate__(self, state):
        self.state = state


class _CsrState(_SparseState):
    fmt = "csr"


def _numpy_global(module: str, name: str):
    from numpy._core import multiarray

    return getattr(multiarray, name)


def _codecs_encode(text, encoding="utf-8"):
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1")
    import codecs

    return codecs.encode(text, encoding)


# (module, name) -> object returned by find_class; anything else is refused
_CHUMPY = {("chumpy.ch", "Ch"), ("chumpy", "Ch")}
_SAFE = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("__builtin__", "set"): set, ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    ("__builtin__", "object"): object, ("builtins", "object"): object,
    ("_codecs", "encode"): _codecs_encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    for _name in ("_reconstruct", "scalar"):
        _SAFE[(_mod, _name)] = (_mod, _name)
for _mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
    _SAFE[(_mod, "csc_matrix")] = _SparseState
for _mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
    _SAFE[(_mod, "csr_matrix")] = _CsrState


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to the whitelisted classes (protocol 0/1 pickles)."""
    if base is object:
        return object.__new__(cls)
    obj = base.__new__(cls, state)
    base.__init__(obj, state)
    return obj


for _mod in ("copy_reg", "copyreg"):
    _SAFE[(_mod, "_reconstructor")] = _reconstructor


#: the globals a pickled numpy array needs (an ``.npz`` object array, numpy 1.x / 2.x paths)
NUMPY_ARRAYS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                          ("numpy.core.multiarray", "_reconstruct"),
                          ("numpy._core.multiarray", "_reconstruct")})


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only resolves the classes of body-model files
    (or the narrower set ``allowed``, e.g. :data:`NUMPY_ARRAYS`).

    Args:
        file: binary file object.
        source: the file's path, named in errors.
        allowed: (module, name) pairs to accept, a subset of the body-model whitelist
            (default: the whole whitelist).
    """

    def __init__(self, file, source: str | Path = "<bytes>",
                 allowed: frozenset[tuple[str, str]] | None = None):
        super().__init__(file, encoding="latin1")
        self.source = str(source)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if self.allowed is not None and (module, name) not in self.allowed:
            raise UnsafePickleError(f"{self.source}: refusing to load {module}.{name}; only "
                                    f"{sorted(f'{m}.{n}' for m, n in self.allowed)} are read here")
        if (module, name) in _CHUMPY:
            return _ChState
        if (module, name) in _SAFE:
            value = _SAFE[(module, name)]
            return _numpy_global(*value) if isinstance(value, tuple) else value
        raise UnsafePickleError(
            f"{self.source}: refusing to load {module}.{name}; a body-model file may only hold "
            f"numpy arrays, chumpy.ch.Ch arrays, scipy sparse matrices, sets and plain values")


def _plain(obj, source: str):
    """Replace the stand-ins in a loaded structure by numpy arrays / scipy sparse matrices."""
    if isinstance(obj, _ChState):
        if not isinstance(obj.state, dict) or "x" not in obj.state:
            raise UnsafePickleError(f"{source}: a chumpy.ch.Ch object without its array 'x'")
        return np.asarray(_plain(obj.state["x"], source), dtype=np.float64)
    if isinstance(obj, _SparseState):
        import scipy.sparse as sp

        st = obj.state
        try:
            arrays = tuple(np.asarray(st[k]) for k in ("data", "indices", "indptr"))
            shape = tuple(int(n) for n in st.get("_shape", st.get("shape")))
        except (KeyError, TypeError) as err:
            raise UnsafePickleError(f"{source}: a scipy {obj.fmt}_matrix with an unknown state "
                                    f"layout (keys {sorted(st) if isinstance(st, dict) else st})") from err
        return (sp.csc_matrix if obj.fmt == "csc" else sp.csr_matrix)(arrays, shape=shape)
    if isinstance(obj, dict):
        return {k: _plain(v, source) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v, source) for v in obj)
    return obj


def load_body_pickle(path: str | Path) -> dict:
    """Read a (chumpy or plain) body-model pickle into a dict of numpy arrays / plain values.

    chumpy arrays become float64 numpy arrays, scipy sparse matrices stay scipy sparse (csc /
    csr from ``scipy.sparse``). Raises :class:`UnsafePickleError` (naming the file and class)
    for anything outside the whitelist, before it is imported or executed.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = RestrictedUnpickler(f, path).load()
    return _plain(data, str(path))


def _dense_arrays(data: dict) -> dict:
    """Numeric numpy arrays only: sparse -> dense, strings kept, anything else dropped."""
    out = {}
    for key, value in data.items():
        if hasattr(value, "toarray"):
            value = value.toarray()
        if isinstance(value, str | int | float) or (isinstance(value, np.ndarray) and value.dtype != object):
            out[key] = np.asarray(value)
    return out


def write_body_file(data: dict, dst: str | Path) -> Path:
    """Write a chumpy-free body-model file atomically (temp file in the same folder + replace).

    ``.npz``: numeric arrays and strings (readable with ``np.load`` without ``allow_pickle``);
    ``.pkl``: a protocol-4 pickle of the same dict of numpy arrays (what ``smplx`` reads).
    Values that are neither (e.g. nested dicts of SMPL-X's ``joint2num``) are left out.
    """
    dst = Path(dst)
    if dst.suffix not in (".npz", ".pkl"):
        raise ValueError(f"output {dst} must end in .npz or .pkl")
    arrays = _dense_arrays(data)
    buf = io.BytesIO()
    if dst.suffix == ".npz":
        np.savez(buf, **arrays)
    else:
        pickle.dump(arrays, buf, protocol=4)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, buf.getvalue())
    return dst


