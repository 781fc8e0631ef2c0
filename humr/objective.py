"""The training objective: the enabled losses and their weights (appendix A), outside the model.

:class:`Objective` owns the loss modules (``humr.LOSSES``) and their weights and computes the
ground-truth log-density the ``nll`` loss reads, so that the model only maps a batch to
hypotheses. The Lightning module (:class:`humr.engine.module.HumrModule`) calls it once per
training step.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from humr.registry import LOSSES

__all__ = ["GROUND_TRUTH", "OBJECTIVE_OPTIONS", "Objective"]

#: Options of a loss's configuration entry that the objective applies itself (not passed to
#: the loss's constructor): ``nll.gt_noise_std``, the standard deviation of the Gaussian noise
#: added to the ground-truth 6D pose before its log-density is taken in training (the
#: official release's 0.005; 0 disables it).
OBJECTIVE_OPTIONS: dict[str, dict[str, Any]] = {"nll": {"gt_noise_std": 0.005}}


class Objective(nn.Module):
    r"""Weighted sum of losses :math:`L = \sum_k w_k L_k(\mathrm{batch}, \mathrm{out})`.

    Args:
        losses: ``name -> loss module`` with ``forward(batch, out) -> scalar`` (order kept).
        weights: ``name -> weight`` for every loss.
        gt_noise_std: noise of the ground-truth 6D pose for its log-density in training mode
            (``nll``'s ``gt_noise_std``); no noise in eval mode.

    ``forward(model, batch, out) -> (total, {name: unweighted value})``. Ground-truth
    quantities a loss declares in its ``needs`` (the ``nll`` loss: ``log_prob_gt``) and ``out``
    lacks are computed here, once per step for all losses:

    - ``log_prob_gt`` (B,): :meth:`gt_log_prob`, ``batch['pose']`` (B, 3J) axis-angle mapped
      to the model's 6D (``model.matrix_to_pose``), by ``model.log_prob`` with the context of
      ``out['context']`` (no second pass through the conditioners);
    - ``joints3d_gt`` (B, J, 3) metres, body frame: ``model.ground_truth(batch)['joints']``
      (``batch['pose']`` and ``batch['betas']`` posed by the model's body), without gradient.

    Example:
        >>> from humr.losses import BetasLoss
        >>> obj = Objective({"betas": BetasLoss()}, {"betas": 0.5})
        >>> out = {"betas": torch.ones(2, 3, 4)}
        >>> total, parts = obj(None, {"betas": torch.zeros(2, 4)}, out)   # betas: sum over 4
        >>> float(total), float(parts["betas"])
        (2.0, 4.0)
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float],
                 gt_noise_std: float = 0.0) -> None:
        super().__init__()
        if not losses:
            raise ValueError("the objective needs at least one loss (config 'losses' is empty)")
        missing = [n for n in losses if n not in weights]
        if missing:
            raise KeyError(f"no weight for loss(es) {missing}; set losses.<name>.weight")
        if gt_noise_std < 0:
            raise ValueError(f"gt_noise_std must be >= 0, got {gt_noise_std}")
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = {n: float(weights[n]) for n in losses}
        self.gt_noise_std = float(gt_noise_std)

    @classmethod
    def from_config(cls, losses: Mapping[str, Any]) -> Objective:
        """Build from the ``losses`` section of :class:`humr.config.Config` (``name -> entry``
        with ``weight``, the objective's options and the loss's arguments)."""
        from humr.config import entry_kwargs

        modules, weights, noise = {}, {}, 0.0
        for name, entry in losses.items():
            kwargs = entry_kwargs("loss", entry)
            weights[name] = float(_get(entry, "weight"))
            options = OBJECTIVE_OPTIONS.get(name, {})
            if "gt_noise_std" in options:
                noise = float(kwargs["gt_noise_std"])
            modules[name] = LOSSES.build(name, **{k: v for k, v in kwargs.items() if k not in options})
        return cls(modules, weights, gt_noise_std=noise)

    def needs(self) -> set[str]:
        """The ground-truth keys of :data:`GROUND_TRUTH` the losses read (declared by ``needs``
        on a loss class; the ``nll`` loss needs ``log_prob_gt``)."""
        keys = set()
        for name, loss in self.losses.items():
            keys |= set(getattr(loss, "needs", ())) | ({"log_prob_gt"} if name == "nll" else set())
        return keys & set(GROUND_TRUTH)

    def gt_log_prob(self, model: nn.Module, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]
                    ) -> Tensor:
        """log p(theta_gt + noise | c) (B,) of ``batch['pose']`` (B, 3J) under ``model``."""
        from humr.geometry import axis_angle_to_matrix

        J = model.num_joints
        pose = batch["pose"].reshape(-1, J, 3)
        x = model.matrix_to_pose(axis_angle_to_matrix(pose.to(model.dtype)))   # (B, 6J), the model's 6D
        if self.training and self.gt_noise_std > 0:
            x = x + self.gt_noise_std * torch.randn_like(x)
        return model.log_prob(batch, x, context=out.get("context"))

    def forward(self, model: nn.Module | None, batch: Mapping[str, Tensor],
                out: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        missing = sorted(self.needs() - set(out))
        if missing and model is None:
            raise ValueError(f"the losses need the model to compute out{missing} "
                             f"(or pass them in out)")
        if missing:
            out = {**out, **{key: GROUND_TRUTH[key](self, model, batch, out) for key in missing}}
        parts = {name: loss(batch, out) for name, loss in self.losses.items()}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts

    def gt_joints(self, model: nn.Module, batch: Mapping[str, Tensor], out: Mapping[str, Tensor]
                  ) -> Tensor:
        """Ground-truth body joints (B, J, 3), metres, body frame, without gradient."""
        with torch.no_grad():
            return model.ground_truth(batch)["joints"]

    def extra_repr(self) -> str:
        return f"weights={self.weights}, gt_noise_std={self.gt_noise_std}"


#: ``out`` key -> the :class:`Objective` method that computes it for the losses that need it
GROUND_TRUTH = {"log_prob_gt": Objective.gt_log_prob, "joints3d_gt": Objective.gt_joints}


def _get(entry: Any, key: str) -> Any:
    return entry[key] if isinstance(entry, Mapping) else getattr(entry, key)
