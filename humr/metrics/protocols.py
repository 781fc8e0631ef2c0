"""Evaluation protocols of the 3D accuracy metrics: which joints, and where the root is.

Both protocols centre prediction and ground truth on their own pelvis before MPJPE and PVE:

* ``3dpw``: the 14 LSP joints obtained with the H36M joint regressor from the mesh (the caller
  applies the regressor); pelvis = mean of LSP joints 2 (right hip) and 3 (left hip).
* ``emdb``: the 24 SMPL joints; pelvis = mean of SMPL joints 1 (left hip) and 2 (right hip).

Example:
    >>> import torch
    >>> from humr.metrics.protocols import get_protocol
    >>> p = get_protocol("emdb")
    >>> p.num_joints, p.hip_indices
    (24, (1, 2))
    >>> joints = torch.zeros(2, 24, 3); joints[:, 1, 0] = 1.0; joints[:, 2, 0] = 3.0
    >>> p.root(joints)[0].tolist()
    [[2.0, 0.0, 0.0]]
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["PROTOCOLS", "EvalProtocol", "get_protocol"]


@dataclass(frozen=True)
class EvalProtocol:
    """Joint set and root definition of one evaluation protocol.

    Attributes:
        name: protocol name.
        num_joints: K, the number of joints the caller must give.
        hip_indices: the two hip joints whose mean is the pelvis (root).
        joint_set: human-readable description of the joints expected.
    """

    name: str
    num_joints: int
    hip_indices: tuple[int, int]
    joint_set: str

    def check_num_joints(self, num_joints: int, key: str) -> None:
        """Raise a ValueError naming ``key`` when ``num_joints`` is not this protocol's K."""
        if num_joints != self.num_joints:
            raise ValueError(
                f"{key} has K = {num_joints} joints but protocol '{self.name}' expects "
                f"K = {self.num_joints} ({self.joint_set})"
            )

    def root(self, joints: Tensor) -> Tensor:
        """Pelvis of ``joints`` (..., K, 3) as (..., 1, 3): the mean of the two hips."""
        self.check_num_joints(joints.shape[-2], "joints")
        return joints[..., list(self.hip_indices), :].mean(dim=-2, keepdim=True)


PROTOCOLS: dict[str, EvalProtocol] = {
    "3dpw": EvalProtocol("3dpw", 14, (2, 3), "LSP-14 joints from the H36M regressor"),
    "emdb": EvalProtocol("emdb", 24, (1, 2), "SMPL-24 joints"),
}


def get_protocol(protocol: str | EvalProtocol) -> EvalProtocol:
    """The protocol called ``protocol`` (an :class:`EvalProtocol` is returned unchanged)."""
    if isinstance(protocol, EvalProtocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise KeyError(f"unknown protocol '{protocol}'; known protocols: {', '.join(PROTOCOLS)}") from None
