"""benchmarks/temperature_sweep.py on a one-step checkpoint of the tiny configuration."""
import json
import sys
from pathlib import Path

import pytest

from humr.engine.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import temperature_sweep


def test_sweep_prints_each_temperature_and_the_oracle(tiny_config, tiny_data, tmp_path, capsys):
    run = train(tiny_config.override(["train.max_steps=1"]), tmp_path / "runs", progress=False)
    out = tmp_path / "sweep.json"
    assert temperature_sweep.main(["--ckpt", str(run.last_checkpoint), "--data", str(tiny_data),
                                   "--temperatures", "1", "1e-6", "--num-samples", "4",
                                   "--out", str(out)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows] == ["| temperature", "| 1e-06", "| 1", "| oracle"]
    data = json.loads(out.read_text())
    cold, warm = data["temperatures"]["1e-06"], data["temperatures"]["1"]
    assert cold["emdb/mpjpe_min"] == pytest.approx(cold["emdb/mpjpe_mode"], abs=1e-3)
    assert cold["emdb/mpjpe_mode"] == pytest.approx(warm["emdb/mpjpe_mode"], rel=1e-6)
    assert warm["emdb/mpjpe_min"] < warm["emdb/mpjpe_mode"]
    assert data["oracle"]["num_samples"] == 4
