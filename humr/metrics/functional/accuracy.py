"""MPJPE, PA-MPJPE and PVE of every hypothesis; mode and best-of-N summaries (mm)."""
from __future__ import annotations

import torch
from torch import Tensor

from humr.core.checks import check_inputs, require_at_least
from humr.geometry import procrustes_align
from humr.metrics.functional._reduce import ratios, sum_key
from humr.metrics.protocols import EvalProtocol, get_protocol

__all__ = ["hypothesis_accuracy", "hypothesis_errors", "mpjpe", "pa_mpjpe", "pve"]

M_TO_MM = 1000.0
ACCURACY_METRICS = ("mpjpe", "pa_mpjpe", "pve")
# output name -> count state: MPJPE / PA-MPJPE count every example, PVE only those with vertices.
ACCURACY_COUNTS = {f"{m}_{h}": ("pve_count" if m == "pve" else "count")
                   for m in ACCURACY_METRICS for h in ("mode", "min")}
ACCURACY_OPTIONAL = ("pve_mode", "pve_min")


def _mean_distance_mm(pred: Tensor, gt: Tensor) -> Tensor:
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean(dim=-1) * M_TO_MM


def mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    r"""Mean per-joint position error :math:`\frac{1}{K}\sum_k \|p_k - g_k\|` in mm.

    No alignment is applied (centre both on their root first, see :func:`hypothesis_errors`).

    Args:
        pred: (..., K, 3) joints in metres.
        gt: (..., K, 3) joints in metres (broadcastable to ``pred``).
    Returns:
        (...) error in millimetres.

    Example:
        >>> import torch
        >>> mpjpe(torch.zeros(2, 3), torch.tensor([[0.0, 0, 0.01], [0, 0.03, 0]])).item()
        20.0
    """
    return _mean_distance_mm(pred, gt)


def pve(pred: Tensor, gt: Tensor) -> Tensor:
    r"""Per-vertex error :math:`\frac{1}{V}\sum_v \|p_v - g_v\|` in mm (no alignment).

    Args:
        pred: (..., V, 3) vertices in metres.
        gt: (..., V, 3) vertices in metres (broadcastable to ``pred``).
    Returns:
        (...) error in millimetres.

    Example:
        >>> import torch
        >>> round(pve(torch.zeros(4, 3), torch.full((4, 3), 0.002)).item(), 4)   # 2 * sqrt(3)
        3.4641
    """
    return _mean_distance_mm(pred, gt)


def pa_mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    r"""MPJPE after similarity Procrustes alignment of ``pred`` to ``gt``, in mm.

    :math:`\min_{s, R, t} \frac{1}{K}\sum_k \|s R p_k + t - g_k\|` solved in the least-squares
    sense by :func:`humr.geometry.procrustes_align` (rotation without reflection).

    Args:
        pred: (..., K, 3) joints in metres.
        gt: (..., K, 3) joints in metres (same shape).
    Returns:
        (...) error in millimetres.

    Example:
        >>> import torch, roma
        >>> gt = torch.randn(14, 3, generator=torch.Generator().manual_seed(0))
        >>> pred = 2.0 * gt @ roma.random_rotmat().T + 0.5   # a similar copy
        >>> pa_mpjpe(pred, gt).item() < 1e-3
        True
    """
    return _mean_distance_mm(procrustes_align(pred, gt), gt)


def hypothesis_errors(pred_joints: Tensor, gt_joints: Tensor,
                      protocol: str | EvalProtocol = "3dpw",
                      pred_vertices: Tensor | None = None,
                      gt_vertices: Tensor | None = None) -> dict[str, Tensor]:
    """Errors of every hypothesis against the ground truth, in mm.

    Prediction and ground truth are each centred on their own root (the protocol's pelvis:
    H36M joint 0 for ``3dpw``, the mean of the SMPL hips for ``emdb``), then the protocol's
    evaluated joints are selected (LSP-14 for ``3dpw``); vertices are shifted by the same root
    as the joints (official ``validation_step``). PA-MPJPE aligns with a
    similarity transform, so the centring does not change it; it is NaN for a hypothesis whose
    joints all coincide (no scale can be estimated).

    Args:
        pred_joints: (B, S, K, 3) metres, K = the protocol's joint count.
        gt_joints: (B, K, 3) metres.
        protocol: ``"3dpw"`` (K = 17 H36M joints of the H36M regressor) or ``"emdb"``
            (K = 24 SMPL joints).
        pred_vertices: optional (B, S, V, 3) metres.
        gt_vertices: optional (B, V, 3) metres; given together with ``pred_vertices``.
    Returns:
        ``{"mpjpe": (B, S), "pa_mpjpe": (B, S)}`` plus ``"pve": (B, S)`` with vertices.

    Example:
        >>> import torch
        >>> gt = torch.randn(2, 17, 3)
        >>> err = hypothesis_errors(gt[:, None].repeat(1, 3, 1, 1) + 0.5, gt, "3dpw")
        >>> {k: tuple(v.shape) for k, v in err.items()}
        {'mpjpe': (2, 3), 'pa_mpjpe': (2, 3)}
        >>> bool(err["mpjpe"].abs().max() < 1e-3)   # a translated copy is perfect after centring
        True
    """
    proto = get_protocol(protocol)
    sizes = check_inputs({
        "pred_joints": (pred_joints, ("B", "S", "K", 3)),
        "gt_joints": (gt_joints, ("B", "K", 3)),
        "pred_vertices": (pred_vertices, ("B", "S", "V", 3)),
        "gt_vertices": (gt_vertices, ("B", "V", 3)),
    })
    require_at_least(sizes, "S", 1, "pred_joints", "at least the mode")
    proto.check_num_joints(sizes["K"], "pred_joints")
    if (pred_vertices is None) != (gt_vertices is None):
        raise ValueError("pred_vertices and gt_vertices must be given together (or both None)")
    pred_root = proto.root(pred_joints)                 # (B, S, 1, 3)
    gt_root = proto.root(gt_joints).unsqueeze(1)        # (B, 1, 1, 3)
    pred = proto.select(pred_joints - pred_root)
    gt = proto.select(gt_joints.unsqueeze(1) - gt_root)
    errors = {
        "mpjpe": mpjpe(pred, gt),
        "pa_mpjpe": pa_mpjpe(pred, gt.expand_as(pred)),
    }
    if pred_vertices is not None:
        errors["pve"] = pve(pred_vertices - pred_root, gt_vertices.unsqueeze(1) - gt_root)
    return errors


def _hypothesis_accuracy_update(pred_joints: Tensor, gt_joints: Tensor,
                                protocol: str | EvalProtocol = "3dpw",
                                pred_vertices: Tensor | None = None,
                                gt_vertices: Tensor | None = None) -> dict[str, Tensor]:
    """Sums over the batch of the mode's and the best hypothesis' errors, and the counts."""
    errors = hypothesis_errors(pred_joints, gt_joints, protocol, pred_vertices, gt_vertices)
    batch = torch.tensor(float(gt_joints.shape[0]), dtype=gt_joints.dtype, device=gt_joints.device)
    stats = {"count": batch, "pve_count": batch if "pve" in errors else torch.zeros_like(batch)}
    for name, err in errors.items():
        stats[sum_key(f"{name}_mode")] = err[:, 0].sum()
        stats[sum_key(f"{name}_min")] = err.min(dim=1).values.sum()
    return stats


def hypothesis_accuracy(pred_joints: Tensor, gt_joints: Tensor,
                        protocol: str | EvalProtocol = "3dpw",
                        pred_vertices: Tensor | None = None,
                        gt_vertices: Tensor | None = None) -> dict[str, Tensor]:
    """Functional :class:`humr.metrics.HypothesisAccuracy`: mean errors of one batch in mm.

    Returns ``{mpjpe_mode, pa_mpjpe_mode, mpjpe_min, pa_mpjpe_min}`` (+ ``pve_mode``,
    ``pve_min`` with vertices); ``*_mode`` uses hypothesis 0, ``*_min`` the best of all S
    hypotheses per example and per metric. Arguments as in :func:`hypothesis_errors`.

    Example:
        >>> import torch
        >>> gt = torch.zeros(1, 24, 3)
        >>> pred = torch.zeros(1, 2, 24, 3); pred[0, 0, 5:, 2] = 0.1   # mode off, sample exact
        >>> out = hypothesis_accuracy(pred, gt, "emdb")
        >>> round(out["mpjpe_mode"].item(), 3), out["mpjpe_min"].item()
        (79.167, 0.0)
    """
    stats = _hypothesis_accuracy_update(pred_joints, gt_joints, protocol, pred_vertices, gt_vertices)
    return ratios(stats, ACCURACY_COUNTS, ACCURACY_OPTIONAL)
