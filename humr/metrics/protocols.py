"""Evaluation protocols of the 3D accuracy metrics: which joints, and where the root is.

Both follow the official ``validation_step`` (``train/core/humr_trainer.py``): prediction and
ground truth are centred on their own root before MPJPE and PVE, then the evaluated joints
are selected.

* ``3dpw``: the 17 H36M joints of the H36M joint regressor applied to the mesh (the caller
  applies the regressor); root = H36M joint 0 (pelvis); evaluated: the 14 LSP joints
  (``H36M_TO_LSP14``).
* ``emdb``: the 24 SMPL joints; root = mean of SMPL joints 1 (left hip) and 2 (right hip);
  evaluated: all 24.

Example:
    >>> import torch
    >>> from humr.metrics.protocols import get_protocol
    >>> p = get_protocol("emdb")
    >>> p.num_joints, p.root_indices
    (24, (1, 2))
    >>> joints = torch.zeros(2, 24, 3); joints[:, 1, 0] = 1.0; joints[:, 2, 0] = 3.0
    >>> p.root(joints)[0].tolist()
    [[2.0, 0.0, 0.0]]
    >>> get_protocol("3dpw").root_indices, get_protocol("3dpw").select(torch.zeros(17, 3)).shape
    ((0,), torch.Size([14, 3]))
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from humr.core.skeleton import H36M_TO_LSP14

__all__ = ["PROTOCOLS", "EvalProtocol", "get_protocol"]


@dataclass(frozen=True)
class EvalProtocol:
    """Joint set and root definition of one evaluation protocol.

    Attributes:
        name: protocol name.
        num_joints: K, the number of joints the caller must give.
        root_indices: joints whose mean is the root (pelvis).
        eval_indices: joints the errors are computed on (None: all K).
        joint_set: human-readable description of the joints expected.
    """

    name: str
    num_joints: int
    root_indices: tuple[int, ...]
    eval_indices: tuple[int, ...] | None
    joint_set: str

    def check_num_joints(self, num_joints: int, key: str) -> None:
        """Raise a ValueError naming ``key`` when ``num_joints`` is not this protocol's K."""
        if num_joints != self.num_joints:
            raise ValueError(
                f"{key} has K = {num_joints} joints but protocol '{self.name}' expects "
                f"K = {self.num_joints} ({self.joint_set})"
            )

    def root(self, joints: Tensor) -> Tensor:
        """Root of ``joints`` (..., K, 3) as (..., 1, 3): the mean of the root joints."""
        self.check_num_joints(joints.shape[-2], "joints")
        return joints[..., list(self.root_indices), :].mean(dim=-2, keepdim=True)

    def select(self, joints: Tensor) -> Tensor:
        """The evaluated joints (..., K', 3) of ``joints`` (..., K, 3)."""
        return joints if self.eval_indices is None else joints[..., list(self.eval_indices), :]


PROTOCOLS: dict[str, EvalProtocol] = {
    "3dpw": EvalProtocol("3dpw", 17, (0,), H36M_TO_LSP14,
                         "H36M-17 joints from the H36M regressor; LSP-14 evaluated"),
    "emdb": EvalProtocol("emdb", 24, (1, 2), None, "SMPL-24 joints"),
}


def get_protocol(protocol: str | EvalProtocol) -> EvalProtocol:
    """The protocol called ``protocol`` (an :class:`EvalProtocol` is returned unchanged)."""
    if isinstance(protocol, EvalProtocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise KeyError(f"unknown protocol '{protocol}'; known protocols: {', '.join(PROTOCOLS)}") from None
