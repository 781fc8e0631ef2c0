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
    assert "focal" not in batch        # the release estimates it in evaluation (cam_int unused)
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
              "--num-samples", "3", "--batch-size", "4", *CPU]
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
                 "--split", "emdb-p1-occl", "--out", str(out2), *common]) == 0
    result2 = json.loads(out2.read_text())
    assert result2["checkpoint_kind"] == "official" and set(result2["metrics"]) == {"emdb-p1-occl"}
    for split in result2["metrics"]:
        for key, value in metrics[split].items():
            assert result2["metrics"][split][key] == pytest.approx(value, rel=1e-4, abs=1e-4, nan_ok=True)


def test_evaluation_splits_keep_the_smpl_pose_and_no_focal(release):
    """The reader as an SMPL-X model's evaluation needs it: the stored 24-joint SMPL pose (the
    ground truth's body is SMPL), no focal length although the files hold cam_int."""
    from humr.data.official_io import read_npz
    from humr.data.official_release import official_dataset
    from humr.data.official_splits import get_split

    split = get_split("emdb-p1")
    raw = read_npz(split.annotation_path(release), ("pose_cam", "cam_int"))
    example = official_dataset(release, "emdb-p1", num_joints=22, num_betas=11)[1]
    assert "cam_int" in raw and "focal" not in example
    np.testing.assert_allclose(example["pose"].numpy(), raw["pose_cam"][1, :72], rtol=1e-6)
    assert example["betas"].shape == (11,) and example["betas"][10] == 0


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
    no_h36m = tmp_path / "smpl_without_regressor"
    shutil.copytree(gt_bodies, no_h36m)
    (no_h36m / "J_regressor_h36m.npy").unlink()
    cases = [(gt, "--data ROOT --data-format official"),
             ([*data, "--data-format", "official"], "--gt-body-dir SMPL_DIR"),
             ([*data, *gt], "smplx2smpl.pkl .*not found"),                  # no mapping anywhere
             ([*data, "--gt-body-dir", str(no_h36m)], "3dpw protocol needs an H36M regressor: J_regressor_h36m.npy .*utils.zip"),
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


# the release's keypoint maps (train/core/constants.py, after smplify-x): SMPL joints + the
# SMPL-H vertex joints of smplx's VertexJointSelector -> OpenPose BODY_25 -> COCO-17
SMPL45_TO_COCO25 = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30,
                    31, 32, 33, 34]
COCO25_TO_COCO17 = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]


def test_smplx_as_smpl_outputs_are_the_releases(tiny_smplx, gt_bodies, tmp_path):
    """Every output of the evaluation body against smplx's SMPL layer and numpy, the way the
    release's validation_step computes them from the mapped mesh."""
    import smplx

    from humr.body import BodyModel
    from humr.official.evaluation import SmplxAsSmpl

    body = BodyModel(tiny_smplx[0], model_type="smplx", num_betas=11)
    smpl = BodyModel(gt_bodies, model_type="smpl", num_betas=10)
    m = _mapping(60, seed=3)
    eval_body = SmplxAsSmpl(body, smpl, torch.from_numpy(m))
    a = torch.randn(2, 3, 22, 3, 3) * 0.3
    rot = torch.linalg.matrix_exp(a - a.transpose(-1, -2))
    betas = torch.randn(2, 3, 11)
    got = eval_body(rot, betas, return_vertices=True)
    assert (eval_body.num_joints, eval_body.num_betas) == (22, 11)
    with torch.no_grad():
        verts = body(rot.double(), betas.double(), return_vertices=True)["vertices"].numpy()
        v = torch.from_numpy(np.einsum("sv,...vc->...sc", m, verts)).reshape(6, 6890, 3)
        with contextlib.redirect_stdout(io.StringIO()):
            layer = smplx.SMPL(str(gt_bodies / "smpl" / "SMPL_NEUTRAL.pkl")).double()
        joints = torch.einsum("js,nsc->njc", layer.J_regressor, v)
        coco = layer.vertex_joint_selector(v, joints)[:, SMPL45_TO_COCO25][:, COCO25_TO_COCO17]
        h36m = torch.einsum("hs,nsc->nhc", torch.from_numpy(np.load(gt_bodies / "J_regressor_h36m.npy")), v)
    for key, want in (("vertices", v), ("joints", joints), ("coco17", coco), ("h36m17", h36m)):
        assert got[key].shape == (2, 3, *want.shape[1:]), key
        torch.testing.assert_close(got[key].reshape(want.shape).double(), want, atol=1e-5, rtol=1e-4)
    assert "h36m17" not in eval_body(rot, betas, h36m=False)
    with pytest.raises(ValueError, match=r"mapping has shape \(6890, 59\)"):
        SmplxAsSmpl(body, smpl, torch.zeros(6890, 59))
    with pytest.raises(ValueError, match="no SMPL-X -> SMPL mapping"):
        SmplxAsSmpl(body, smpl)
    # a body built with the mapping (a --body-model beside utils/smplx2smpl.pkl): mapped once
    with open(tmp_path / "smplx2smpl.pkl", "wb") as f:
        pickle.dump({"matrix": m}, f)
    own = BodyModel(tiny_smplx[0], model_type="smplx", num_betas=11,
                    smplx_to_smpl=tmp_path / "smplx2smpl.pkl")
    again = SmplxAsSmpl(own, smpl)(rot, betas, return_vertices=True)
    for key in got:
        torch.testing.assert_close(again[key], got[key])


def test_gendered_ground_truth_of_another_body(gt_bodies, tiny_smplx):
    """An SMPL ground truth (24 joints, 10 betas) for an SMPL-X model (22 joints, 11 betas): the
    bodies follow the model's device, each gender poses its rows, a short pose is refused."""
    from humr.body import BodyModel
    from humr.engine.evaluation import GenderedBodies, evaluation_outputs
    from humr.geometry import axis_angle_to_matrix
    from humr.model import build_model

    model = build_model(conditions=["bbox"], body_model=str(tiny_smplx[0]), model_type="smplx",
                        num_betas=11, overrides={"model.flow.num_blocks": 2,
                                                 "model.flow.hidden_features": 16,
                                                 "model.head.hidden": 16}).eval()
    bodies = GenderedBodies.from_folder(str(gt_bodies), follow=model.body)
    B = 3
    batch = {"center": torch.full((B, 2), 100.0), "scale": torch.ones(B, 1),
             "orig_shape": torch.full((B, 2), 200.0), "pose": 0.2 * torch.randn(B, 72),
             "betas": torch.cat([torch.randn(B, 10), torch.zeros(B, 1)], 1),
             "gender": torch.tensor([1, 2, 0])}
    _, truth = evaluation_outputs(model, batch, 2, gt_body=bodies)
    assert truth["joints"].shape == (B, 24, 3) and truth["vertices"].shape == (B, 6890, 3)
    for row, gender in enumerate(("male", "female", "neutral")):
        ref = BodyModel(gt_bodies, model_type="smpl", num_betas=10, gender=gender)
        want = ref(axis_angle_to_matrix(batch["pose"][row].view(24, 3)), batch["betas"][row, :10])
        torch.testing.assert_close(truth["joints"][row], want["joints"])
    assert (truth["joints"][0] - truth["joints"][2]).abs().max() > 1e-3   # the gender matters
    meta = torch.nn.Module()
    meta.register_buffer("x", torch.zeros(1, device="meta"))
    assert next(GenderedBodies.from_folder(str(gt_bodies), follow=meta)(2).buffers()).is_meta
    with pytest.raises(ValueError, match=r"batch\['pose'\] has 22 joints; .* needs 24"):
        model.ground_truth({"pose": batch["pose"][:, :66], "betas": batch["betas"]}, body=bodies(1))
