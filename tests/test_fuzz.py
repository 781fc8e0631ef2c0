"""Fuzz and fault tests: crafted and corrupted files of every kind humr reads, bad numeric
options, full disks and kills. Each case asserts the outcome: a clear error naming the file
(or key / option), or correct behaviour; crafted files never run code (their payload would
create a marker file). The unmarked cases are fast; end-to-end ones are ``slow``."""
import gzip
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _payload import Payload
from _subprocess import python_env

from humr.cli import main
from humr.data import HumrDataset
from humr.data.format import read_shard
from humr.data.schema import DataFormatError
from humr.io import CheckpointError, load_checkpoint_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "payload_ran"
    yield path
    assert not path.exists(), "a crafted file executed code"


def _copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


def _cli(capsys, *argv):
    """(exit code, stderr) of ``humr ARGV``; argparse errors exit through SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------- crafted: no code
def test_crafted_body_pickle_runs_no_code(tmp_path, marker):
    from humr.body import BodyModel

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": Payload(marker)}))
    with pytest.raises(ValueError, match=f"cannot read body model {path}.*refusing to load posix.system"):
        BodyModel(str(path))


def test_crafted_cache_file_runs_no_code(tmp_path, marker, monkeypatch):
    """A pickle planted where the procedural body is cached ($HUMR_HOME)."""
    from humr.body import BodyModel
    from humr.body.procedural import default_body_dir

    monkeypatch.setenv("HUMR_HOME", str(tmp_path / "home"))
    folder = default_body_dir()                              # generated once, then replaced
    (folder / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps([Payload(marker)]))
    with pytest.raises(ValueError, match="SMPL_NEUTRAL.pkl"):
        BodyModel("procedural")


def test_crafted_npz_shard_runs_no_code(small_synth, tmp_path, marker):
    root = _copy_dataset(small_synth, tmp_path / "data")
    shard = root / "train" / "shard_00000.npz"
    arrays = read_shard(shard)
    arrays["center"] = np.array([Payload(marker)], dtype=object)
    np.savez(shard, **arrays)
    with pytest.raises(DataFormatError, match=str(shard)):
        HumrDataset(root, "train")


def test_crafted_official_npz_and_heatmap_gz_run_no_code(tmp_path, marker):
    from humr.data.official_io import read_heatmap_samples, read_npz

    annot = {"imgname": np.array(["a.png"]), "center": np.array([[20.0, 20.0]]),
             "scale": np.array([0.1])}
    bad = tmp_path / "crafted.npz"
    np.savez(bad, **{**annot, "imgname": np.array([Payload(marker)], dtype=object)})
    with pytest.raises(DataFormatError, match=f"{bad}: key 'imgname' is an object array"):
        read_npz(bad)
    names = tmp_path / "names.npz"          # the release's object arrays of strings still read
    np.savez(names, **{**annot, "imgname": np.array(["a.png"], dtype=object)})
    assert read_npz(names)["imgname"].tolist() == ["a.png"]
    gz = tmp_path / "0000000.npy.gz"
    with gzip.open(gz, "wb") as f:
        np.save(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match=str(gz)):
        read_heatmap_samples(gz)


def test_crafted_checkpoint_via_cli_runs_no_code(tmp_path, marker, capsys):
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload(marker)}, path)
    code, err = _cli(capsys, "eval", "--ckpt", str(path))
    assert code == 2
    assert err.startswith(f"humr eval: error: {path}: refused to load") and err.count("\n") == 1


# ------------------------------------------------------------------------ corrupted inputs
def _flip(data: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    for pos in rng.integers(0, len(buf), 8):
        buf[pos] ^= 0xFF
    return bytes(buf)


@pytest.mark.parametrize("mutate", [
    lambda b: b[: len(b) // 2],                              # truncated (e.g. a full disk)
    lambda b: b"",
    lambda b: os.urandom(len(b)),
    lambda b: _flip(b, 0), lambda b: _flip(b, 1), lambda b: _flip(b, 2),
], ids=["truncated", "empty", "random", "flip0", "flip1", "flip2"])
def test_corrupted_shard_names_the_file(small_synth, tmp_path, mutate):
    root = _copy_dataset(small_synth, tmp_path / "data")
    shard = root / "train" / "shard_00001.npz"
    shard.write_bytes(mutate(shard.read_bytes()))
    try:
        ds = HumrDataset(root, "train")
    except DataFormatError as err:
        assert str(shard) in str(err)
        return
    # a flip inside stored padding can leave the file readable: then it must still be valid
    assert len(ds) == 3 and all(torch.isfinite(ds[i]["center"]).all() for i in range(3))


@pytest.mark.parametrize("meta, expected", [
    ("{not json", "not valid JSON"),
    ('{"format": "other", "version": 1}', "format 'other'"),
    (None, "leads outside the dataset folder"),
    ("absolute", "leads outside the dataset folder"),
], ids=["json", "format", "parent", "absolute"])
def test_bad_meta_json_names_the_file(small_synth, tmp_path, meta, expected):
    root = _copy_dataset(small_synth, tmp_path / "data")
    path = root / "meta.json"
    if meta is None or meta == "absolute":
        outside = tmp_path / "outside.npz"
        shutil.copy(root / "train" / "shard_00000.npz", outside)
        data = json.loads(path.read_text())
        data["splits"]["train"]["shards"][0] = str(outside) if meta else "../outside.npz"
        meta = json.dumps(data)
    path.write_text(meta)
    with pytest.raises(DataFormatError, match=expected) as info:
        HumrDataset(root, "train")
    assert str(root) in str(info.value)


def test_zero_scale_is_refused_where_the_data_is_loaded(small_synth, tmp_path):
    root = _copy_dataset(small_synth, tmp_path / "data")
    shard = root / "train" / "shard_00001.npz"
    arrays = read_shard(shard)
    arrays["scale"][0] = 0.0
    np.savez(shard, **arrays)
    with pytest.raises(DataFormatError, match=r"shard_00001.npz: key 'scale' is <= 0 at examples \[0\]"):
        HumrDataset(root, "train")


def test_empty_mask_without_mask_valid_gives_finite_training_inputs(small_synth, tmp_path):
    from humr.data import make_dataloader
    from humr.model import build_model

    root = _copy_dataset(small_synth, tmp_path / "data")
    shard = root / "train" / "shard_00000.npz"
    arrays = read_shard(shard)
    arrays["mask"][0] = 0
    arrays["mask_valid"][0] = False
    arrays["hm_samples_mask_dist"][0] = np.inf               # what the generator writes
    np.savez(shard, **arrays)
    for augment in (False, True):
        batch = next(iter(make_dataloader(root, "train", batch_size=3, augment=augment)))
        assert torch.isfinite(batch["hm_samples_mask_dist"]).all()
        assert not batch["mask_valid"][0] and batch["mask_valid"][1:].all()
    plain = HumrDataset(root, "train")[0]["hm_samples_mask_dist"]
    assert (plain == 2 * 64).all()                           # 2 R: outside the 64 x 64 crop
    model = build_model(None, overrides=["model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=1",
                                       "model.flow.hidden_features=16", "model.head.hidden=16"])
    out = model(batch, num_samples=3)
    total, _ = model.loss(batch, out)
    assert torch.isfinite(total)


def test_nan_in_a_body_model_names_the_key(tmp_path, body_dir):
    from humr.body import BodyModel
    from humr.body.safe_pickle import load_body_pickle

    data = load_body_pickle(body_dir / "smpl" / "SMPL_NEUTRAL.pkl")
    data["shapedirs"] = data["shapedirs"].copy()
    data["shapedirs"][5, 1, 2] = np.nan
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=f"body model {path}: shapedirs contains NaN"):
        BodyModel(str(path))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", None, "random"],
                         ids=["empty", "zip_header", "truncated", "random"])
def test_corrupted_checkpoint_names_the_file(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content is None:
        buf = tmp_path / "good.ckpt"
        torch.save({"state_dict": {"w": torch.ones(1000)}}, buf)
        content = buf.read_bytes()[:-300]
    elif content == "random":
        content = np.random.default_rng(0).bytes(4096)
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint_file(path)


@pytest.mark.parametrize("text, expected", [
    ("train: {lr: [1, 2", "malformed YAML in {path}"),
    ("train:\n  lr: 1\n bad indent: 2\n", "malformed YAML in {path}"),
    ("- a list\n- not a mapping\n", "mapping"),
    ("train:\n  nope: 1\n", "nope"),
], ids=["unclosed", "indent", "list", "unknown_key"])
def test_bad_yaml_config_is_one_line_naming_the_problem(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, err = _cli(capsys, "train", "--config", str(path), "--out", str(tmp_path / "runs"))
    assert code == 2
    assert err.startswith("humr train: error: ") and err.count("\n") == 1
    assert expected.format(path=path) in err


# ----------------------------------------------------------------------- numeric options
_NUMERIC = [
    ("eval", "--num-samples", ["--ckpt", "x.ckpt"]),
    ("eval", "--batch-size", ["--ckpt", "x.ckpt"]),
    ("eval", "--max-examples", ["--ckpt", "x.ckpt"]),
    ("sample", "--num-samples", ["--ckpt", "x.ckpt", "--out", "x.npz"]),
    ("synth", "--crop-res", ["--out", "d"]),
    ("synth", "--posterior-samples", ["--out", "d"]),
    ("synth", "--workers", ["--out", "d"]),
    ("train", "--max-steps", ["--config", "c.yaml"]),
    ("train", "--num-nodes", ["--config", "c.yaml"]),
    ("train", "--devices", ["--config", "c.yaml"]),
    ("ablate", "--steps", ["table3"]),
    ("ablate", "--seeds", ["table3"]),
    ("demo", "--num-samples", []),
]


@pytest.mark.parametrize("value", ["0", "-3", "10000000000000", "1.5", "abc"])
@pytest.mark.parametrize("cmd, option, rest", _NUMERIC, ids=[f"{c}{o}" for c, o, _ in _NUMERIC])
def test_numeric_options_are_validated_at_parse_time(capsys, tmp_path, cmd, option, rest, value):
    code, err = _cli(capsys, cmd, *rest, option, value)
    assert code == 2
    assert err.startswith(f"humr {cmd}: error: argument {option}: expected ") and value in err
    assert err.count("\n") == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("cmd, option", [("synth", "--n-train"), ("synth", "--n-test"),
                                         ("sample", "--indices"), ("make-body", "--seed")])
def test_counts_and_seeds_refuse_negatives(capsys, cmd, option):
    rest = {"synth": ["--out", "d"], "sample": ["--ckpt", "x", "--out", "y"], "make-body": ["d"]}
    code, err = _cli(capsys, cmd, *rest[cmd], option, "-1")
    assert code == 2 and f"argument {option}: expected an integer" in err


@pytest.mark.parametrize("key, value", [("val_every", 0), ("ckpt_every", 0), ("batch_size", 0),
                                        ("num_samples_eval", -1), ("lr", 0),
                                        ("max_steps", 0), ("val_examples", 0)])
def test_zero_train_values_name_the_key(small_synth, tmp_path, capsys, key, value):
    from humr.config import Config

    path = Config.load(None, overrides=[f"data.root={small_synth}", "model.conditions.image.backbone=small_cnn",
                                        f"train.{key}={value}"]).save(tmp_path / "c.yaml")
    code, err = _cli(capsys, "train", "--config", str(path), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"config train.{key} = " in err and "expected" in err
    assert not (tmp_path / "runs").exists()                  # refused before anything ran


def test_debug_shows_the_traceback(capsys):
    code, err = _cli(capsys, "--debug", "eval", "--ckpt", "/nonexistent.ckpt")
    assert code == 2 and "Traceback" in err and "humr eval: error:" in err.splitlines()[-1]


# ------------------------------------------------------------------- full disk, kill -9
def _can_mount_tmpfs(where):
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_full_filesystem_keeps_the_previous_checkpoint(tmp_path):
    """A 4 MB tmpfs holding a 2.5 MB last.ckpt: the next save cannot fit beside it."""
    from humr.engine.checkpoint import AtomicCheckpointIO

    disk = tmp_path / "disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root); the patched-writer test covers it")
    try:
        io_ = AtomicCheckpointIO()
        last = disk / "last.ckpt"
        old = {"state_dict": {"w": torch.arange(600_000, dtype=torch.float32)}}
        io_.save_checkpoint(old, last)
        new = {"state_dict": {"w": torch.zeros(600_000)}}
        with pytest.raises(OSError, match="last.ckpt not written .No space left on device"):
            io_.save_checkpoint(new, last)
        assert os.listdir(disk) == ["last.ckpt"]
        assert torch.equal(load_checkpoint_file(last)["state_dict"]["w"], old["state_dict"]["w"])
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    last = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}}, last)
    script = textwrap.dedent(f"""
        import sys, time, torch
        from humr.engine.checkpoint import AtomicCheckpointIO
        real = torch.save
        def slow(obj, f):
            f.write(b"x" * 100000); f.flush(); print("writing", flush=True); time.sleep(60)
        torch.save = slow
        AtomicCheckpointIO().save_checkpoint({{"state_dict": {{}}}}, {str(last)!r})
    """)
    env = python_env(REPO)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert torch.equal(load_checkpoint_file(last)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


@pytest.mark.slow
def test_kill_9_during_training_then_resume_reproduces_the_losses(small_synth, tmp_path):
    """``humr train`` killed with SIGKILL after its first checkpoint; ``--resume`` logs the
    same per-step losses as an uninterrupted run (augmentation on)."""
    import time

    from _recorder import csv_losses

    from humr.config import Config

    cfg = Config.load(None, overrides=[
        f"data.root={small_synth}", "model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=1",
        "model.flow.hidden_features=16", "model.head.hidden=16", "data.augment=true",
        "train.batch_size=1", "train.num_workers=0", "train.num_samples_train=3",
        "train.num_samples_eval=2", "train.max_steps=8", "train.val_every=100",
        "train.ckpt_every=2", "train.val_examples=1"]).save(tmp_path / "c.yaml")
    env = python_env(REPO)
    base = [sys.executable, "-m", "humr.cli", "train", "--config", str(cfg), "--no-progress",
            "--devices", "1", "--accelerator", "cpu"]

    subprocess.run(base + ["--out", str(tmp_path / "full")], env=env, check=True, timeout=300)
    proc = subprocess.Popen(base + ["--out", str(tmp_path / "killed")], env=env)
    ckpt = tmp_path / "killed" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    subprocess.run(base + ["--out", str(tmp_path / "killed"), "--resume",
                           str(tmp_path / "killed")], env=env, check=True, timeout=300)
    full = csv_losses(tmp_path / "full" / "version_0")
    resumed = csv_losses(tmp_path / "killed" / "version_0")           # sessions merged
    assert sorted(full) == sorted(resumed) and len(full) >= 7
    for step in full:
        assert resumed[step] == pytest.approx(full[step], rel=1e-5, abs=1e-6), step
