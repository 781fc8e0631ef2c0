"""The HUMR model (paper section 4.1) and :func:`build_model`.

conditioners -> context c (B, C) -> conditional flow over the 6D pose (D = 6 J) + a
deterministic head for betas and the weak-perspective camera -> body model -> joints projected
with the full-image perspective camera (CLIFF) into crop coordinates.

:class:`HUMR` takes its parts; :func:`build_model` builds them from a configuration. The losses
live in :class:`humr.objective.Objective` (``model.loss`` is a convenience that calls the
objective :func:`build_model` attached).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from humr.conditions import batch_focal
from humr.geometry import (
    axis_angle_to_matrix,
    full_to_crop,
    matrix_to_rot6d,
    perspective_project,
    rot6d_to_matrix,
    weak_cam_to_full_translation,
)

__all__ = ["BODY_OUTPUTS", "HUMR", "build_model"]

#: Optional body outputs ``forward(outputs=...)`` / :meth:`HUMR.body_geometry` can add:
#: ``vertices`` (the mesh; plus ``vertices_smpl`` for SMPL-X bodies), ``lsp14`` and ``h36m17``
#: (joints of the body's H36M regressor, when it has one).
BODY_OUTPUTS = ("vertices", "lsp14", "h36m17")


class HUMR(nn.Module):
    r"""Probabilistic human mesh recovery: a normalizing flow over the body pose given the image.

    .. math::
        c = [c_1, \dots, c_n], \quad \theta = \bar\theta + f^{-1}(z; c),\ z \sim \mathcal{N}(0, I),
        \quad (\beta, [s, t_x, t_y]) = \mathrm{head}(c)

    with the 6D pose :math:`\theta` and the fixed mean pose :math:`\bar\theta` (``mean_pose_6d``:
    body joints at rest, root rotated 180 degrees about x, i.e. upright facing the camera), so
    that :math:`\log p(\theta | c) = \log p_f(\theta - \bar\theta | c)`.

    Args:
        conditions: ``name -> conditioner`` (each ``forward(batch) -> (B, out_dim)`` with an
            ``out_dim``), concatenated in this order.
        flow: a conditional flow over D = ``body.pose_dim`` with context size sum(out_dim)
            (:class:`humr.flows.ConditionalFlow` contract).
        head: ``head(context (B, C)) -> (betas (B, nb), cam (B, 3))``.
        body: a :class:`humr.body.BodyModel` (or a module with its call signature).

    ``forward(batch, num_samples, outputs=(), z=None, generator=None)`` returns the outputs of
    ``docs/conventions.md`` (hypothesis 0 = the mode, z = 0) plus ``context`` (B, C).
    Floating batch tensors are cast to the model's dtype; the device follows the batch (move
    the model with ``.to``). The body model and the cameras run outside autocast.

    Example:
        >>> import torch
        >>> model = build_model(conditions=["bbox"], overrides=["model.flow.num_blocks=2",
        ...     "model.flow.hidden_features=32", "model.head.hidden=32"])
        >>> batch = {"center": torch.tensor([[320.0, 240.0]]), "scale": torch.tensor([[1.5]]),
        ...          "orig_shape": torch.tensor([[480.0, 640.0]])}
        >>> out = model.eval()(batch, num_samples=5)
        >>> out["keypoints2d"].shape, out["cam_t"].shape, out["log_prob"].shape
        (torch.Size([1, 5, 17, 2]), torch.Size([1, 5, 3]), torch.Size([1, 5]))
    """

    def __init__(self, conditions: Mapping[str, nn.Module], flow: nn.Module, head: nn.Module,
                 body: nn.Module) -> None:
        super().__init__()
        if not conditions:
            raise ValueError("HUMR needs at least one conditioner")
        self.conditions = nn.ModuleDict(dict(conditions))
        self.context_dim = sum(int(c.out_dim) for c in self.conditions.values())
        if getattr(flow, "context_dim", self.context_dim) != self.context_dim:
            raise ValueError(f"the flow takes a context of {flow.context_dim}, the conditioners "
                             f"give {self.context_dim}")
        self.flow, self.head, self.body = flow, head, body
        self.num_joints, self.pose_dim = body.num_joints, body.pose_dim
        if getattr(flow, "dim", self.pose_dim) != self.pose_dim:
            raise ValueError(f"the flow models D = {flow.dim}, the body has 6 J = {self.pose_dim}")
        # The flow models the offset from a mean pose (a shift: densities unchanged), so that
        # z = 0 of a fresh flow (output ~ 0, a degenerate 6D) is a valid upright body facing the
        # camera: body joints at rest, the root rotated 180 degrees about x (conventions.md).
        mean = torch.eye(3).expand(self.num_joints, 3, 3).clone()
        mean[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        self.register_buffer("mean_pose_6d", matrix_to_rot6d(mean).flatten(), persistent=False)
        object.__setattr__(self, "objective", None)     # set by build_model; not a submodule

    # ----------------------------------------------------------------- helpers
    @property
    def dtype(self) -> torch.dtype:
        """The model's floating dtype (follows ``.to(dtype)`` / ``.double()``)."""
        return self.mean_pose_6d.dtype

    def _cast(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Floating tensors of the batch in the model's dtype (others unchanged)."""
        return {k: v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in batch.items()}

    def context(self, batch: Mapping[str, Any]) -> Tensor:
        """The condition c (B, C): the conditioners' outputs concatenated in order."""
        return torch.cat([cond(batch) for cond in self.conditions.values()], dim=-1)

    # ----------------------------------------------------------------- pose parametrisation
    def matrix_to_pose(self, rotmat: Tensor) -> Tensor:
        """The flow's 6D coordinates (..., 6J) of rotation matrices (..., J, 3, 3): humr's 6D
        (first two columns, ``docs/conventions.md``). A model with another parametrisation
        overrides this and :meth:`pose_to_matrix` (the density, the ground-truth density of
        :class:`humr.objective.Objective` and the geometry all go through them)."""
        return matrix_to_rot6d(rotmat).flatten(-2)

    def pose_to_matrix(self, x: Tensor) -> Tensor:
        """Rotation matrices (..., J, 3, 3) of 6D poses (..., 6J) (Gram-Schmidt, need not be
        orthonormal); the inverse of :meth:`matrix_to_pose` on rotations."""
        return rot6d_to_matrix(x.unflatten(-1, (self.num_joints, 6)))

    def _to_6d(self, pose: Tensor) -> tuple[Tensor, bool]:
        """Poses (B, [S,] J, 3, 3) or (B, [S,] 6J) -> (B, S, 6J) and whether S was given."""
        J, D = self.num_joints, self.pose_dim
        if pose.dim() in (4, 5) and tuple(pose.shape[-3:]) == (J, 3, 3):
            pose, has_s = self.matrix_to_pose(pose), pose.dim() == 5
        elif pose.dim() in (2, 3) and pose.shape[-1] == D:
            has_s = pose.dim() == 3
        else:
            raise ValueError(f"pose must have shape (B, [S,] {J}, 3, 3) (rotation matrices) or "
                             f"(B, [S,] {D}) (6D), got {tuple(pose.shape)}")
        return (pose if has_s else pose[:, None]).to(self.dtype), has_s

    # ----------------------------------------------------------------- density
    def log_prob(self, batch: Mapping[str, Any], pose: Tensor, context: Tensor | None = None
                 ) -> Tensor:
        """log p(pose | c) of given poses: 6D (B, [S,] 6J) or rotation matrices
        (B, [S,] J, 3, 3) -> (B, S) or (B,).

        A rotation matrix is first mapped to its 6D form (:meth:`matrix_to_pose`: its first
        two columns). The flow's
        samples are unconstrained 6D vectors, so the matrix of a sample maps back to another 6D
        point (its orthonormalised columns) with another density: ``log_prob(batch,
        out['rotmat'])`` is not ``out['log_prob']``; ``log_prob(batch, out['pose_6d'])`` is.

        Args:
            context: the condition (B, C) when already computed (``out['context']``), else it
                is computed from ``batch``.
        """
        x, has_s = self._to_6d(pose)
        c = self.context(self._cast(batch)) if context is None else context
        logp = self.flow.log_prob(x - self.mean_pose_6d, c)
        return logp if has_s else logp[:, 0]

    # ----------------------------------------------------------------- sampling
    def forward(self, batch: Mapping[str, Any], num_samples: int, outputs: Iterable[str] = (),
                z: Tensor | None = None, generator: torch.Generator | None = None,
                return_vertices: bool = False) -> dict[str, Tensor]:
        """S hypotheses per image, hypothesis 0 being the mode.

        Args:
            batch: the sample schema of ``docs/conventions.md`` (stacked, leading B); the keys
                the conditioners need plus ``center`` (B, 2), ``scale`` (B, 1), ``orig_shape``
                (B, 2) and optionally ``focal`` (B, 2) (else ``sqrt(h^2 + w^2)``).
            num_samples: S >= 1.
            outputs: optional body outputs of :data:`BODY_OUTPUTS` (``vertices`` (B,S,V,3),
                ``lsp14`` (B,S,14,3), ``h36m17`` (B,S,17,3), metres, body frame).
            z: optional latent (B, S, D); default ``z[:, 0] = 0`` and N(0, I) for the others.
            generator: optional ``torch.Generator`` for the latent draws (else the global RNG).
            return_vertices: shorthand for ``"vertices"`` in ``outputs``.
        Returns:
            dict with ``pose_6d`` (B,S,6J), ``rotmat`` (B,S,J,3,3), ``betas`` (B,S,nb),
            ``cam`` (B,S,3), ``cam_t`` (B,S,3) metres, ``log_prob`` (B,S), ``joints3d``
            (B,S,J,3), ``keypoints3d`` (B,S,17,3) (metres, body frame), ``joints2d`` (B,S,J,2),
            ``keypoints2d`` (B,S,17,2) (crop coordinates), ``context`` (B,C) and the requested
            ``outputs``.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        wanted = _check_outputs(outputs, return_vertices)
        batch = self._cast(batch)
        c = self.context(batch)
        B, S, D = c.shape[0], num_samples, self.pose_dim
        if z is None:
            z = torch.randn(B, S, D, generator=generator, dtype=c.dtype, device=c.device)
            z[:, 0] = 0.0
        offset, log_prob, z = self.flow.sample(c, S, z=z)
        x = offset + self.mean_pose_6d
        betas, cam = (t.to(self.dtype) for t in self.head(c))     # model dtype under autocast too
        out = {"pose_6d": x, "log_prob": log_prob, "context": c,
               "betas": betas[:, None].expand(B, S, -1), "cam": cam[:, None].expand(B, S, 3)}
        with torch.autocast(c.device.type, enabled=False):
            out.update(self._geometry(batch, x.to(self.dtype), betas, cam, wanted))
        return out

    def body_geometry(self, rotmat: Tensor, betas: Tensor, outputs: Iterable[str] = (),
                      body: nn.Module | None = None) -> dict[str, Tensor]:
        """The body model's outputs for rotations (..., J, 3, 3) and betas (..., nb): ``joints``
        (..., J, 3), ``keypoints3d`` (..., 17, 3) and the requested :data:`BODY_OUTPUTS`
        (metres, body frame), computed without autocast, in float32 for half inputs.
        ``body`` replaces the model's own body (e.g. a gendered ground-truth body)."""
        body = self.body if body is None else body
        wanted = _check_outputs(outputs)
        dtype = torch.float32 if rotmat.dtype in (torch.float16, torch.bfloat16) else rotmat.dtype
        with torch.autocast(rotmat.device.type, enabled=False):
            res = body(rotmat.to(dtype), betas.to(dtype), return_vertices="vertices" in wanted,
                            h36m=bool({"lsp14", "h36m17"} & wanted))
        out = {"joints": res["joints"], "keypoints3d": res["coco17"]}
        for key in wanted | ({"vertices_smpl"} if "vertices" in wanted else set()):
            if key in res:
                out[key] = res[key]
        return out

    def ground_truth(self, batch: Mapping[str, Tensor], outputs: Iterable[str] = (),
                     body: nn.Module | None = None) -> dict[str, Tensor]:
        """:meth:`body_geometry` of the ground truth ``batch['pose']`` (B, >= 3J) axis-angle and
        ``batch['betas']`` (B, nb'), posed by ``body`` (default: the model's body) with its own J
        joints and nb betas (e.g. an SMPL ground truth of an SMPL-X model): the first J joints,
        betas cut or zero-padded to nb."""
        body = self.body if body is None else body
        J = getattr(body, "num_joints", self.num_joints)
        nb = getattr(body, "num_betas", batch["betas"].shape[-1])
        pose = batch["pose"].reshape(batch["pose"].shape[0], -1, 3)
        if pose.shape[1] < J:
            raise ValueError(f"batch['pose'] has {pose.shape[1]} joints; the ground-truth body "
                             f"needs {J} (axis-angle, shape (B, {3 * J}))")
        betas = torch.nn.functional.pad(batch["betas"][..., :nb], (0, max(0, nb - batch["betas"].shape[-1])))
        return self.body_geometry(axis_angle_to_matrix(pose[:, :J]), betas, outputs, body=body)

    def _geometry(self, batch: Mapping[str, Tensor], x: Tensor, betas: Tensor, cam: Tensor,
                  wanted: set[str]) -> dict[str, Tensor]:
        """Body model and full-image camera for 6D poses x (B, S, D), betas (B, nb), cam (B, 3)."""
        B, S = x.shape[:2]
        center, box, hw = batch["center"], 200.0 * batch["scale"][:, 0], batch["orig_shape"].to(x.dtype)
        focal = batch_focal(batch).to(x.dtype)                                 # (B, 2)
        cam_t = weak_cam_to_full_translation(cam, center, box, hw, focal[:, 0])  # (B, 3)
        rotmat = self.pose_to_matrix(x)
        body = self.body_geometry(rotmat, betas[:, None].expand(B, S, -1), wanted)
        principal = hw.flip(-1) / 2.0
        out = {"rotmat": rotmat, "cam_t": cam_t[:, None].expand(B, S, 3),
               "joints3d": body.pop("joints"), "keypoints3d": body.pop("keypoints3d")}
        for key3d, key2d in (("joints3d", "joints2d"), ("keypoints3d", "keypoints2d")):
            full = perspective_project(out[key3d], focal[:, None], principal[:, None], cam_t[:, None])
            out[key2d] = full_to_crop(full, center[:, None], box[:, None])
        out.update(body)
        return out

    # ----------------------------------------------------------------- training
    def loss(self, batch: Mapping[str, Any], out: Mapping[str, Tensor], objective: nn.Module | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted sum of the enabled losses: ``(total, {name: unweighted value})``, by
        ``objective`` or the :class:`humr.objective.Objective` that :func:`build_model`
        attached. The ground-truth density the ``nll`` loss needs is computed by the objective
        (with its ``gt_noise_std`` in training mode)."""
        objective = objective if objective is not None else self.objective
        if objective is None:
            raise ValueError("this model has no objective: build it with build_model(...) or pass "
                             "objective=humr.objective.Objective(...)")
        objective.train(self.training).to(self.mean_pose_6d.device)
        return objective(self, self._cast(batch), out)


def _check_outputs(outputs: Iterable[str], vertices: bool = False) -> set[str]:
    wanted = set([outputs] if isinstance(outputs, str) else outputs) | ({"vertices"} if vertices else set())
    unknown = wanted - set(BODY_OUTPUTS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {', '.join(BODY_OUTPUTS)}")
    return wanted


def build_parts(config: Any, body: nn.Module | None = None) -> dict[str, nn.Module]:
    """The parts of :class:`HUMR` (``conditions``, ``flow``, ``head``, ``body``) from a
    :class:`humr.config.Config`."""
    from humr.config import entry_kwargs
    from humr.head import ShapeCameraHead
    from humr.registry import CONDITIONS, FLOWS

    m = config.model
    conditions = {name: CONDITIONS.build(name, **entry_kwargs("condition", entry))
                  for name, entry in m.conditions.items()}
    if body is None:
        from humr.body import BodyModel

        body = BodyModel(m.body_model, model_type=m.model_type, num_betas=m.num_betas)
    if body.num_betas != m.num_betas:
        raise ValueError(f"the body model has {body.num_betas} betas, model.num_betas = {m.num_betas}")
    context_dim = sum(int(c.out_dim) for c in conditions.values())
    flow = FLOWS.build(m.flow.name, dim=body.pose_dim, context_dim=context_dim,
                       **entry_kwargs("flow", m.flow))
    head = ShapeCameraHead(context_dim, m.num_betas, **entry_kwargs("head", m.head))
    return {"conditions": conditions, "flow": flow, "head": head, "body": body}


_MODEL_KEYWORDS = ("flow", "conditions", "head", "body_model", "model_type", "num_betas")


def build_model(config: Any = None, body: nn.Module | None = None,
                overrides: Sequence[str] | Mapping[str, Any] = (), **keywords: Any) -> HUMR:
    """Build a :class:`HUMR` and its :class:`humr.objective.Objective` from a config.

    Args:
        config: None (defaults), a :class:`humr.config.Config`, a dict or a YAML path.
        body: an optional prebuilt body model (shared between models).
        overrides: dotted overrides (``["model.flow.num_blocks=2"]``, see :mod:`humr.config`).
        keywords: ``flow``, ``conditions``, ``head``, ``body_model``, ``model_type``,
            ``num_betas`` (the ``model`` section) and ``losses``, applied before ``overrides``.

    The objective (``config.losses``) is attached as ``model.objective`` (not a submodule: the
    model's state holds no losses) for :meth:`HUMR.loss`.

    Example:
        >>> model = build_model(flow="nice", conditions=["bbox", "pose2d"], losses=["nll"],
        ...                     overrides={"model.flow.num_blocks": 2, "model.head.hidden": 32})
        >>> type(model.flow).__name__, model.context_dim, list(model.objective.losses)
        ('NICEFlow', 259, ['nll'])
    """
    from humr.config import Config
    from humr.objective import Objective

    unknown = [k for k in keywords if k not in (*_MODEL_KEYWORDS, "losses")]
    if unknown:
        raise KeyError(f"unknown build_model keyword(s) {unknown}; valid: "
                       f"{', '.join((*_MODEL_KEYWORDS, 'losses'))} (other keys: overrides=)")
    cfg = Config.load(config if not isinstance(config, Path) else str(config))
    dotted = {(k if k == "losses" else f"model.{k}"): v for k, v in keywords.items()}
    cfg = cfg.override(dotted).override(overrides)
    model = HUMR(**build_parts(cfg, body))
    object.__setattr__(model, "objective", Objective.from_config(cfg.losses))
    return model
