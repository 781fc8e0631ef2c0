"""Turn accumulated sums and counts into means (shared by the classes and functional twins)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import Tensor


def sum_key(name: str) -> str:
    """Name of the running-sum state behind the output ``name``."""
    return f"{name}_sum"


def ratios(stats: Mapping[str, Tensor], counts: Mapping[str, str],
           optional: Iterable[str] = ()) -> dict[str, Tensor]:
    """``{name: stats[name + "_sum"] / stats[counts[name]]}`` for every output name.

    A group with count 0 gives NaN (0 / 0), except names in ``optional``, which are left out
    (e.g. PVE when no vertices were given).
    """
    optional = set(optional)
    out = {}
    for name, count_key in counts.items():
        count = stats[count_key]
        if name in optional and not bool(count > 0):
            continue
        out[name] = stats[sum_key(name)] / count
    return out
