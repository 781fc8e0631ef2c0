"""Hardware flush-to-zero of subnormal floats (``torch.set_flush_denormal``), scoped.

x86 CPUs compute with subnormal numbers (``0 < |x| < torch.finfo(float32).tiny``) many times
slower than with normal ones. The flag that flushes them to zero belongs to a thread, and a
thread started while it is set inherits it, so it must be set before torch starts its
intra-op threads (the first parallel operation of the process) to cover them all
(:mod:`humr.engine.denormals` has the measurements and the training-side fix).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["flush_to_zero", "hardware_flush_on"]


def hardware_flush_on() -> bool:
    """Whether the calling thread flushes subnormal results to zero."""
    return float(torch.tensor(1e-39, dtype=torch.float64).to(torch.float32)) == 0.0


@contextmanager
def flush_to_zero() -> Iterator[bool]:
    """Flush-to-zero inside the block, in the calling thread and in the intra-op threads
    started inside it; the previous state is restored on exit. Yields whether the CPU
    supports it (x86 with SSE3, ARM).

    Example:
        >>> import torch
        >>> with flush_to_zero() as supported:
        ...     inside = float(torch.tensor([1e-39]) * 1.0)
        >>> (inside == 0.0) == supported, hardware_flush_on()
        (True, False)
    """
    was_on = hardware_flush_on()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)
