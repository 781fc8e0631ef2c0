"""Where humr finds the files that live beside the package in a source checkout
(``benchmarks/``: speed benchmarks and the ablation presets)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["benchmarks_dir"]


def benchmarks_dir(override: str | Path | None = None) -> Path:
    """The ``benchmarks/`` folder: ``override`` if given, else the one beside the ``humr``
    package of a source checkout (``pip install -e .``).

    Raises:
        FileNotFoundError: the folder does not exist (e.g. humr was installed from a wheel);
            the message says to pass the folder explicitly.
    """
    path = Path(override) if override is not None else Path(__file__).resolve().parents[1] / "benchmarks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"benchmarks folder {path} does not exist; it ships with the humr source checkout "
            "(git clone, then pip install -e .), or pass its location explicitly")
    return path
