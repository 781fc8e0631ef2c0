"""``humr demo``: the quick configuration end to end (CI), the full one marked slow."""
import json
import math

import numpy as np
import pytest

from humr.cli import main


def _figures_are_images(paths):
    import cv2

    for path in paths:
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 100, path
        assert img.reshape(-1, 3).std(axis=0).max() > 5, f"{path} is blank"


def _run_demo(out, *extra):
    assert main(["demo", "--out", str(out), *extra]) == 0
    runs = sorted((out / "runs").glob("version_*"))
    report = json.loads((runs[-1] / "metrics.json").read_text())
    return runs[-1], report


def test_checks_compare_with_the_oracle():
    from humr.commands.demo import checks

    oracle = {"emdb/mpjpe_min": 20.0, "energy_occluded": 10.0}
    good = {"emdb/mpjpe_min": 39.0, "energy_occluded": 14.9, "spread_invisible": 50.0,
            "spread_visible": 5.0}
    assert all(checks(good, oracle).values())
    bad = {**good, "emdb/mpjpe_min": 41.0, "energy_occluded": 15.1}
    assert list(checks(bad, oracle).values()) == [False, False, True]


@pytest.mark.timeout(300)
def test_quick_demo_writes_metrics_figures_and_checks(tmp_path, capsys):
    run, report = _run_demo(tmp_path, "--quick")
    metrics = report["metrics"]
    for key in ("emdb/mpjpe_mode", "emdb/mpjpe_min", "emdb/pa_mpjpe_min", "emdb/pve_min",
                "kp2d_mode", "kp2d_samples"):
        assert math.isfinite(metrics[key]), key
    # the checks compare with the oracle (min <= mode holds by construction: not a check)
    assert set(report["checks"]) == {"best_of_n_mpjpe_within_2x_oracle",
                                     "energy_occluded_within_1.5x_oracle_floor",
                                     "spread_invisible_above_visible"}
    oracle = report["oracle"]
    assert oracle["num_examples"] == 8 and oracle["num_samples"] == 100
    assert 0 <= oracle["emdb/mpjpe_min"] <= oracle["emdb/mpjpe_mean"]
    figures = [run / "figures" / name for name in
               ("hypotheses2d", "meshes", "uncertainty")]
    written = sorted((run / "figures").glob("*.png"))
    assert {p.name.split("_")[0] for p in written} == {f.name for f in figures}
    _figures_are_images(written)
    printed = capsys.readouterr().out
    assert "check best_of_n_mpjpe_within_2x_oracle" in printed and "Table 1" in printed
    assert "model vs oracle" in printed
    oracle_checks = [ok for name, ok in report["checks"].items() if "oracle" in name]
    assert ("measured the oracle checks out of reach" in printed) == (not all(oracle_checks))
    # a second run reuses the cached data and writes a new run folder
    run2, _ = _run_demo(tmp_path, "--quick", "--steps", "2")
    assert run2.name == "version_1" and (run / "metrics.json").is_file()
    assert "data: " in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xfail(strict=True, reason="the oracle checks are out of reach on this benchmark, "
                   "which hides the body's size (the exact posterior posed with the shape the "
                   "keypoints tell is 4.4x the oracle's best-of-100 and 5.8x its E-dist floor; "
                   "benchmarks/README.md, issue 16); the demo measured best-of-100 122 mm "
                   "against the oracle's 10.7 mm. Remove this marker if a protocol reaches them")
def test_full_demo_shows_the_method_working(tmp_path):
    _, report = _run_demo(tmp_path)
    assert all(report["checks"].values()), report["checks"]
    assert report["metrics"]["emdb/mpjpe_min"] < 0.9 * report["metrics"]["emdb/mpjpe_mode"]
    assert np.isfinite(report["metrics"]["energy_occluded"])


def test_demo_generates_with_the_config_data_synth(tmp_path, monkeypatch):
    """``humr demo key=value``: the overrides reach the configuration, and its data.synth (not
    the demo's own defaults) is what generates the dataset."""
    import humr.data.synthetic

    class Generated(Exception):
        pass

    def fake_generate(root, **kwargs):
        raise Generated(root, kwargs)

    from humr.cli import build_parser

    monkeypatch.setattr(humr.data.synthetic, "generate", fake_generate)
    args = build_parser("demo").parse_args(
        ["demo", "--quick", "--out", str(tmp_path), "data.synth.crop_res=96",
         "data.synth.prob_occluder=0.5", f"data.root={tmp_path / 'mine'}"])
    with pytest.raises(Generated) as caught:
        args._run(args)
    root, kwargs = caught.value.args
    assert str(root) == str(tmp_path / "mine")
    assert (kwargs["config"].crop_res, kwargs["config"].prob_occluder) == (96, 0.5)
    assert (kwargs["n_train"], kwargs["n_test"]) == (48, 8)


@pytest.mark.parametrize("preset", ["full", "quick"])
def test_demo_trains_configs_demo_yaml_resized(preset, tmp_path):
    """The demo's model, losses and optimiser are those of configs/demo.yaml (one source): its
    overrides only size the run and point it at its data."""
    from humr.commands.demo import PRESETS, demo_overrides
    from humr.config import Config
    from humr.engine.train import config_changes
    from humr.resources import preset_config

    shipped = Config.load(preset_config("demo"))
    demo = Config.load(preset_config("demo"), demo_overrides(PRESETS[preset], tmp_path, 3))
    changed = set(config_changes(shipped, demo))
    sizing = {"data.root", "train.batch_size", "train.eval_batch_size", "train.max_steps",
              "train.val_every", "train.ckpt_every", "train.val_examples", "train.val_batches",
              "train.seed"}
    assert "data.root" in changed and changed <= sizing, changed - sizing
    assert demo.train.weight_decay == 0.0 and demo.model.flow.name == "realnvp"
    assert demo.train.seed == 3 and demo.train.max_steps == PRESETS[preset]["steps"]


def test_preset_config_is_package_data_and_names_the_shipped_ones():
    from pathlib import Path

    import humr
    from humr.resources import preset_config

    package = Path(humr.__file__).resolve().parent
    for name in ("cpu", "demo", "paper"):
        assert preset_config(name).parent == package / "configs"
    root = package.parent / "configs"        # the source checkout's link
    assert (root / "demo.yaml").read_bytes() == preset_config("demo").read_bytes()
    with pytest.raises(FileNotFoundError, match="shipped: cpu, demo, paper"):
        preset_config("gpu")
