"""Load / convert the official Lightning checkpoint (``humr_best.ckpt``) into a humr model.

Key layout of the official ``state_dict`` (twehrbein/humr, train/models/humr_model.py) and
where each tensor goes:

=====================================  ===============================================
official                               humr (:class:`OfficialHUMR`)
=====================================  ===============================================
model.backbone.*                       conditions.image.backbone.* (``hrnet_w48_official``)
model.backbone.final_layer.*           unused by the official forward (checked, dropped)
model.joints_enc.{0,2}.*               conditions.pose2d_official.mlp.{0,2}.*
model.head.{fc1,fc2,decshape,deccam}   head.* (:class:`OfficialShapeCamHead`)
model.head.init_shape / init_cam       head.init_shape / init_cam
model.flow.module_list.*               flow (:func:`humr.official.flow.flow_from_freia_state`)
model.smpl.smplx.*                     body (SMPL-X neutral, 11 betas) unless body_model /
                                       body is given (:mod:`humr.official.body`)
smplx.*, smpl_neutral.*, J_regressor   body tensors of the training code (evaluation);
                                       not used by the model
=====================================  ===============================================

Any other key, and any shape that does not fit, raises :class:`OfficialKeyError` naming it.
The file is read with ``torch.load(weights_only=True)``; its yacs ``CfgNode`` hyper-parameters
are read as plain ``OrderedDict`` s (``torch.serialization.safe_globals``).
"""
from __future__ import annotations

import collections
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from humr.geometry import rot6d_to_matrix
from humr.io import atomic_write
from humr.model import HUMR
from humr.official.body import PREFIX as BODY_PREFIX
from humr.official.components import OfficialShapeCamHead
from humr.official.flow import OfficialKeyError, flow_from_freia_state

__all__ = ["OfficialHUMR", "convert_official", "load_official", "load_official_settings", "official_config",
           "read_checkpoint"]

FORMAT = "humr-official-v1"          # marker of a converted file
_BODY_PREFIXES = ("model.smpl.", "smplx.", "smpl_neutral.", "J_regressor")
_SMPLX_HELP = ("the official model is SMPL-X (neutral, 11 betas): download SMPL-X 1.1 from "
               "https://smpl-x.is.tue.mpg.de and pass body_model=<folder with smplx/SMPLX_NEUTRAL.npz> "
               "(CLI: --body-model)")


class OfficialHUMR(HUMR):
    """:class:`humr.model.HUMR` with the official pose parametrisation: the flow's 6D is
    pytorch3d's (the first two ROWS of each rotation, Gram-Schmidt on the rows) and there is
    no mean-pose offset. Only :meth:`matrix_to_pose` / :meth:`pose_to_matrix` differ from
    humr's model, so ``pose_6d`` and ``log_prob`` are the official flow's, ``rotmat`` its
    rotation matrices, :meth:`log_prob` of rotation matrices and the ground-truth density of
    :class:`humr.objective.Objective` the official flow's at the rows 6D; everything downstream
    (body, CLIFF camera, projections) is humr's. The parts are built by :func:`load_official`
    (head: :class:`humr.official.components.OfficialShapeCamHead`)."""

    def __init__(self, conditions: Mapping[str, nn.Module], flow: nn.Module, head: nn.Module,
                 body: nn.Module) -> None:
        super().__init__(conditions, flow, head, body)
        self.mean_pose_6d.zero_()

    def matrix_to_pose(self, rotmat: Tensor) -> Tensor:
        """pytorch3d's 6D (..., 6J): the first two rows of each (..., J, 3, 3), row-major."""
        return rotmat[..., :2, :].flatten(-3)

    def pose_to_matrix(self, x: Tensor) -> Tensor:
        """Rotations (..., J, 3, 3) of pytorch3d 6D poses (..., 6J): Gram-Schmidt on the rows
        (pytorch3d's ``rotation_6d_to_matrix``), i.e. humr's column Gram-Schmidt of the
        transposed rows, transposed back."""
        rows = x.unflatten(-1, (self.num_joints, 2, 3))
        return rot6d_to_matrix(rows.transpose(-1, -2).flatten(-2)).transpose(-1, -2)


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` with yacs ``CfgNode`` read as ``OrderedDict``.
    Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (the official one is humr_best.ckpt "
                                "of the release, see README 'Real data')")
    try:
        with torch.serialization.safe_globals([(collections.OrderedDict, "yacs.config.CfgNode")]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"cannot read checkpoint {path} with weights_only=True: "
                         f"{str(err).splitlines()[-1] if str(err) else type(err).__name__}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path} has no 'state_dict' (expected a Lightning checkpoint "
                         "or a file written by `humr convert-official`)")
    return ckpt


def _find(tree: Any, key: str) -> Any:
    """The first value of ``key`` in nested mappings (hyper-parameters), else None."""
    if isinstance(tree, Mapping):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise OfficialKeyError(f"official checkpoint lacks key {key!r}")
    return tuple(state[key].shape)


def official_config(state: Mapping[str, Tensor], hparams: Mapping | None = None,
                    clamp: float | None = None) -> dict:
    """humr settings for an official state dict (``model.`` keys): a partial
    :class:`humr.config.Config` dict ``{"model": {...}}`` in its layout (``model.conditions``
    image (``hrnet_w48_official`` with the backbone widths) / ``pose2d_official`` / bbox,
    ``model.flow`` RealNVP with the flow's size and FrEIA clamp (hyper-parameter
    FREIA_NF.CLAMP), ``model.head.hidden``, SMPL-X with the head's number of betas)."""
    from humr.official.flow import freia_flow_sizes

    flow_state = {k[len("model.flow."):]: v for k, v in state.items() if k.startswith("model.flow.")}
    sizes = freia_flow_sizes(flow_state)
    widths = [_shape(state, f"model.backbone.stage4.0.branches.{i}.0.conv1.weight")[0] for i in range(4)]
    num_betas = _shape(state, "model.head.decshape.weight")[0]
    pose_hidden, pose_in = _shape(state, "model.joints_enc.0.weight")
    pose_out = _shape(state, "model.joints_enc.2.weight")[0]
    if pose_in != 51:
        raise OfficialKeyError(f"model.joints_enc.0.weight has shape {(pose_hidden, pose_in)}, expected (*, 51)")
    context = sum(widths) + pose_out + 3
    if sizes["context_dim"] != context:
        raise OfficialKeyError(f"flow context {sizes['context_dim']} != image {sum(widths)} + pose "
                               f"{pose_out} + bbox 3 (model.flow.module_list.0.subnet1.0.weight)")
    if sizes["dim"] != 6 * 22:
        raise OfficialKeyError(f"flow dimension {sizes['dim']}, expected 132 (22 SMPL-X joints x 6D)")
    if clamp is None:
        clamp = _find(hparams or {}, "CLAMP")
        if clamp is None:
            raise OfficialKeyError("the checkpoint's hyper_parameters lack FREIA_NF.CLAMP; pass clamp=")
    return {"model": {
        "conditions": {"image": {"backbone": {"name": "hrnet_w48_official", "widths": widths}},
                       "pose2d_official": {"hidden": pose_hidden, "out_dim": pose_out},
                       "bbox": {}},
        "flow": {"name": "realnvp", "num_blocks": sizes["num_blocks"], "hidden_features": sizes["hidden"],
                 "alpha": float(clamp), "clamp": "freia", "layout": "freia"},
        "head": {"hidden": _shape(state, "model.head.fc1.weight")[0]},
        "model_type": "smplx", "num_betas": num_betas}}


def _map_state(state: Mapping[str, Tensor], model: OfficialHUMR) -> dict[str, Tensor]:
    """Official keys -> the model's keys (flow excluded); raises on unknown keys or shapes."""
    own = model.state_dict()
    out = {}
    for key, value in state.items():
        if key.startswith("model.flow.") or key.startswith(_BODY_PREFIXES):
            continue
        if key.startswith("model.backbone.final_layer."):
            continue   # the heatmap layer of the pose HRNet, not used by the official forward
        if key.startswith("model.backbone."):
            target = "conditions.image.backbone." + key[len("model.backbone."):]
        elif key.startswith("model.joints_enc."):
            target = "conditions.pose2d_official.mlp." + key[len("model.joints_enc."):]
        elif key.startswith("model.head."):
            target = "head." + key[len("model.head."):]
        else:
            raise OfficialKeyError(f"unexpected key {key!r} in the official checkpoint")
        if target not in own:
            raise OfficialKeyError(f"unexpected key {key!r} (no humr tensor {target})")
        if tuple(own[target].shape) != tuple(value.shape):
            raise OfficialKeyError(f"{key} has shape {tuple(value.shape)}, humr's {target} expects "
                                   f"{tuple(own[target].shape)}")
        out[target] = value
    return out


def _build(settings: Mapping[str, Any], body_model, body: nn.Module | None,
           state: Mapping[str, Tensor] | None = None) -> OfficialHUMR:
    """:class:`OfficialHUMR` (random weights) from :func:`official_config` settings; the body
    is ``body``, else ``body_model``, else the checkpoint's own SMPL-X body (``state``)."""
    from humr.config import Config
    from humr.model import build_parts
    from humr.official import components  # noqa: F401  (registers the *_official components)
    from humr.official.body import body_from_checkpoint

    cfg = Config.load(dict(settings))
    m = cfg.model
    if body is None and body_model is None and state is not None:
        body = body_from_checkpoint(state, m.num_betas)
    if body is None:
        if body_model is None:
            raise FileNotFoundError(f"no SMPL-X body model given and none in the checkpoint: {_SMPLX_HELP}")
        from humr.body import BodyModel

        body = BodyModel(body_model, model_type=m.model_type, num_betas=m.num_betas)
    parts = build_parts(cfg, body)
    context_dim = sum(int(c.out_dim) for c in parts["conditions"].values())
    # the official HMR head replaces humr's ShapeCameraHead (model.head.hidden is its width)
    parts["head"] = OfficialShapeCamHead(context_dim, m.num_betas, hidden=m.head.hidden)
    return OfficialHUMR(**parts)


def load_official(path: str | Path, body_model: str | Path | None = None, body: nn.Module | None = None,
                  clamp: float | None = None) -> OfficialHUMR:
    """The official checkpoint (or a file of :func:`convert_official`) as a humr model (eval mode).

    Args:
        path: ``humr_best.ckpt`` (official Lightning checkpoint) or a converted ``.ckpt``.
        body_model: SMPL-X model file / folder (:class:`humr.body.BodyModel`, ``smplx``, neutral);
            default: the SMPL-X body stored in the checkpoint (``model.smpl.smplx.*``).
        body: a prebuilt body (22 joints, the checkpoint's number of betas) instead of body_model.
        clamp: FrEIA clamp when the checkpoint lacks its hyper-parameters.
    """
    return load_official_settings(path, body_model, body, clamp)[0]


def load_official_settings(path: str | Path, body_model: str | Path | None = None,
                           body: nn.Module | None = None, clamp: float | None = None
                           ) -> tuple[OfficialHUMR, dict]:
    """:func:`load_official` and the model's settings (:func:`official_config`: a partial
    :class:`humr.config.Config` dict), from one read of the file."""
    ckpt = read_checkpoint(path)
    if ckpt.get("format") == FORMAT:
        settings = dict(ckpt["settings"])
        model = _build(settings, body_model, body, ckpt.get("body_state"))
        own = model.state_dict()
        state = ckpt["state_dict"]
        bad = sorted(set(state) - set(own)) + [k for k in state if k in own and own[k].shape != state[k].shape]
        if bad:
            raise OfficialKeyError(f"{path}: unexpected keys or shapes {bad[:5]}")
        missing = [k for k in own if k not in state and not k.startswith("body.")]
        if missing:
            raise OfficialKeyError(f"{path}: missing tensors {missing[:5]}")
        model.load_state_dict({**own, **state})
        return model.eval(), settings
    state = ckpt["state_dict"]
    settings = official_config(state, ckpt.get("hyper_parameters"), clamp)
    model = _build(settings, body_model, body, state)
    mapped = _map_state(state, model)
    flow_state = {k[len("model.flow."):]: v for k, v in state.items() if k.startswith("model.flow.")}
    model.flow = flow_from_freia_state(flow_state, settings["model"]["flow"]["alpha"])
    own = model.state_dict()
    missing = [k for k in own if k not in mapped and not k.startswith(("flow.", "body."))]
    if missing:
        raise OfficialKeyError(f"{path}: the official checkpoint has no tensor for {missing[:5]} "
                               f"({len(missing)} missing)")
    model.load_state_dict({**own, **mapped})
    return model.eval(), settings


def convert_official(src: str | Path, dst: str | Path, body_model: str | Path | None = None,
                     body: nn.Module | None = None, clamp: float | None = None) -> Path:
    """``humr convert-official``: write ``dst`` (atomic) with the converted weights, the model
    settings and the checkpoint's own SMPL-X body buffers (``body_state``, used when no
    ``body_model`` is given on loading); :func:`load_official` reads it back."""
    model = load_official(src, body_model=body_model, body=body, clamp=clamp)
    ckpt = read_checkpoint(src)
    settings = official_config(ckpt["state_dict"], ckpt.get("hyper_parameters"), clamp)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("body.")}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    body_state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(BODY_PREFIX)}
    converted = {"format": FORMAT, "settings": settings, "state_dict": state, "source": str(src),
                 "body_state": body_state}
    atomic_write(dst, lambda f: torch.save(converted, f))
    return dst
