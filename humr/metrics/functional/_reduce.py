"""Turn accumulated sums and counts into means (shared by the classes and functional twins)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor


def masked_sum(values: Tensor, keep: Tensor) -> Tensor:
    """Sum of ``values`` where the bool ``keep`` (broadcastable) is True, as a 0-d tensor."""
    return torch.where(keep, values, torch.zeros_like(values)).sum()


def count(keep: Tensor, like: Tensor) -> Tensor:
    """Number of True entries of ``keep`` in the dtype and on the device of ``like``."""
    return keep.sum().to(like.dtype)


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
        total = stats[count_key]
        if name in optional and not bool(total > 0):
            continue
        out[name] = stats[sum_key(name)] / total
    return out
