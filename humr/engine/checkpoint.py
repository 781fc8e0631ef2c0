"""Checkpoints of humr runs: atomic writes, safe loads and the body model's identity.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes every checkpoint with
  :func:`humr.io.atomic_write` (temporary file in the checkpoint folder, fsync, ``os.replace``):
  an interrupted or failed save (full disk, kill -9) leaves the previous ``last.ckpt`` /
  ``best-*.ckpt`` intact. It loads with ``torch.load(weights_only=True)``.
- The body model's arrays (licensed data, e.g. SMPL) are never stored: :class:`BodyIdentity`
  removes the body buffers from the saved ``state_dict`` and stores the body file's identity
  under ``checkpoint["humr_body"]`` = ``{"path", "sha256", "model_type"}``. The body is rebuilt
  from its file when loading, and a file with another hash is refused.
- :func:`load_module` rebuilds a :class:`humr.engine.module.HumrModule` for evaluation and
  sampling. It unpickles no body-model file the user did not name: a checkpoint whose config
  names a body file (anything but the generated ``procedural`` body) needs ``body_model``
  from the user (``--body-model``) or ``trust_checkpoint_body=True``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from humr.io import CheckpointError, atomic_write, load_checkpoint_file, sha256_file

__all__ = ["BODY_KEY", "BODY_PREFIX", "AtomicCheckpointIO", "BodyIdentity", "body_identity",
           "check_body_identity", "load_module", "strip_body_state"]

BODY_KEY = "humr_body"
BODY_PREFIX = "model.body."       # state_dict prefix of HumrModule.model.body


def strip_body_state(state_dict: dict) -> dict:
    """``state_dict`` without the body model's buffers (they come from the body file)."""
    return {k: v for k, v in state_dict.items() if not k.startswith(BODY_PREFIX)}


def body_identity(body: torch.nn.Module) -> dict[str, str]:
    """``{"path", "sha256", "model_type"}`` of a :class:`humr.body.BodyModel`'s file (the hash
    is computed once per body object)."""
    ident = getattr(body, "_humr_identity", None)
    if ident is None:
        path = Path(body.model_file).resolve()
        ident = {"path": str(path), "sha256": sha256_file(path),
                 "model_type": str(getattr(body, "model_type", "smpl"))}
        body._humr_identity = ident
    return ident


def check_body_identity(checkpoint: dict, body: torch.nn.Module, source: Any) -> None:
    """Refuse a body whose file differs (by hash) from the one the checkpoint was trained with.
    Checkpoints without an identity (older humr) are accepted: their body comes from the file."""
    stored = checkpoint.get(BODY_KEY)
    if not stored:
        return
    mine = body_identity(body)
    if stored.get("sha256") != mine["sha256"]:
        raise CheckpointError(
            f"{source}: trained with the body model {stored.get('path')} (sha256 "
            f"{str(stored.get('sha256'))[:12]}...), but the body model given is {mine['path']} "
            f"(sha256 {mine['sha256'][:12]}...); joints and meshes would not match. Pass the "
            "same body file (--body-model / model.body_model)")


def _check_keys(checkpoint: dict, module: L.LightningModule, source: Any) -> None:
    """The checkpoint's weights must match the module's, the body buffers aside."""
    want = set(strip_body_state(module.state_dict()))
    have = set(strip_body_state(checkpoint["state_dict"]))
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        raise CheckpointError(f"{source}: the weights do not match the model of its config "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic durable saves, ``weights_only`` loads, no body arrays.

    Saving writes a temporary file beside the target, fsyncs it and renames it over the target
    (the previous checkpoint stays until the new one is complete). Loading refuses anything but
    tensors and plain data and drops stored body buffers (old checkpoints), since the body
    always comes from its file (:class:`BodyIdentity` checks that it is the same file).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        checkpoint = {**checkpoint, "state_dict": strip_body_state(checkpoint["state_dict"])}
        try:
            atomic_write(path, lambda f: torch.save(checkpoint, f))
        except (OSError, RuntimeError) as err:
            # torch's zip writer turns a failed write (ENOSPC) into a RuntimeError
            cause = err if isinstance(err, OSError) else err.__context__
            if not isinstance(cause, OSError):
                raise
            raise OSError(cause.errno, f"checkpoint {path} not written ({cause.strerror}); "
                                       "the previous file under that name is kept") from err

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        ckpt = load_checkpoint_file(path, map_location=map_location or "cpu")
        ckpt["state_dict"] = strip_body_state(ckpt["state_dict"])
        return ckpt


class BodyIdentity(L.Callback):
    """Stores the body file's identity in every checkpoint and, on resume, refuses a body file
    with another hash and weights that do not match the model (the module loads with
    ``strict_loading = False`` because the body buffers are not in the checkpoint)."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[BODY_KEY] = dict(body_identity(pl_module.model.body))

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        check_body_identity(checkpoint, pl_module.model.body, "the resumed checkpoint")
        _check_keys(checkpoint, pl_module, "the resumed checkpoint")


def load_module(path, *, body_model: str | None = None, trust_checkpoint_body: bool = False,
                map_location: Any = "cpu", **module_kwargs: Any):
    """A :class:`humr.engine.module.HumrModule` (config, weights) from a checkpoint of
    ``humr train``, read with ``weights_only=True``.

    Args:
        path: the ``.ckpt`` file.
        body_model: the body model (folder or file, or "procedural") to build the model with;
            default: the checkpoint's ``model.body_model``, which is used only if it is
            "procedural" or ``trust_checkpoint_body`` is set (a checkpoint from elsewhere must
            not make humr unpickle a file the user did not name).
        trust_checkpoint_body: accept the checkpoint's body path without naming it.
        map_location: device of the loaded tensors.
        module_kwargs: further :class:`~humr.engine.module.HumrModule` arguments
            (e.g. ``num_samples_eval``).
    Raises:
        CheckpointError: unreadable / crafted file, weights that do not fit the config, or a
            body file whose hash differs from the one recorded in the checkpoint.
    """
    from humr.config import Config
    from humr.engine.module import HumrModule

    ckpt = load_checkpoint_file(path, map_location=map_location)
    try:
        config = Config.load(ckpt["hyper_parameters"]["config"])
    except Exception as err:
        raise CheckpointError(f"{path}: no usable humr config in the checkpoint "
                              f"(hyper_parameters.config: {type(err).__name__}: {err})") from err
    named = config.model.body_model
    if body_model is not None:
        config.model.body_model = str(body_model)
    elif str(named) != "procedural" and not trust_checkpoint_body:
        stored = ckpt.get(BODY_KEY, {}).get("path", named)
        raise CheckpointError(
            f"{path}: the checkpoint's config names the body model {named!r} ({stored}); humr "
            "loads a body model only from a path you give: pass --body-model PATH (or "
            "--trust-checkpoint-body to use the checkpoint's path)")
    module = HumrModule(config, **module_kwargs)
    check_body_identity(ckpt, module.model.body, path)
    _check_keys(ckpt, module, path)
    module.load_state_dict(strip_body_state(ckpt["state_dict"]), strict=False)
    return module.to(map_location) if map_location is not None else module
