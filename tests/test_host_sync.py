"""The training step makes no host synchronisation: model forward + objective + backward on CPU,
with the Python entry points that read a tensor's value on the host counted (``item``,
``tolist``, ``__bool__``, ``__int__``, ``__float__``, ``__index__``, ``nonzero``, ``numpy``,
``cpu``). On a GPU each of them would wait for the device.

Each read is attributed to the innermost humr source file on the stack. The model, body model,
objective and every loss of the default configuration (the mask loss's dilation and
point-to-mask tests included, ``humr/core/masks.py``) make none (input checks are opt-in,
``validate_args``). On the CPU the mask loss reads the indices of the penalised points and
the body model those of the joints and regressed vertices a tile uses (host reads that cost
nothing there); the tests run their accelerator paths.
"""
from __future__ import annotations

import contextlib
import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch
from _batches import make_batch

from humr.model import build_model

HUMR_ROOT = Path(__file__).resolve().parents[1] / "humr"
#: files of the model + objective step that must not read device values on the host
MODEL_FILES = ("model.py", "objective.py", "geometry.py", "head.py", "conditions/", "flows/")

SYNCING = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "numpy",
           "cpu")


def _origin() -> str:
    """The innermost humr file on the stack (relative to the package), or '(outside humr)'."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename).resolve()
        if HUMR_ROOT in path.parents and path.name != "test_host_sync.py":
            return path.relative_to(HUMR_ROOT).as_posix()
    return "(outside humr)"


@contextlib.contextmanager
def count_host_reads(monkeypatch):
    """Counts calls of :data:`SYNCING` on tensors inside the block: Counter of
    ``(origin file, method)``."""
    counts: Counter = Counter()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            counts[(_origin(), _name)] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    try:
        yield counts
    finally:
        monkeypatch.undo()


def _in_model(counts: Counter) -> dict:
    return {k: v for k, v in counts.items() if k[0].startswith(MODEL_FILES)}


@pytest.fixture(scope="module")
def model(body_dir):
    from humr.body import BodyModel

    return build_model(body=BodyModel(body_dir), conditions=["image", "pose2d", "bbox", "diffpose"],
                       losses=["nll", "betas", "orth", "cam"], overrides=[
                           "model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=2",
                           "model.flow.hidden_features=32", "model.head.hidden=32",
                           "model.conditions.diffpose.d_model=16",
                           "model.conditions.diffpose.num_samples=8"])


def test_the_counter_sees_host_reads(monkeypatch):
    x = torch.ones(3)
    with count_host_reads(monkeypatch) as counts:
        bool(torch.isfinite(x).all())
        x.sum().item()
        x.tolist()
        torch.nn.functional.pad(x, (1, 1)).tolist()
    outside = "(outside humr)"
    assert counts == {(outside, "__bool__"): 1, (outside, "item"): 1, (outside, "tolist"): 2}
    from humr.flows import build_flow

    flow = build_flow("nice", dim=6, context_dim=2, num_blocks=1, hidden_features=4)
    flow.validate_args = True                      # opt-in NaN checks are host reads
    with count_host_reads(monkeypatch) as counts:
        flow.sample(torch.zeros(1, 2), 2)
    assert _in_model(counts) == {("flows/base.py", "__bool__"): 1}


@pytest.fixture
def accelerator_paths(monkeypatch):
    """The device-dependent choices of an accelerator, on the CPU (``monkeypatch`` undoes
    them after the test)."""
    import humr.body.model
    import humr.losses.mask

    monkeypatch.setattr(humr.losses.mask, "COMPACT_SEARCH_DEVICES", ())
    monkeypatch.setattr(humr.body.model, "SPARSE_TILE_DEVICES", ())


def test_model_forward_gt_density_and_backward_make_no_host_sync(model, monkeypatch,
                                                                 accelerator_paths):
    batch = make_batch()
    model.train()
    with count_host_reads(monkeypatch) as counts:
        out = model(batch, num_samples=6)
        total, _ = model.loss(batch, out)
        total.backward()
    assert dict(counts) == {}              # body model and these losses included


def test_the_whole_step_makes_no_host_sync(body_dir, monkeypatch, accelerator_paths):
    """The step as it runs on an accelerator: the mask loss searches every point there
    (``COMPACT_SEARCH_DEVICES``; on the CPU it reads the penalised points' indices)."""
    from humr.body import BodyModel

    full = build_model(body=BodyModel(body_dir), overrides=[
        "model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=2",
        "model.flow.hidden_features=32", "model.head.hidden=32"])
    assert {"mask", "mmd", "nll"} <= set(full.objective.losses)
    batch = make_batch()
    assert batch["mask"].flatten(1).any(1).all() and batch["mask_valid"].all()
    with count_host_reads(monkeypatch) as counts:
        out = full(batch, num_samples=6)
        total, _ = full.loss(batch, out)
        total.backward()
    assert dict(counts) == {}
