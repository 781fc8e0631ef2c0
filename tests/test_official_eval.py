"""``humr eval`` of the official model (converted or official checkpoint) on a release-format
tree, as the release evaluates it: SMPL-X meshes mapped to SMPL (smplx2smpl.pkl), joints
regressed from the SMPL mesh, gendered SMPL ground truth. References are computed with smplx's
own SMPL / SMPL-X layers and numpy."""
from __future__ import annotations

import contextlib
import io
import json
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("FrEIA")

EVAL = ("3dpw-test-cam", "emdb-p1", "emdb-p1-occl")
CPU = ["--accelerator", "cpu", "--devices", "1"]


@pytest.fixture
def gt_bodies(body_dir, tmp_path):
    """An SMPL folder laid out like the official one: neutral, male, female (the procedural body
    with its template scaled by 1.1 / 0.9, so that the gender matters) and the H36M regressor."""
    from humr.body.model import read_model_file
    from humr.body.safe_pickle import write_body_file

    folder = tmp_path / "smpl_models"
    shutil.copytree(body_dir, folder)
    data = read_model_file(folder / "smpl" / "SMPL_NEUTRAL.pkl")
    for name, factor in (("MALE", 1.1), ("FEMALE", 0.9)):
        write_body_file({**data, "v_template": data["v_template"] * factor},
                        folder / "smpl" / f"SMPL_{name}.pkl")
    return folder


def _mapping(num_smplx: int, seed: int = 0) -> np.ndarray:
    """A format-faithful smplx2smpl matrix (6890, V_smplx): each SMPL vertex a convex
    combination of three SMPL-X vertices (the release's is a deformation transfer)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((6890, num_smplx))
    cols = rng.integers(0, num_smplx, (6890, 3))
    w = rng.random((6890, 3))
    np.add.at(m, (np.arange(6890)[:, None].repeat(3, 1), cols), w / w.sum(1, keepdims=True))
    return m


@pytest.fixture
def utils(tmp_path, tiny_smplx):
    folder = tmp_path / "utils"
    folder.mkdir()
    with open(folder / "smplx2smpl.pkl", "wb") as f:       # as the release stores it
        pickle.dump({"matrix": _mapping(len(tiny_smplx[1]["v_template"]))}, f)
    return folder


@pytest.fixture
def release(tmp_path):
    from humr.data.official_fixture import write_release

    root = tmp_path / "release"
    write_release(root, splits=EVAL, rows=2)   # a male and a female row each
    return root


def _reference(root, model, gt_dir, utils_dir, smplx_file, split):
    """MPJPE of the mode (mm) of ``split`` computed independently: smplx's SMPLXLayer poses the
    predicted mesh, numpy maps it to SMPL and regresses the joints, smplx's gendered SMPL poses
    the ground truth; protocol of the split (3dpw: H36M regressor, LSP-14, root = H36M pelvis;
    emdb: 24 SMPL joints, root = mean of the hips)."""
    import smplx

    from humr.body.keypoints import H36M_TO_LSP14
    from humr.body.model import read_model_file
    from humr.data.official import OfficialDataset

    ds = OfficialDataset(root, split, crop_res=224, num_joints=24, num_betas=11)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = model(batch, num_samples=1)                   # hypothesis 0: the mode (z = 0)
        with contextlib.redirect_stdout(io.StringIO()):
            layer = smplx.SMPLXLayer(str(smplx_file), num_betas=11)
        rot = out["rotmat"][:, 0].double()
        verts = layer.double()(global_orient=rot[:, :1], body_pose=rot[:, 1:22],
                               betas=out["betas"][:, 0].double()).vertices.numpy()
    with open(utils_dir / "smplx2smpl.pkl", "rb") as f:
        smpl_verts = np.einsum("sv,bvc->bsc", pickle.load(f)["matrix"], verts)
    neutral = read_model_file(gt_dir / "smpl" / "SMPL_NEUTRAL.pkl")
    h36m = np.load(gt_dir / "J_regressor_h36m.npy")
    errors = []
    for b in range(len(ds)):
        gender = ("male", "female")[int(batch["gender"][b]) - 1]
        with contextlib.redirect_stdout(io.StringIO()):
            gt_layer = smplx.SMPL(str(gt_dir / "smpl" / f"SMPL_{gender.upper()}.pkl"))
        pose = batch["pose"][b:b + 1].double()
        with torch.no_grad():
            gt = gt_layer.double()(global_orient=pose[:, :3], body_pose=pose[:, 3:72],
                                   betas=batch["betas"][b:b + 1, :10].double())
        if split.startswith("3dpw"):
            pred = h36m @ smpl_verts[b]
            ref = h36m @ gt.vertices[0].numpy()
            pred, ref = (j[list(H36M_TO_LSP14)] - j[:1] for j in (pred, ref))
        else:
            pred = neutral["J_regressor"] @ smpl_verts[b]
            ref = gt.joints[0, :24].numpy()
            pred, ref = (j - j[[1, 2]].mean(0) for j in (pred, ref))
        errors.append(np.linalg.norm(pred - ref, axis=-1).mean() * 1000)
    return float(np.mean(errors))


def test_eval_of_converted_and_official_checkpoints(official_ckpt, tiny_smplx, gt_bodies, utils,
                                                     release, tmp_path, capsys):
    from humr import load_official
    from humr.cli import main
    from humr.data.official_report import PAPER

    path, _ = official_ckpt
    converted = tmp_path / "conv" / "humr_official.ckpt"
    assert main(["convert-official", str(path), str(converted)]) == 0
    common = ["--data", str(release), "--data-format", "official", "--gt-body-dir", str(gt_bodies),
              "--num-samples", "3", "--batch-size", "2", *CPU]
    capsys.readouterr()
    out = tmp_path / "conv.json"
    assert main(["eval", "--ckpt", str(converted), "--utils", str(utils), "--out", str(out),
                 *common]) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 2" in printed and "62.200" in printed
    result = json.loads(out.read_text())
    assert result["checkpoint_kind"] == "converted" and result["format"] == "official"
    metrics = result["metrics"]
    assert set(metrics) == set(EVAL) and len(result["paper"]) == len(PAPER)
    for split, proto in (("3dpw-test-cam", "3dpw"), ("emdb-p1", "emdb")):
        for key in (f"{proto}/mpjpe_mode", f"{proto}/pa_mpjpe_min", f"{proto}/pve_mode",
                    "kp2d_mode", "kp2d_samples", "spread_visible", "spread_invisible"):
            assert np.isfinite(metrics[split][key]), (split, key)
        assert metrics[split][f"{proto}/mpjpe_min"] <= metrics[split][f"{proto}/mpjpe_mode"] + 1e-6
    occl = metrics["emdb-p1-occl"]
    assert 0 <= occl["perc_in"] <= 100 and occl["min_dist"] >= 0
    # every Table 1 cell of humr's rows is a number (not n/a)
    rows = [r for r in result["paper"] if r["table"] == "Table 1"]
    assert all(r["humr"] is not None for r in rows)

    # one number against an independent computation (smplx layers + numpy), both protocols
    model = load_official(converted)
    smplx_file = tiny_smplx[0] / "SMPLX_NEUTRAL.npz"
    for split, key in (("emdb-p1", "emdb/mpjpe_mode"), ("3dpw-test-cam", "3dpw/mpjpe_mode")):
        want = _reference(release, model, gt_bodies, utils, smplx_file, split)
        assert metrics[split][key] == pytest.approx(want, rel=1e-4, abs=1e-3), split

    # the official Lightning checkpoint itself gives the same numbers (same weights, same latents)
    out2 = tmp_path / "official.json"
    assert main(["eval", "--ckpt", str(path), "--smplx2smpl", str(utils / "smplx2smpl.pkl"),
                 "--out", str(out2), *common]) == 0
    result2 = json.loads(out2.read_text())
    assert result2["checkpoint_kind"] == "official"
    for split in EVAL:
        for key, value in metrics[split].items():
            assert result2["metrics"][split][key] == pytest.approx(value, rel=1e-4, abs=1e-4, nan_ok=True)


def test_eval_of_the_official_model_needs_its_inputs(official_ckpt, release, gt_bodies, tmp_path,
                                                     capsys):
    from humr.cli import main
    from humr.engine.evaluation import GenderedBodies

    path, _ = official_ckpt
    bad = tmp_path / "bad.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"matrix": np.zeros((6890, 7))}, f)
    data = ["--data", str(release)]
    gt = ["--gt-body-dir", str(gt_bodies)]
    cases = [(gt, "--data ROOT --data-format official"),
             ([*data, "--data-format", "official"], "--gt-body-dir SMPL_DIR"),
             ([*data, *gt], "smplx2smpl.pkl .*not found"),                  # no mapping anywhere
             ([*data, *gt, "--smplx2smpl", str(bad)], r"bad.pkl has shape \(6890, 7\); expected a \(6890, 60\) matrix")]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["eval", "--ckpt", str(path), *extra, *CPU]) == 2
        err = capsys.readouterr().err
        assert err.startswith("humr eval: error:") and len(err.splitlines()) == 1
        assert re.search(message, err), err
    # a folder without gendered files names the missing one
    empty = tmp_path / "no_bodies"
    empty.mkdir()
    bodies = GenderedBodies.from_folder(str(empty), follow=torch.nn.Linear(1, 1))
    with pytest.raises(FileNotFoundError, match="no male SMPL body model"):
        bodies(1)
