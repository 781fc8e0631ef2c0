"""``humr train / eval / sample`` on a tiny configuration."""
import json
import math

import numpy as np
import pytest

from humr.cli import main
from humr.config import Config


@pytest.fixture(scope="module")
def trained(tiny_data, tiny_overrides, tmp_path_factory):
    """A 2-step run through ``humr train`` (config file + overrides)."""
    tmp = tmp_path_factory.mktemp("cli")
    config = Config.load(None, overrides=[*tiny_overrides, f"data.root={tiny_data}"]).save(tmp / "tiny.yaml")
    args = ["train", "--config", str(config), "train.lr=2e-3", "--out", str(tmp / "runs"),
            "--max-steps", "2", "--no-progress", "--devices", "1"]
    assert main(args) == 0
    return tmp / "runs" / "version_0"


def test_train_writes_run_folder_with_config_and_checkpoint(trained):
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    saved = (trained / "config.yaml").read_text()
    assert "lr: 0.002" in saved and "small_cnn" in saved
    assert list((trained / "csv").glob("session_0/metrics.csv"))


def test_eval_prints_tables_and_writes_json_once(trained, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    args = ["eval", "--ckpt", str(trained / "checkpoints" / "last.ckpt"), "--num-samples", "4",
            "--batch-size", "2", "--out", str(out), "--devices", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 2" in printed
    data = json.loads(out.read_text())
    assert data["num_samples"] == 4
    assert math.isfinite(data["metrics"]["emdb/mpjpe_min"])
    # synthetic data: the oracle (draws from the stored posterior) is printed and stored
    assert "oracle" in printed and data["oracle"]["num_samples"] == 4
    assert data["oracle"]["emdb/mpjpe_min"] <= data["oracle"]["emdb/mpjpe_mean"]
    capsys.readouterr()
    assert main(args) == 2                             # bad input: one line, exit code 2
    err = capsys.readouterr().err
    assert err.startswith("humr eval: error: --out") and "not overwriting" in err
    # default location: RUN/eval/test_S4.json, then test_S4_1.json
    default = args[:-4]
    assert main(default + ["--devices", "1"]) == 0 and main(default + ["--devices", "1"]) == 0
    assert sorted(p.name for p in (trained / "eval").iterdir()) == ["test_S4.json",
                                                                    "test_S4_1.json"]
    # another sampling temperature: named in the title, the JSON and its default name
    assert main(default + ["--devices", "1", "--temperature", "0.5"]) == 0
    assert "4 hypotheses per image at temperature 0.5" in capsys.readouterr().out
    assert json.loads((trained / "eval" / "test_S4_T0.5.json").read_text())["temperature"] == 0.5
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit) as stop:                # argparse: usage error, code 2
            main(default + ["--temperature", bad])
        assert stop.value.code == 2
        assert "temperature must be a finite number > 0" in capsys.readouterr().err


def test_sample_writes_hypotheses_with_the_mode_first(trained, tmp_path, capsys):
    ckpt = str(trained / "checkpoints" / "last.ckpt")
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"h{seed}.npz"
        assert main(["sample", "--ckpt", ckpt, "--indices", "0", "2", "--num-samples", "5",
                     "--vertices", "--seed", str(seed), "--out", str(path)]) == 0
        paths.append(np.load(path))
    a, b = paths
    assert a["indices"].tolist() == [0, 2]
    assert a["rotmat"].shape == (2, 5, 24, 3, 3) and a["pose"].shape == (2, 5, 72)
    assert a["vertices"].shape[:2] == (2, 5) and a["keypoints2d"].shape == (2, 5, 17, 2)
    np.testing.assert_allclose(a["rotmat"][:, 0], b["rotmat"][:, 0], atol=1e-6)   # mode: z = 0
    assert np.abs(a["rotmat"][:, 1:] - b["rotmat"][:, 1:]).max() > 1e-3          # random draws
    capsys.readouterr()
    assert main(["sample", "--ckpt", ckpt, "--out", str(tmp_path / "h0.npz")]) == 2
    assert "humr sample: error:" in capsys.readouterr().err
    assert main(["sample", "--ckpt", ckpt, "--indices", "99", "--out",
                 str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("humr sample: error:") and "invalid" in err and err.count("\n") == 1


def test_help_lists_the_engine_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("train", "eval", "sample", "demo"):
        assert name in text


def test_synth_writes_dataset_and_preview(tmp_path, capsys):
    """``humr synth --preview`` on a tiny size: a valid dataset folder and a 4 x 4 panel PNG."""
    import matplotlib.image

    from humr.data import HumrDataset
    from humr.data.format import read_meta

    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--n-train", "2", "--n-test", "1", "--crop-res",
                 "64", "--posterior-samples", "4", "--preview", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 train and 1 test examples" in printed and str(out / "preview.png") in printed
    meta = read_meta(out)
    assert meta["crop_res"] == 64 and meta["generator"]["posterior_samples"] == 4
    assert {s: v["count"] for s, v in meta["splits"].items()} == {"train": 2, "test": 1}
    item = HumrDataset(out, "train")[1]
    assert item["img"].shape == (3, 64, 64) and item["posterior"].shape == (4, 72)
    img = matplotlib.image.imread(out / "preview.png")[..., :3]
    h, w = img.shape[:2]
    assert 500 <= w <= 2000 and 0.6 * w <= h <= 2 * w          # 4 rows of 4 square panels
    drawn = img.sum(-1) < 2.9                                     # not the white figure background
    for r in range(4):
        for c in range(4):
            cell = drawn[r * h // 4:(r + 1) * h // 4, c * w // 4:(c + 1) * w // 4]
            assert cell.mean() > 0.05, (r, c)
    assert main(["synth", "--out", str(tmp_path / "plain"), "--n-train", "1", "--n-test", "0",
                 "--posterior-samples", "2", "--no-progress"]) == 0
    assert not (tmp_path / "plain" / "preview.png").exists()
    assert len(HumrDataset(tmp_path / "plain", "train")) == 1


def test_bench_runs_the_named_script_with_its_arguments(tmp_path, capsys):
    (tmp_path / "helper_mod.py").write_text("VALUE = 41\n")
    (tmp_path / "bench_toy.py").write_text(
        "import sys, pathlib\nfrom helper_mod import VALUE\n"
        "if __name__ == '__main__':\n"
        "    pathlib.Path(sys.argv[2]).write_text(f'{sys.argv[1]} {VALUE + 1}')\n")
    out = tmp_path / "out.txt"
    assert main(["bench", "--benchmarks", str(tmp_path), "toy", "x", str(out)]) == 0
    assert out.read_text() == "x 42"
    assert main(["bench", "--benchmarks", str(tmp_path), "nope"]) == 2
    assert "known benchmarks: toy" in capsys.readouterr().err


def test_synth_generator_is_the_config_data_synth(tmp_path, body_dir, capsys):
    """``humr synth``: data.synth from --config, then dotted overrides, then the shorthand
    options; meta.json records it and a folder of other parameters is refused."""
    from humr.data.format import read_meta

    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  root: {tmp_path / 'from_config'}\n  synth:\n    crop_res: 48\n"
                      f"    candidates: 16\n    max_rounds: 1\n    body_model: {body_dir}\n")
    fast = ["--n-train", "1", "--n-test", "0", "--no-progress"]
    assert main(["synth", "--config", str(config), "data.synth.posterior_samples=3",
                 "data.synth.crop_res=40", *fast]) == 0
    meta = read_meta(tmp_path / "from_config")                  # --out defaults to data.root
    assert meta["crop_res"] == 40 and meta["generator"]["crop_res"] == 40
    assert (meta["generator"]["posterior_samples"], meta["generator"]["candidates"],
            meta["generator"]["max_rounds"]) == (3, 16, 1)
    # the shorthand option wins over the dotted override
    out = tmp_path / "short"
    assert main(["synth", "--config", str(config), "data.synth.crop_res=40",
                 "data.synth.posterior_samples=3", "--crop-res", "32", "--out", str(out),
                 *fast]) == 0
    assert read_meta(out)["generator"]["crop_res"] == 32
    capsys.readouterr()
    assert main(["synth", "--config", str(config), "--out", str(out), *fast]) == 2
    assert "other parameters" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "data.synth.crop_rez=3", *fast]) == 2
    assert "data.synth.crop_rez" in capsys.readouterr().err
