"""Using trained checkpoints: evaluate a test split, draw hypotheses for chosen examples."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch

from humr.data.official_release import datamodule_options
from humr.engine.datamodule import HumrDataModule, IndexedDataset
from humr.engine.module import HumrModule, example_latents

__all__ = ["evaluate_checkpoint", "fresh_path", "load_examples", "sample_hypotheses",
           "write_json"]

PathLike = str | Path


def fresh_path(path: PathLike) -> Path:
    """``path`` if it does not exist yet, else ``stem_1.ext``, ``stem_2.ext``, ... (never an
    existing file, so results are not overwritten)."""
    path = Path(path)
    k = 0
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}_{k}{path.suffix}")
    return candidate


def write_json(data: dict, path: PathLike) -> Path:
    """Write ``data`` as JSON to ``path``; refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; not overwriting it (choose another --out)")
    from humr.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return path


def evaluate_checkpoint(module: HumrModule | PathLike, data_root: PathLike,
                        split: str = "test", num_samples: int = 100,
                        batch_size: int | None = None, max_examples: int | None = None,
                        devices: int | str = 1, num_nodes: int = 1,
                        strategy: str = "auto", accelerator: str = "auto",
                        progress: bool = False, temperature: float = 1.0) -> dict[str, float]:
    """Evaluate a model on ``split`` with ``num_samples`` hypotheses per image (section 5.1).

    Args:
        module: a :class:`HumrModule` or a checkpoint path.
        data_root: dataset folder.
        split: dataset split.
        num_samples: S hypotheses per image (the mode included), 100 in the paper.
        batch_size: evaluation batch size (default ``config.train.eval_batch_size``).
        max_examples: evaluate only the first N examples.
        devices, num_nodes, strategy, accelerator: Lightning Trainer arguments (metrics are
            synchronised across processes).
        progress: show a progress bar.
        temperature: sampling temperature T of hypotheses 1.. (latents N(0, T^2 I); 1 = the
            paper's evaluation; :func:`humr.engine.module.example_latents`).
    Returns:
        Flat dict of metric values (keys of :data:`humr.engine.evaluation.TABLES`).
    """
    if not isinstance(module, HumrModule):
        module = HumrModule.from_checkpoint(str(module), num_samples_eval=num_samples,
                                            temperature=temperature)
    elif (module.num_samples_eval, module.temperature) != (num_samples, temperature):
        # the same model with another hypothesis count or temperature
        module = HumrModule(module.config, num_samples_eval=num_samples, model=module.model,
                            gt_bodies=module.gt_bodies, temperature=temperature)
    cfg = module.config.train
    data = HumrDataModule(str(data_root), batch_size=cfg.batch_size,
                          eval_batch_size=batch_size or cfg.eval_batch_size,
                          seed=cfg.seed, test_split=split, max_eval_examples=max_examples,
                          **datamodule_options(module.config, data_root))
    trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes,
                        strategy=strategy, precision=cfg.precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=progress,
                        enable_model_summary=False, use_distributed_sampler=False)
    trainer.test(module, datamodule=data, verbose=False)
    # callback_metrics come back to this process under every strategy (ddp_spawn included)
    return {k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items()
            if k.startswith("test/")}


def load_examples(data_root: PathLike, indices: Sequence[int], split: str = "test",
                  config=None) -> dict:
    """Collate the examples ``indices`` of a split into one batch (schema of the dataset;
    ``config.data.format`` selects the reader, default humr's folders)."""
    from humr.data import make_dataloader

    options = datamodule_options(config, data_root) if config is not None else {}
    if "dataset_fn" in options:
        from torch.utils.data import DataLoader, default_collate

        loader = DataLoader(options["dataset_fn"](split, False), collate_fn=default_collate)
    else:
        loader = make_dataloader(str(data_root), split, batch_size=1, shuffle=False,
                                 num_workers=0, augment=False, seed=0)
    n = len(loader.dataset)
    bad = [i for i in indices if not 0 <= int(i) < n]
    if bad or not len(indices):
        raise IndexError(f"indices {bad or list(indices)} invalid for split '{split}' with {n} "
                         "examples (give at least one index in [0, n))")
    dataset = IndexedDataset(loader.dataset)
    return loader.collate_fn([dataset[int(i)] for i in indices])


@torch.no_grad()
def sample_hypotheses(module: HumrModule, batch: dict, num_samples: int, seed: int = 0,
                      return_vertices: bool = False) -> dict[str, np.ndarray]:
    """Draw ``num_samples`` hypotheses (hypothesis 0 = the mode) per example of ``batch`` (from
    :func:`load_examples`) at the module's sampling temperature; with
    ``seed = config.train.seed`` they are those of the evaluation.

    Returns:
        numpy arrays of the model output (docs/conventions.md: ``rotmat``, ``betas``, ``cam_t``,
        ``log_prob``, ``joints3d``, ``keypoints3d``, ``keypoints2d``, ... and ``vertices`` when
        asked) plus ``pose`` (B, S, J*3) axis-angle.
    """
    from humr.geometry import matrix_to_axis_angle

    module.eval()
    batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    z = example_latents(batch["index"], num_samples, module.model.pose_dim, seed,
                        module.model.dtype, module.device, module.temperature)
    out = module.model(batch, num_samples=num_samples, z=z,
                       outputs=("vertices",) if return_vertices else ())
    result = {k: v.detach().cpu().numpy() for k, v in out.items() if k != "context"}
    B, S = out["rotmat"].shape[:2]
    result["pose"] = matrix_to_axis_angle(out["rotmat"]).reshape(B, S, -1).cpu().numpy()
    return result
