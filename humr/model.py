"""The HUMR model (paper section 4.1) and :func:`build_model`.

conditioners -> context c (B, C) -> conditional flow over the 6D pose (D = 6 J) + a
deterministic head for betas and the weak-perspective camera -> body model -> joints projected
with the full-image perspective camera (CLIFF) into crop coordinates.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from humr.conditions import batch_focal
from humr.config import Config, ModelConfig
from humr.geometry import (
    axis_angle_to_matrix,
    full_to_crop,
    matrix_to_rot6d,
    perspective_project,
    rot6d_to_matrix,
    weak_cam_to_full_translation,
)
from humr.head import ShapeCameraHead
from humr.losses._inputs import fetch
from humr.registry import CONDITIONS, FLOWS, LOSSES

__all__ = ["HUMR", "build_model"]


class HUMR(nn.Module):
    r"""Probabilistic human mesh recovery: a normalizing flow over the body pose given the image.

    .. math::
        c = [c_1, \dots, c_n], \quad \theta = \bar\theta + f^{-1}(z; c),\ z \sim \mathcal{N}(0, I),
        \quad (\beta, [s, t_x, t_y]) = \mathrm{head}(c)

    with the 6D pose :math:`\theta` and the fixed mean pose :math:`\bar\theta` (``mean_pose_6d``:
    body joints at rest, root rotated 180 degrees about x, i.e. upright facing the camera), so
    that :math:`\log p(\theta | c) = \log p_f(\theta - \bar\theta | c)`.

    Args:
        config: a :class:`humr.config.Config` (its ``model`` and ``losses`` sections are used).
        body: an optional prebuilt :class:`humr.body.BodyModel` (shared between models);
            by default built from ``config.model`` (``body_model``, ``model_type``, ``num_betas``).

    Attributes:
        conditions (``nn.ModuleDict``, config order), flow, head, body, losses
        (``nn.ModuleDict``), loss_weights (dict), context_dim, num_joints, pose_dim.

    ``forward(batch, num_samples, return_vertices=False, z=None, log_prob_gt=False,
    generator=None)`` returns the outputs of ``docs/conventions.md`` (hypothesis 0 = the mode,
    z = 0). Floating batch tensors are cast to the model's dtype; the device follows the batch
    (move the model with ``.to``). The body model and the cameras run outside autocast.

    Example:
        >>> import torch
        >>> model = build_model(conditions=["bbox"], flow_blocks=2, flow_hidden=32, head_hidden=32)
        >>> batch = {"center": torch.tensor([[320.0, 240.0]]), "scale": torch.tensor([[1.5]]),
        ...          "orig_shape": torch.tensor([[480.0, 640.0]])}
        >>> out = model.eval()(batch, num_samples=5)
        >>> out["keypoints2d"].shape, out["cam_t"].shape, out["log_prob"].shape
        (torch.Size([1, 5, 17, 2]), torch.Size([1, 5, 3]), torch.Size([1, 5]))
    """

    def __init__(self, config: Config | None = None, body: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config = Config.load(config)
        m: ModelConfig = config.model
        if len(set(m.conditions)) != len(m.conditions) or not m.conditions:
            raise ValueError(f"model.conditions must be distinct names and not empty, got {m.conditions}")
        self.conditions = nn.ModuleDict()
        for name in m.conditions:
            kwargs = dict(m.condition_kwargs.get(name, {}))
            if name == "image":
                kwargs.setdefault("backbone", m.backbone)
                kwargs.setdefault("backbone_kwargs", m.backbone_kwargs)
            self.conditions[name] = CONDITIONS.build(name, **kwargs)
        self.context_dim = sum(c.out_dim for c in self.conditions.values())
        if body is None:
            from humr.body import BodyModel

            body = BodyModel(m.body_model, model_type=m.model_type, num_betas=m.num_betas)
        if body.num_betas != m.num_betas:
            raise ValueError(f"the body model has {body.num_betas} betas, model.num_betas = {m.num_betas}")
        self.body = body
        self.num_joints, self.pose_dim = body.num_joints, body.pose_dim
        # The flow models the offset from a mean pose (a shift: densities unchanged), so that
        # z = 0 of a fresh flow (output ~ 0, a degenerate 6D) is a valid upright body facing the
        # camera: body joints at rest, the root rotated 180 degrees about x (conventions.md).
        mean = torch.eye(3).expand(self.num_joints, 3, 3).clone()
        mean[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        self.register_buffer("mean_pose_6d", matrix_to_rot6d(mean).flatten(), persistent=False)
        self.flow = FLOWS.build(m.flow, dim=self.pose_dim, context_dim=self.context_dim,
                                num_blocks=m.flow_blocks, hidden_features=m.flow_hidden, **m.flow_kwargs)
        self.head = ShapeCameraHead(self.context_dim, m.num_betas, hidden=m.head_hidden,
                                    num_layers=m.head_layers, dropout=m.head_dropout,
                                    init_scale=m.init_cam_scale)
        names = config.losses.names
        self.losses = nn.ModuleDict({n: LOSSES.build(n, **config.losses.kwargs.get(n, {})) for n in names})
        self.loss_weights = {n: config.losses.weight(n) for n in names}

    # ----------------------------------------------------------------- helpers
    @property
    def dtype(self) -> torch.dtype:
        return self.head.out.weight.dtype

    def _cast(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Floating tensors of the batch in the model's dtype (others unchanged)."""
        return {k: v.to(self.dtype) if torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in batch.items()}

    def context(self, batch: Mapping[str, Any]) -> Tensor:
        """The condition c (B, C): the enabled conditioners' outputs concatenated in order."""
        parts = [cond(batch) for cond in self.conditions.values()]
        sizes = {p.shape[0] for p in parts}
        if len(sizes) != 1:
            raise ValueError("conditioners disagree on the batch size: "
                             + ", ".join(f"{n}: {p.shape[0]}" for n, p in zip(self.conditions, parts)))
        return torch.cat(parts, dim=-1)

    def _to_6d(self, pose: Tensor) -> tuple[Tensor, bool]:
        """Poses (B, [S,] J, 3, 3) or (B, [S,] 6J) -> (B, S, 6J) and whether S was given."""
        J, D = self.num_joints, self.pose_dim
        if pose.dim() in (4, 5) and tuple(pose.shape[-3:]) == (J, 3, 3):
            pose, has_s = matrix_to_rot6d(pose).flatten(-2), pose.dim() == 5
        elif pose.dim() in (2, 3) and pose.shape[-1] == D:
            has_s = pose.dim() == 3
        else:
            raise ValueError(f"pose must have shape (B, [S,] {J}, 3, 3) (rotation matrices) or "
                             f"(B, [S,] {D}) (6D), got {tuple(pose.shape)}")
        return (pose if has_s else pose[:, None]).to(self.dtype), has_s

    # ----------------------------------------------------------------- density
    def log_prob(self, batch: Mapping[str, Any], pose: Tensor) -> Tensor:
        """log p(pose | c) of given poses: rotation matrices (B, [S,] J, 3, 3) or 6D
        (B, [S,] 6J) -> (B, S) or (B,)."""
        x, has_s = self._to_6d(pose)
        logp = self.flow.log_prob(x - self.mean_pose_6d, self.context(self._cast(batch)))
        return logp if has_s else logp[:, 0]

    def _gt_log_prob(self, batch: Mapping[str, Any], context: Tensor) -> Tensor:
        J = self.num_joints
        pose = fetch(batch, {}, {"pose": ("B", 3 * J)})[0]["pose"]
        x = matrix_to_rot6d(axis_angle_to_matrix(pose.view(-1, J, 3))).flatten(-2)
        return self.flow.log_prob(x[:, None] - self.mean_pose_6d, context)[:, 0]

    # ----------------------------------------------------------------- sampling
    def forward(self, batch: Mapping[str, Any], num_samples: int = 1, return_vertices: bool = False,
                z: Tensor | None = None, log_prob_gt: bool = False,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """S hypotheses per image, hypothesis 0 being the mode.

        Args:
            batch: the sample schema of ``docs/conventions.md`` (stacked, leading B); the keys
                the conditioners need plus ``center`` (B, 2), ``scale`` (B, 1), ``orig_shape``
                (B, 2) and optionally ``focal`` (B, 2) (else ``sqrt(h^2 + w^2)``).
            num_samples: S >= 1.
            return_vertices: also return ``vertices`` (B, S, V, 3) (full skinning).
            z: optional latent (B, S, D); default ``z[:, 0] = 0`` and N(0, I) for the others.
            log_prob_gt: also return ``log_prob_gt`` (B,), the density of the ground-truth pose
                ``batch['pose']`` (B, 3J) axis-angle (training, the ``nll`` loss).
            generator: optional ``torch.Generator`` for the latent draws (else the global RNG).
        Returns:
            dict with ``pose_6d`` (B,S,6J), ``rotmat`` (B,S,J,3,3), ``betas`` (B,S,nb),
            ``cam`` (B,S,3), ``cam_t`` (B,S,3) metres, ``log_prob`` (B,S), ``joints3d``
            (B,S,J,3), ``keypoints3d`` (B,S,17,3) (metres, body frame), ``joints2d`` (B,S,J,2),
            ``keypoints2d`` (B,S,17,2) (crop coordinates), [``vertices``], [``log_prob_gt``].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        batch = self._cast(batch)
        c = self.context(batch)
        B, S, D = c.shape[0], num_samples, self.pose_dim
        if z is None:
            z = torch.randn(B, S, D, generator=generator, dtype=c.dtype, device=c.device)
            z[:, 0] = 0.0
        offset, log_prob, z = self.flow.sample(c, S, z=z)
        x = offset + self.mean_pose_6d
        betas, cam = (t.to(self.dtype) for t in self.head(c))     # model dtype under autocast too
        out = {"pose_6d": x, "log_prob": log_prob,
               "betas": betas[:, None].expand(B, S, -1), "cam": cam[:, None].expand(B, S, 3)}
        with torch.autocast(c.device.type, enabled=False):
            out.update(self._geometry(batch, x.to(self.dtype), betas, cam, return_vertices))
        if log_prob_gt:
            out["log_prob_gt"] = self._gt_log_prob(batch, c)
        return out

    def _geometry(self, batch: Mapping[str, Tensor], x: Tensor, betas: Tensor, cam: Tensor,
                  return_vertices: bool) -> dict[str, Tensor]:
        """Body model and full-image camera for 6D poses x (B, S, D), betas (B, nb), cam (B, 3)."""
        b = fetch(batch, {}, {"center": ("B", 2), "scale": ("B", 1), "orig_shape": ("B", 2)})[0]
        B, S = x.shape[:2]
        center, box, hw = b["center"], 200.0 * b["scale"][:, 0], b["orig_shape"].to(x.dtype)
        focal = batch_focal(batch).to(x.dtype)                                 # (B, 2)
        cam_t = weak_cam_to_full_translation(cam, center, box, hw, focal[:, 0])  # (B, 3)
        rotmat = rot6d_to_matrix(x.view(B, S, self.num_joints, 6))
        body = self.body(rotmat, betas[:, None], return_vertices=return_vertices, h36m=False)
        principal = hw.flip(-1) / 2.0
        out = {"rotmat": rotmat, "cam_t": cam_t[:, None].expand(B, S, 3),
               "joints3d": body["joints"], "keypoints3d": body["coco17"]}
        for key3d, key2d in (("joints3d", "joints2d"), ("keypoints3d", "keypoints2d")):
            full = perspective_project(out[key3d], focal[:, None], principal[:, None], cam_t[:, None])
            out[key2d] = full_to_crop(full, center[:, None], box[:, None])
        if return_vertices:
            out["vertices"] = body["vertices"]
        return out

    # ----------------------------------------------------------------- training
    def loss(self, batch: Mapping[str, Any], out: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted sum of the enabled losses: ``(total, {name: unweighted value})``."""
        if not self.losses:
            raise ValueError("no losses are enabled (config.losses.names is empty)")
        batch = self._cast(batch)
        parts = {name: loss(batch, out) for name, loss in self.losses.items()}
        total = sum(self.loss_weights[name] * value for name, value in parts.items())
        return total, parts


_LOSS_KEYWORDS = {"losses": "losses.names", "loss_weights": "losses.weights"}


def build_model(config: Config | Mapping[str, Any] | str | Path | None = None,
                body: nn.Module | None = None, **overrides: Any) -> HUMR:
    """Build a :class:`HUMR` from a config (None = defaults, a :class:`Config`, a dict or a YAML
    path) and keyword overrides.

    Keywords: any ``model`` field (``flow``, ``conditions``, ``backbone``, ``body_model``,
    ``flow_blocks``, ...), ``losses`` (names), ``loss_weights``, or a dotted key passed as
    ``**{"train.lr": 1e-3}``. Unknown keywords and unknown component names raise a KeyError
    listing the choices.

    Example:
        >>> model = build_model(flow="nice", conditions=["bbox", "pose2d"], losses=["nll"],
        ...                     flow_blocks=2, flow_hidden=32, head_hidden=32)
        >>> type(model.flow).__name__, model.context_dim, list(model.losses)
        ('NICEFlow', 259, ['nll'])
    """
    model_keys = ModelConfig.__dataclass_fields__
    dotted = {}
    for key, value in overrides.items():
        if key in model_keys:
            dotted[f"model.{key}"] = value
        elif key in _LOSS_KEYWORDS:
            dotted[_LOSS_KEYWORDS[key]] = value
        elif "." in key:
            dotted[key] = value
        else:
            raise KeyError(f"unknown build_model keyword '{key}'; valid: "
                           f"{', '.join([*model_keys, *_LOSS_KEYWORDS])} or a dotted config key")
    return HUMR(Config.load(config, overrides=dotted), body=body)
