"""Environment of a child Python process that imports this checkout's ``humr``."""
from __future__ import annotations

import os


def python_env(*first) -> dict:
    """``os.environ`` with ``first`` (paths) put before the inherited ``PYTHONPATH``, which
    stays: packages installed on it (a ``--target`` folder) remain importable in the child."""
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, first), *inherited])}
