"""Subnormal weights and optimiser state set to zero in CPU training (humr.engine.denormals)."""
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from humr.engine.denormals import FlushDenormals, flush_denormals


def test_flush_denormals_zeroes_exactly_the_subnormal_entries():
    f32 = torch.tensor([1e-39, -1e-45, 1.2e-38, 0.5, 0.0, -3e-40])      # 1.2e-38 > tiny: normal
    f64 = torch.tensor([1e-310, 1e-39, 0.0], dtype=torch.float64)       # 1e-39 is normal in f64
    ints = torch.tensor([0, 1, 2])
    assert flush_denormals([f32, f64, ints]) == 4
    assert f32.tolist() == [0.0, 0.0, pytest.approx(1.2e-38), 0.5, 0.0, 0.0]
    assert f64.tolist() == [0.0, 1e-39, 0.0] and ints.tolist() == [0, 1, 2]
    assert flush_denormals([f32]) == 0                                  # nothing left


class _Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)


def test_callback_flushes_parameters_and_optimiser_state_on_its_steps():
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.layer(torch.randn(2, 4)).sum().backward()
    opt.step()                                                          # creates exp_avg(_sq)
    with torch.no_grad():
        net.layer.weight[0, 0] = 1e-39
    opt.state[net.layer.weight]["exp_avg"][1, 1] = -2e-40
    callback = FlushDenormals(every=100)
    trainer = SimpleNamespace(global_step=150, optimizers=[opt])
    callback.on_train_batch_end(trainer, net, None, None, 0)           # not a flush step
    assert net.layer.weight[0, 0].item() == pytest.approx(1e-39) and callback.flushed == 0
    trainer.global_step = 200
    callback.on_train_batch_end(trainer, net, None, None, 0)
    assert net.layer.weight[0, 0].item() == 0.0
    assert opt.state[net.layer.weight]["exp_avg"][1, 1].item() == 0.0
    assert callback.flushed == 2
    with pytest.raises(ValueError, match="every"):
        FlushDenormals(every=0)


def test_trainer_gets_the_callback_from_the_config(tmp_path, tiny_config):
    from humr.engine.train import build_trainer, validate_train_config

    trainer = build_trainer(tmp_path, tiny_config, progress=False)
    flush = [c for c in trainer.callbacks if isinstance(c, FlushDenormals)]
    assert len(flush) == 1 and flush[0].every == tiny_config.train.flush_denormals_every == 100
    tiny_config.train.flush_denormals_every = 0
    assert not any(isinstance(c, FlushDenormals)
                   for c in build_trainer(tmp_path, tiny_config, progress=False).callbacks)
    tiny_config.train.flush_denormals_every = -1
    with pytest.raises(ValueError, match="train.flush_denormals_every"):
        validate_train_config(tiny_config)


def test_flush_to_zero_is_scoped_and_commands_leave_it_off(tmp_path):
    from humr.cli import main
    from humr.core.numerics import flush_to_zero, hardware_flush_on

    assert not hardware_flush_on()
    with flush_to_zero() as supported:
        if supported:
            assert hardware_flush_on() and float(torch.tensor([1e-39]) * 1.0) == 0.0
    assert not hardware_flush_on() and float(torch.tensor([1e-39]) * 1.0) > 0.0
    assert main(["synth", "--out", str(tmp_path / "data"), "--n-train", "1", "--n-test", "0",
                 "--no-progress", "data.synth.candidates=16", "data.synth.max_rounds=1",
                 "data.synth.crop_res=40"]) == 0                      # a whole command
    assert not hardware_flush_on()
