"""data.format=official end to end on a release-format tree (humr.data.official_fixture):
worker-process loading of the training mix, ``humr train --data-format official`` for a few
steps, ``humr eval`` printing Tables 1 / 2 beside the paper's numbers with PercIn / MinDist on
the EMDB masks, ``humr sample`` on an official split, and the report's JSON."""
import json

import numpy as np
import pytest
import torch

from humr.cli import main
from humr.config import Config
from humr.data.official_fixture import write_release
from humr.data.official_release import datamodule_options, official_dataset
from humr.data.official_report import (
    PAPER,
    ablation_metrics,
    format_paper_tables,
    paper_rows,
    write_json_atomic,
)
from humr.engine.module import HumrModule

TRAIN = ["static-hdri", "closeup-gym", "agora-bfh", "3dpw-train-smplx"]
TINY = ["model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=2", "model.flow.hidden_features=32",
        "model.head.hidden=32", "losses=[nll,mmd,mask,kp2d_mode,betas,orth]",
        "data.augment=false", "train.batch_size=4", "train.eval_batch_size=4",
        "train.num_workers=0", "train.num_samples_train=4", "train.num_samples_eval=4",
        "train.max_steps=2", "train.val_every=100", "train.ckpt_every=2", "data.crop_res=48",
        f"data.train_splits=[{','.join(TRAIN)}]"]
CPU = ["--accelerator", "cpu", "--devices", "1"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    return root, write_release(root, rows=8, hm_samples=40)


def test_training_mix_streams_through_worker_processes(release):
    root, manifest = release
    mix = official_dataset(root, "train", train_splits=TRAIN, crop_res=48, num_samples=16)
    assert len(mix) == sum(len(manifest[n]["kept"]) for n in TRAIN)
    loader = torch.utils.data.DataLoader(mix, batch_size=5, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["pose"]) for b in batches) == len(mix)
    first = batches[0]
    assert first["img"].shape == (5, 3, 48, 48) and first["hm_samples"].shape == (5, 17, 16, 2)
    assert first["pose"].shape == (5, 72) and first["betas"].shape == (5, 10)
    torch.testing.assert_close(first["pose"][0], mix[0]["pose"])
    with pytest.raises(ValueError, match="evaluation split"):
        official_dataset(root, "train", train_splits=["emdb-p1"])
    with pytest.raises(ValueError, match="data.format"):
        datamodule_options(Config.load(None, overrides=["data.format=shards"]), root)


def test_train_eval_sample_on_the_release_tree(release, tmp_path, capsys):
    root, _ = release
    cfg = tmp_path / "cfg.yaml"
    Config.load(None, overrides=TINY).save(cfg)
    assert main(["train", "--config", str(cfg), "--data", str(root), "--data-format",
                 "official", "--out", str(tmp_path / "runs"), "--no-progress", *CPU]) == 0
    ckpt = tmp_path / "runs" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(root), "--num-samples", "4",
                 "--out", str(out), *CPU]) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 2" in printed and "62.200" in printed
    result = json.loads(out.read_text())
    assert result["format"] == "official"
    metrics = result["metrics"]
    assert set(metrics) == {"3dpw-test-cam", "emdb-p1", "emdb-p1-occl"}
    for key in ("3dpw/mpjpe_mode", "3dpw/pa_mpjpe_min", "kp2d_mode", "spread_visible"):
        assert np.isfinite(metrics["3dpw-test-cam"][key])
    # PercIn / MinDist from the EMDB masks (valid rows only); emdb-p1 carries no masks
    occl = metrics["emdb-p1-occl"]
    assert 0 <= occl["perc_in"] <= 100 and occl["min_dist"] >= 0
    assert np.isnan(metrics["emdb-p1"]["perc_in"])
    assert len(result["paper"]) == len(PAPER)
    # a separate ground-truth body folder: the procedural one falls back to neutral (the run's
    # body here), with a warning, so the numbers are the same
    with pytest.warns(UserWarning, match="no gendered models"):
        assert main(["eval", "--ckpt", str(ckpt), "--data", str(root), "--num-samples", "4",
                     "--split", "3dpw-test-cam", "--gt-body-dir", "procedural",
                     "--out", str(tmp_path / "eval_gt.json"), *CPU]) == 0
    again = json.loads((tmp_path / "eval_gt.json").read_text())
    assert again["gt_body"] == "procedural" and again["checkpoint_kind"] == "humr"
    assert again["metrics"]["3dpw-test-cam"] == pytest.approx(metrics["3dpw-test-cam"], nan_ok=True)
    # an ablation run on the release: 3DPW metrics with the EMDB mask metrics (same latents)
    module = HumrModule.from_checkpoint(str(ckpt))
    assert module.config.data.format == "official" and module.config.data.root == str(root)
    abl = ablation_metrics(module, root, num_samples=4, accelerator="cpu", devices=1)
    assert abl["3dpw/mpjpe_mode"] == pytest.approx(metrics["3dpw-test-cam"]["3dpw/mpjpe_mode"])
    assert abl["perc_in"] == pytest.approx(occl["perc_in"])
    npz = tmp_path / "s.npz"
    assert main(["sample", "--ckpt", str(ckpt), "--data", str(root), "--data-format",
                 "official", "--split", "emdb-p1", "--indices", "0", "2", "--num-samples", "3",
                 "--out", str(npz)]) == 0
    with np.load(npz) as f:
        assert f["pose"].shape == (2, 3, 72)


def test_ablation_never_generates_into_a_release_folder(release, tmp_path):
    from humr.ablation.presets import load_size
    from humr.ablation.runner import ensure_data

    paper = load_size("paper")
    assert paper.config["data"]["format"] == "official"
    root, _ = release
    assert ensure_data(root, paper) == root and not (root / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="annotations"):
        ensure_data(tmp_path, paper)


def test_report_rows_and_layout(tmp_path):
    results = {"3dpw-test-cam": {"3dpw/mpjpe_mode": 70.0, "kp2d_mode": float("nan")},
               "emdb-p1-occl": {"perc_in": 90.0, "min_dist": 0.5}}
    rows = {(r["set"], r["metric"]): r for r in paper_rows(results)}
    assert rows[("3dpw-test-cam", "3dpw/mpjpe_mode")] == {
        "table": "Table 1", "set": "3dpw-test-cam", "metric": "3dpw/mpjpe_mode", "paper": 62.2,
        "humr": 70.0}
    assert rows[("3dpw-test-cam", "kp2d_mode")]["humr"] is None
    assert rows[("emdb-p1", "emdb/pve_min")] == {
        "table": "Table 1", "set": "emdb-p1", "metric": "emdb/pve_min", "paper": 72.0,
        "humr": None}
    assert rows[("emdb-p1-occl", "min_dist")]["paper"] == 0.616
    text = format_paper_tables(results, 100).splitlines()
    mode_rows = [line for line in text if line.strip().startswith("best of 1 ")]
    assert mode_rows[0].split()[4:] == ["62.200", "40.900", "73.900", "84.300", "56.100",
                                        "97.700"]
    assert mode_rows[1].split()[4:] == ["70.000"] + ["n/a"] * 5
    emdb = next(line for line in text if line.strip().startswith("EMDB") and "humr" in line)
    assert emdb.split()[-2:] == ["90.000", "0.500"]
    path = write_json_atomic({"a": 1}, tmp_path / "r.json")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]          # no temporary left
    with pytest.raises(FileExistsError):
        write_json_atomic({"a": 2}, path)
