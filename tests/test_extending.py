"""Extending humr (docs/extending.md): a flow from plain nflows transforms (the base class
broadcasts the context over the hypotheses), a loss and a conditioner, registered by a user
module, run through build_model and ``humr --import MODULE train``."""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _batches import make_batch
from _subprocess import python_env

from humr.registry import CONDITIONS, FLOWS, LOSSES

ROOT = Path(__file__).resolve().parents[1]

USER_MODULE = textwrap.dedent('''
    """User components: a masked autoregressive flow, a loss and a conditioner."""
    import torch
    from nflows.transforms import (CompositeTransform, MaskedAffineAutoregressiveTransform,
                                   ReversePermutation)
    from torch import nn

    from humr.flows import ConditionalFlow
    from humr.registry import CONDITIONS, FLOWS, LOSSES


    @FLOWS.register("maf")
    class MAFFlow(ConditionalFlow):
        """Plain nflows MAF blocks; the base class hands them one context row per hypothesis."""

        def __init__(self, dim: int, context_dim: int, num_blocks: int = 2,
                     hidden_features: int = 32):
            layers = []
            for _ in range(num_blocks):
                layers += [MaskedAffineAutoregressiveTransform(
                    dim, hidden_features, context_features=context_dim), ReversePermutation(dim)]
            super().__init__(CompositeTransform(layers), dim, context_dim)


    @LOSSES.register("cam_offset")
    class CamOffsetLoss(nn.Module):
        """Mean squared weak-perspective translation [tx, ty] of all hypotheses."""

        def forward(self, batch, out):
            return out["cam"][..., 1:].square().mean()


    @CONDITIONS.register("box_size")
    class BoxSize(nn.Module):
        """The crop side in units of ``unit`` pixels, (B, 1)."""

        out_dim = 1

        def __init__(self, unit: float = 200.0):
            super().__init__()
            self.unit = unit

        def forward(self, batch):
            return batch["scale"] * (200.0 / self.unit)
''')


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    path = folder / "humr_user_ext.py"
    path.write_text(USER_MODULE)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("humr_user_ext"), path
    finally:                      # leave the registries as other test modules expect them
        sys.path.remove(str(folder))
        sys.modules.pop("humr_user_ext", None)
        FLOWS.unregister("maf")
        LOSSES.unregister("cam_offset")
        CONDITIONS.unregister("box_size")


def test_nflows_flow_gets_the_context_broadcast_over_hypotheses(user_module):
    """MAF (context rows must equal data rows) works for S > 1: each hypothesis' density equals
    the density of that one hypothesis under its own image's context."""
    flow = user_module[0].MAFFlow(dim=6, context_dim=3, num_blocks=2, hidden_features=16)
    assert not flow.per_image_context
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    context = torch.randn(2, 3)
    x, logp, _ = flow.sample(context, 4)
    assert x.shape == (2, 4, 6) and logp.shape == (2, 4)
    torch.testing.assert_close(flow.log_prob(x, context), logp, atol=1e-4, rtol=1e-4)
    for b in range(2):
        for s in range(4):
            one = flow.log_prob(x[b:b + 1, s:s + 1], context[b:b + 1])
            torch.testing.assert_close(one[0, 0], logp[b, s], atol=1e-4, rtol=1e-4)


def test_user_components_run_through_build_model(user_module, body_dir):
    from humr.body import BodyModel
    from humr.model import build_model

    model = build_model(body=BodyModel(body_dir), flow="maf", conditions=["box_size", "bbox"],
                        losses=["nll", "cam_offset"],
                        overrides=["model.flow.hidden_features=16", "model.head.hidden=16",
                                   "losses.cam_offset.weight=0.5", "model.conditions.box_size.unit=100"])
    assert type(model.flow).__name__ == "MAFFlow" and model.context_dim == 4
    assert model.objective.weights == {"nll": 0.1, "cam_offset": 0.5}
    batch = make_batch()
    torch.testing.assert_close(model.conditions["box_size"](batch), 2 * batch["scale"])
    out = model(batch, num_samples=5)
    total, parts = model.loss(batch, out)
    torch.testing.assert_close(parts["cam_offset"], out["cam"][..., 1:].square().mean())
    total.backward()
    assert all(torch.isfinite(v) for v in parts.values())


@pytest.mark.timeout(300)
def test_humr_import_trains_user_components_from_the_demo_config(user_module, tiny_data, tmp_path):
    """``humr --import FILE train --config configs/demo.yaml`` with tiny overrides: the shipped
    config trains, with the user's flow, loss and conditioner."""
    path = user_module[1]
    env = python_env(ROOT)
    args = [sys.executable, "-m", "humr.cli", "--import", str(path), "train",
            "--config", str(ROOT / "configs" / "demo.yaml"), f"data.root={tiny_data}",
            "model.flow=maf", "model.flow.hidden_features=16", "model.head.hidden=16",
            "model.conditions=[image,pose2d,bbox,box_size]",
            "model.conditions.image.backbone.width=8", "model.conditions.image.backbone.num_layers=2",
            "losses.cam_offset.weight=0.1", "train.batch_size=4", "train.num_samples_train=4",
            "--max-steps", "2", "--out", str(tmp_path / "runs"), "--no-progress",
            "--devices", "1", "--accelerator", "cpu"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    saved = (run / "config.yaml").read_text()
    assert "name: maf" in saved and "cam_offset" in saved and "box_size" in saved
    # without --import the user's names are unknown, and the error says how to load them
    done = subprocess.run(args[:3] + args[5:], env=env, capture_output=True, text=True,
                          timeout=280, check=False)
    assert done.returncode != 0 and "--import" in done.stderr


def test_import_errors_are_one_line(tmp_path, capsys):
    from humr.cli import main

    for target in ("humr_no_such_module_xyz", str(tmp_path / "missing.py")):
        with pytest.raises(SystemExit) as info:
            main(["--import", target, "train", "--help"])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"humr: error: --import {target}") and "\n" not in err
