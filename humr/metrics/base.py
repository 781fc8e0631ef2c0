"""Base class of the humr metrics: running sums and counts reduced with ``sum`` under DDP."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from humr.metrics.functional._reduce import ratios, sum_key


class SumStateMetric(Metric):
    """A Metric whose states are scalar sums; ``compute`` divides each sum by its count.

    Subclasses set ``counts`` (output name -> count state; each output ``name`` has a sum
    state ``name_sum``), optionally ``optional`` (outputs left out while their count is 0),
    and call :meth:`_accumulate` with the dict of batch sums from their functional module
    (a state missing from the dict is left unchanged).
    States start as float32 zeros and are promoted to the dtype of the inputs (float64 in,
    float64 out); every state uses ``dist_reduce_fx="sum"``, so DDP synchronisation is exact.
    """

    full_state_update = False
    is_differentiable = False
    counts: ClassVar[Mapping[str, str]] = {}
    optional: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state_keys = sorted({sum_key(n) for n in self.counts} | set(self.counts.values()))
        for key in self._state_keys:
            self.add_state(key, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def _accumulate(self, stats: Mapping[str, Tensor]) -> None:
        unknown = set(stats) - set(self._state_keys)
        if unknown:
            raise RuntimeError(f"{type(self).__name__}: batch statistics {sorted(unknown)} have "
                               f"no state; states are {self._state_keys}")
        for key, value in stats.items():
            setattr(self, key, getattr(self, key) + value)

    def compute(self) -> dict[str, Tensor]:
        """Means of the accumulated sums (see the class docstring for the output names)."""
        return ratios({k: getattr(self, k) for k in self._state_keys}, self.counts, self.optional)
