"""LightningModule training and evaluating a HUMR model (paper appendix A).

Adam (learning rate 1e-4, weight decay 1e-4 by default), the configured objective
(:class:`humr.objective.Objective`), S = 26 hypotheses per training image (the mode + 25 random
samples for the MMD / mask losses) and S = 100 in evaluation. Every loss part is logged as ``train/<name>``; validation and test feed
:class:`humr.engine.evaluation.EvaluationMetrics` and log ``val/<metric>`` / ``test/<metric>``.

Repeatability: the global torch RNG is re-seeded before every training step from
``(seed, global_step, rank)``, so a run resumed from a checkpoint draws the same hypotheses as
an uninterrupted one; evaluation draws each example's latents from ``(seed, example index)``
(:func:`example_latents`, the batches carry ``index``), so its numbers do not depend on the
batch size, the number of processes or the global RNG.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from humr.engine.evaluation import EvaluationMetrics, GenderedBodies, evaluation_outputs

__all__ = ["HumrModule", "check_temperature", "example_latents", "step_seed", "warmup_cosine"]


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of training step ``step`` on process ``rank`` (distinct per step and rank)."""
    return (int(seed) * 1_000_003 + int(step) * 4099 + int(rank)) % (2 ** 63 - 1)


def example_latents(indices: Tensor, num_samples: int, dim: int, seed: int = 0,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                    temperature: float = 1.0) -> Tensor:
    """Latents z (B, S, D) of evaluation: row 0 = 0 (the mode), rows 1.. ~ N(0, T^2 I) drawn
    from a generator seeded by ``(seed, example index)``, so that an example gets the same
    hypotheses whatever the batch size, the number of processes or the order of evaluation.

    ``temperature`` T > 0 scales the draws (Glow's sampling temperature; the paper and the
    default sample at T = 1): the same example and seed give ``T z`` of the T = 1 latents.

    Example:
        >>> z = example_latents(torch.tensor([3, 7]), 4, 6)
        >>> z.shape, bool((z[:, 0] == 0).all()), bool((example_latents(torch.tensor([7]), 4, 6) == z[1]).all())
        (torch.Size([2, 4, 6]), True, True)
    """
    temperature = check_temperature(temperature)
    rows = []
    for index in indices.reshape(-1).tolist():
        gen = torch.Generator().manual_seed(step_seed(seed, int(index), rank=7919))
        z = torch.randn(num_samples, dim, generator=gen, dtype=torch.float64)
        z[0] = 0.0
        rows.append(z * temperature)
    return torch.stack(rows).to(device=device, dtype=dtype)


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; ValueError unless it is finite and > 0."""
    value = float(temperature)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"temperature must be a finite number > 0 (1 = the paper's sampling), "
                         f"got {temperature!r}")
    return value


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor at optimiser ``step``: ``step / warmup`` during the warm-up, then
    ``0.5 (1 + cos(pi t))`` with ``t = (step - warmup) / (total - warmup)`` (0 after ``total``)."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


class HumrModule(L.LightningModule):
    """Lightning wrapper of :class:`humr.model.HUMR` and its :class:`humr.objective.Objective`.

    Args:
        config: a :class:`humr.config.Config`, its dict form or a YAML path (stored in the
            checkpoint's hyper-parameters, so :meth:`load_from_checkpoint` rebuilds the model).
        num_samples_eval: hypotheses per image in validation / test (default
            ``config.train.num_samples_eval``).
        model: an already built model to wrap (shared, e.g. to evaluate it with another
            ``num_samples_eval``); default: built from ``config``.
        gt_bodies: ``gender -> body`` posing the ground truth in validation / test
            (:class:`humr.engine.evaluation.GenderedBodies`); default: the run's body and its
            gendered files.
        temperature: sampling temperature of the validation / test hypotheses (latents
            N(0, T^2 I), :func:`example_latents`; default 1, the paper's).

    Optimiser, training hypotheses and seed come from ``config.train`` (``lr``,
    ``weight_decay``, ``num_samples_train``, ``seed``). Conditioners that expose
    ``frozen_modules()`` keep those modules without gradients and in eval mode.
    """

    def __init__(self, config: Any, num_samples_eval: int | None = None,
                 model: torch.nn.Module | None = None, gt_bodies: GenderedBodies | None = None,
                 temperature: float = 1.0) -> None:
        super().__init__()
        from humr.config import Config
        from humr.model import build_model
        from humr.objective import Objective

        cfg = Config.load(config) if not isinstance(config, Config) else config
        self.config = cfg
        self.save_hyperparameters({"config": cfg.to_dict()})
        self.num_samples_train = _positive("train.num_samples_train", cfg.train.num_samples_train)
        self.num_samples_eval = _positive("num_samples_eval", num_samples_eval
                                          if num_samples_eval is not None else cfg.train.num_samples_eval)
        self.temperature = check_temperature(temperature)
        self.model = model if model is not None else build_model(cfg)
        # the objective build_model attached (a submodule here, so it follows the device)
        self.objective = self.model.objective or Objective.from_config(cfg.losses)
        m = cfg.model
        self.gt_bodies = gt_bodies or GenderedBodies(self.model.body, m.body_model, m.model_type,
                                                     m.num_betas)
        self.val_metrics = EvaluationMetrics()
        self.test_metrics = EvaluationMetrics()
        for module in self._frozen():
            module.requires_grad_(False)

    # ------------------------------------------------------------------ setup
    def _frozen(self) -> list[torch.nn.Module]:
        return [m for cond in self.model.conditions.values()
                for m in getattr(cond, "frozen_modules", list)()]

    def train(self, mode: bool = True) -> HumrModule:
        """Like ``nn.Module.train``; frozen modules stay in eval mode (batch norm statistics)."""
        super().train(mode)
        for module in self._frozen():
            module.eval()
        return self

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """Adam (``train.lr``, ``train.weight_decay``, coupled L2 as in the paper, or AdamW's
        decoupled decay with ``train.decoupled_weight_decay``); with ``train.lr_schedule = "cosine"``
        also a per-step schedule: linear warm-up over ``train.warmup_steps``, then cosine decay
        to zero at ``train.max_steps`` (:func:`warmup_cosine`)."""
        cfg = self.config.train
        params = [p for p in self.parameters() if p.requires_grad]
        # fused: one kernel over all parameters (CPU and CUDA), 3-4x faster than the per-tensor loop
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused,
                                     decoupled_weight_decay=cfg.decoupled_weight_decay)
        if cfg.lr_schedule == "constant":
            return optimizer
        if cfg.lr_schedule != "cosine":
            raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got "
                             f"{cfg.lr_schedule!r}")
        factor = functools.partial(warmup_cosine, warmup=cfg.warmup_steps, total=cfg.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # --------------------------------------------------------------- training
    def on_train_batch_start(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.config.train.seed, self.global_step, self.global_rank))

    def forward(self, batch: Mapping[str, Tensor], num_samples: int, **kw) -> dict[str, Tensor]:
        return self.model(batch, num_samples=num_samples, **kw)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        out = self.model(batch, num_samples=self.num_samples_train)
        total, parts = self.objective(self.model, batch, out)
        # The finiteness check reads the loss on the host: only on steps Lightning logs (and
        # so synchronises) anyway.
        trainer = self._trainer
        logged = trainer is None or self.global_step % max(1, trainer.log_every_n_steps) == 0
        if logged and not torch.isfinite(total):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: "
                                     + ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items()))
        bs = batch["center"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, batch_size=bs)
        return total

    # ------------------------------------------------------------- evaluation
    def _evaluate(self, metrics: EvaluationMetrics, batch: Mapping[str, Tensor]) -> None:
        S = self.num_samples_eval
        z = example_latents(batch["index"], S, self.model.pose_dim, self.config.train.seed,
                            self.model.dtype, self.device, self.temperature)
        metrics.update(batch, *evaluation_outputs(self.model, batch, S, z=z,
                                                  with_vertices=metrics.with_vertices,
                                                  gt_body=self.gt_bodies))

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(self.val_metrics, batch)

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(self.test_metrics, batch)

    def _log_results(self, metrics: EvaluationMetrics, stage: str) -> None:
        results = metrics.compute()      # synchronised over processes by torchmetrics
        metrics.reset()
        self.log_dict({f"{stage}/{k}": v for k, v in results.items()}, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_results(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_results(self.test_metrics, "test")

    @classmethod
    def from_checkpoint(cls, path: str, map_location: str | None = "cpu", **kw: Any) -> HumrModule:
        """Rebuild a module (model weights, config) from a checkpoint written by ``humr train``
        (safely: :func:`humr.engine.checkpoint.load_module`, keywords ``body_model``,
        ``trust_checkpoint_body``; others, e.g. ``num_samples_eval``, go to the constructor)."""
        from humr.engine.checkpoint import load_module

        return load_module(path, map_location=map_location, **kw)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
