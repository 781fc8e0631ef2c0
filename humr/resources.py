"""Where humr finds its files: the configuration presets shipped inside the package
(``humr/configs``, also reachable as ``configs/`` in a source checkout) and the folders that
live beside the package in a source checkout (``benchmarks/``: speed benchmarks and the
ablation presets)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["benchmarks_dir", "preset_config"]

#: the folder of the shipped configuration presets (package data)
PRESETS_DIR = Path(__file__).resolve().parent / "configs"


def preset_config(name: str) -> Path:
    """The shipped configuration preset ``name`` (``"cpu"``, ``"demo"``, ``"paper"``), a YAML
    file for :meth:`humr.config.Config.load`.

    Raises:
        FileNotFoundError: no such preset; the message lists the shipped ones.
    """
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no configuration preset {name!r} in {PRESETS_DIR}; shipped: {known}")
    return path


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
