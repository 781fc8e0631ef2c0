"""BodyModel: agreement with smplx, joints-only == full pass, keypoints, errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx")

from humr.body import keypoints as kp
from humr.body import model as body_model
from humr.body.model import BodyModel
from humr.geometry import axis_angle_to_matrix


@pytest.fixture(scope="module")
def body64(body_dir):
    return BodyModel(body_dir, dtype=torch.float64)


@pytest.fixture(scope="module")
def body32(body_dir):
    return BodyModel(body_dir)


def _random(lead, dtype, J=24, scale=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    aa = scale * torch.randn(*lead, J, 3, generator=g, dtype=dtype)
    betas = 1.5 * torch.randn(*lead, 10, generator=g, dtype=dtype)
    return aa, betas


def test_attributes(body32):
    assert body32.num_joints == 24 and body32.pose_dim == 144
    assert body32.faces.shape == (13776, 3) and body32.faces.dtype == np.int64
    assert body32.parents.tolist()[:4] == [-1, 0, 0, 0] and body32.has_h36m


def test_full_pass_matches_smplx_module(body_dir, body64):
    """Our outputs against smplx's own SMPL forward (axis-angle, its extra vertex joints)."""
    aa, betas = _random((6,), torch.float64)
    ref = smplx.create(str(body_dir), model_type="smpl", dtype=torch.float64)(
        betas=betas, global_orient=aa[:, 0], body_pose=aa[:, 1:].flatten(1))
    out = body64(axis_angle_to_matrix(aa), betas, return_vertices=True)
    tol = 1e-6   # smplx's Rodrigues adds 1e-8 to the angle
    assert torch.allclose(out["vertices"], ref.vertices, atol=tol)
    assert torch.allclose(out["joints"], ref.joints[:, :24], atol=tol)
    # smplx's extra joints 24-28: nose, reye, leye, rear, lear
    assert torch.allclose(out["coco17"][:, :5], ref.joints[:, [24, 26, 25, 28, 27]], atol=tol)
    coco_from_smpl = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
    assert torch.allclose(out["coco17"][:, 5:], ref.joints[:, coco_from_smpl], atol=tol)
    H = torch.from_numpy(np.load(body_dir / "J_regressor_h36m.npy"))
    h36m = torch.einsum("hv,nvc->nhc", H, ref.vertices)
    assert torch.allclose(out["h36m17"], h36m, atol=tol)
    assert torch.allclose(out["lsp14"], h36m[:, [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]], atol=tol)


@pytest.mark.parametrize("block,entries,sparse", [(1000, 3000, True), (512, 1536, True),
                                                  (6890, 2 * 6890, False)],
                         ids=["cpu_tiles", "cpu_default_block", "cuda_tiles"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 2e-5)])
def test_tiled_mesh_pass_with_shared_betas_matches_smplx(monkeypatch, body_dir, body64, body32,
                                                        dtype, tol, block, entries, sparse):
    """Meshes and H36M joints of many bodies in tiles against smplx's SMPL forward, values
    and gradients: sparse CPU tiles (only the joints and regressed vertices a tile uses) of
    1000 vertices (the last one 890) x bodies 3 + 3 + 1, or of 512 (the default; the last
    one has no regressed vertex) x bodies 3 + 3 + 1; or CUDA's tiling, every vertex and
    joint x bodies 2 + 2 + 2 + 1. Betas shared by the hypotheses of an image. Without
    autograd (tiles written in place) the same numbers as with it (tiles joined by cat)."""
    body = body64 if dtype == torch.float64 else body32
    assert body_model._vertices_per_tile(torch.device("cpu"), 6890) == 512
    assert body_model._vertices_per_tile(torch.device("cuda"), 6890) == 6890
    monkeypatch.setattr(body_model, "_vertices_per_tile", lambda device, count: min(count, block))
    monkeypatch.setattr(body_model, "SPARSE_TILE_DEVICES", ("cpu",) if sparse else ())
    monkeypatch.setattr(body_model, "_SKIN_ENTRIES", entries)
    H = torch.from_numpy(np.load(body_dir / "J_regressor_h36m.npy"))
    if block == 512:
        assert not H[:, 13 * 512:].any()          # the branch of a tile without regressed vertices
    aa, betas = _random((7,), dtype, scale=1.0, seed=3)
    betas = betas[:2].repeat_interleave(torch.tensor([4, 3]), dim=0)
    rot = axis_angle_to_matrix(aa).requires_grad_()
    out = body(rot, betas, return_vertices=True)
    ref_layer = smplx.create(str(body_dir), model_type="smpl", dtype=torch.float64)
    rot64 = rot.detach().double().requires_grad_()
    ref = ref_layer(betas=betas.double(), global_orient=rot64[:, :1], body_pose=rot64[:, 1:],
                    pose2rot=False)
    assert out["vertices"].dtype == dtype
    torch.testing.assert_close(out["vertices"].double(), ref.vertices, rtol=0, atol=tol)
    torch.testing.assert_close(out["joints"].double(), ref.joints[:, :24], rtol=0, atol=tol)
    torch.testing.assert_close(out["h36m17"].double(), torch.einsum("hv,nvc->nhc", H, ref.vertices),
                               rtol=0, atol=tol)
    with torch.no_grad():
        untracked = body(rot, betas, return_vertices=True)
    for key in ("vertices", "h36m17", "joints"):
        torch.testing.assert_close(untracked[key], out[key].detach(), rtol=0, atol=0)
    w = torch.randn(ref.vertices.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out["vertices"].double() * w).sum().backward()
    (ref.vertices * w).sum().backward()
    torch.testing.assert_close(rot.grad.double(), rot64.grad, rtol=1e-4, atol=50 * tol)


def test_tile_operands_keep_what_a_tile_uses():
    """Hand-made tile: 3 vertices using joints 1 and 3 of 4; a regressor reading vertex 2 only,
    and one reading none. Dense tiles pass everything through."""
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0]])
    reg = torch.tensor([[0.0, 0.0, 0.25], [0.0, 0.0, 0.75]])
    kept, joints, reg_kept, rows = body_model._tile_operands(w, reg, sparse=True)
    assert joints.tolist() == [1, 3] and rows.tolist() == [2]
    assert torch.equal(kept, w[:, [1, 3]]) and torch.equal(reg_kept, reg[:, [2]])
    assert body_model._tile_operands(w, torch.zeros(2, 3), sparse=True)[2] is None
    assert body_model._tile_operands(w, None, sparse=True)[2] is None
    dense = body_model._tile_operands(w, reg, sparse=False)
    assert dense[0] is w and dense[2] is reg and dense[1] == dense[3] == slice(None)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_joints_only_equals_full_pass(body64, body32, dtype, tol):
    body = body64 if dtype == torch.float64 else body32
    aa, betas = _random((2, 5), dtype, scale=1.0)
    rot = axis_angle_to_matrix(aa)
    fast = body(rot, betas)
    full = body(rot, betas, joints_only=False)
    assert set(fast) == {"joints", "coco17", "h36m17", "lsp14"} == set(full)
    for k in fast:
        assert fast[k].shape == full[k].shape and fast[k].dtype == dtype
        assert (fast[k] - full[k]).abs().max() < tol, k
    assert fast["joints"].shape == (2, 5, 24, 3) and fast["lsp14"].shape == (2, 5, 14, 3)
    no_h36m = body(rot, betas, h36m=False)              # training: face vertices only
    assert set(no_h36m) == {"joints", "coco17"}
    for k in no_h36m:
        assert (no_h36m[k] - full[k]).abs().max() < tol, k


def test_joints_only_gradients_match(body64):
    aa, betas = _random((3,), torch.float64)
    grads = []
    for joints_only in (True, False):
        a = aa.clone().requires_grad_(True)
        b = betas.clone().requires_grad_(True)
        out = body64(axis_angle_to_matrix(a), b, joints_only=joints_only)
        (out["coco17"].square().sum() + out["lsp14"].sin().sum()).backward()
        grads.append((a.grad, b.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-10)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-10)


def test_joints_only_with_pose_correctives(body_dir, tmp_path):
    """Nonzero posedirs: the fast path must add the keypoint vertices' correctives."""
    with open(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
        data = pickle.load(f, encoding="latin1")
    data["posedirs"] = 0.01 * np.random.default_rng(0).standard_normal((6890, 3, 207))
    (tmp_path / "smpl").mkdir()
    with open(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as f:
        pickle.dump(data, f)
    body = BodyModel(tmp_path, dtype=torch.float64, h36m_regressor=body_dir / "J_regressor_h36m.npy")
    aa, betas = _random((4,), torch.float64)
    rot = axis_angle_to_matrix(aa)
    fast, full = body(rot, betas), body(rot, betas, joints_only=False, return_vertices=True)
    ref = smplx.create(str(tmp_path), model_type="smpl", dtype=torch.float64)(
        betas=betas, global_orient=aa[:, 0], body_pose=aa[:, 1:].flatten(1))
    assert torch.allclose(full["vertices"], ref.vertices, atol=1e-6)
    for k in fast:
        assert torch.allclose(fast[k], full[k], atol=1e-10), k
    assert torch.allclose(body(rot, betas, h36m=False)["coco17"], full["coco17"], atol=1e-10)
    # the correctives matter here: the body without them puts the keypoints elsewhere
    plain = BodyModel(body_dir, dtype=torch.float64)(rot, betas)
    assert (plain["coco17"] - fast["coco17"]).abs().max() > 1e-3


def test_non_body_joints_folded(monkeypatch, body_dir):
    """SMPL-X layout: joints beyond the body (hands, jaw, eyes) at rest. Emulated by treating the
    SMPL hands 22, 23 as non-body joints: their weights fold onto the wrists."""
    monkeypatch.setitem(body_model.NUM_BODY_JOINTS, "smpl", 22)
    body = BodyModel(body_dir, dtype=torch.float64)
    assert body.num_joints == 22 and body.pose_dim == 132
    aa, betas = _random((5,), torch.float64, J=22)
    rot = axis_angle_to_matrix(aa)
    fast, full = body(rot, betas), body(rot, betas, joints_only=False)
    for k in fast:
        assert torch.allclose(fast[k], full[k], atol=1e-10), k
    ref = smplx.create(str(body_dir), model_type="smpl", dtype=torch.float64)(
        betas=betas, global_orient=aa[:, 0], body_pose=torch.cat([aa[:, 1:], torch.zeros(5, 2, 3, dtype=aa.dtype)], 1).flatten(1))
    assert torch.allclose(fast["joints"], ref.joints[:, :22], atol=1e-6)
    mesh = body(rot, betas, return_vertices=True)["vertices"]     # hands folded onto the wrists
    assert torch.allclose(mesh, ref.vertices, atol=1e-6)


def test_coco_rest_pose_anatomy(body32):
    out = body32(torch.eye(3).expand(24, 3, 3), torch.zeros(10))
    c = out["coco17"]
    y = c[:, 1]
    names = kp.COCO17_NAMES
    i = {n: names.index(n) for n in names}
    for side in ("left", "right"):
        assert y[i["nose"]] > y[i[f"{side}_shoulder"]] > y[i[f"{side}_hip"]] > y[i[f"{side}_knee"]] \
            > y[i[f"{side}_ankle"]]
        assert y[i[f"{side}_eye"]] > y[i["nose"]]
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        left, right = c[i[f"left_{part}"]], c[i[f"right_{part}"]]
        assert left[0] > 0 > right[0]
        assert torch.allclose(left * torch.tensor([-1.0, 1, 1]), right, atol=1e-6)
    assert c[i["nose"], 2] > c[i["left_eye"], 2] > c[i["left_ear"], 2]   # facing +z


def test_broadcast_and_input_errors(body32):
    rot = torch.eye(3).expand(4, 24, 3, 3)
    out = body32(rot, torch.zeros(10))   # betas broadcast over the batch
    assert out["joints"].shape == (4, 24, 3)
    with pytest.raises(ValueError, match=r"rotmat must have shape \(\.\.\., 24, 3, 3\)"):
        body32(torch.eye(3).expand(4, 22, 3, 3), torch.zeros(4, 10))
    with pytest.raises(ValueError, match=r"betas must have shape \(\.\.\., 10\)"):
        body32(rot, torch.zeros(4, 8))
    with pytest.raises(ValueError, match="do not broadcast"):
        body32(rot, torch.zeros(3, 10))
    nan_betas = torch.full((4, 10), float("nan"))
    assert torch.isnan(body32(rot, nan_betas)["joints"]).any()   # unchecked by default: NaN stays NaN
    body32.validate_args = True                                  # opt-in check (a host sync)
    try:
        with pytest.raises(ValueError, match="finite"):
            body32(rot, nan_betas)
    finally:
        body32.validate_args = False
    with pytest.raises(ValueError, match="empty"):
        body32(rot[:0], torch.zeros(0, 10))


def _assert_helpful(err, path):
    msg = str(err.value)
    assert str(path) in msg and "humr make-body" in msg and "https://smpl.is.tue.mpg.de" in msg


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        BodyModel(tmp_path / "nowhere")
    _assert_helpful(err, tmp_path / "nowhere")
    assert "SMPL_NEUTRAL.pkl" in str(err.value) and "v_template" in str(err.value)
    with pytest.raises(FileNotFoundError, match="SMPLX_NEUTRAL.npz") as err:
        BodyModel(tmp_path, model_type="smplx")
    _assert_helpful(err, tmp_path)


def test_malformed_model_files(tmp_path, body_dir):
    bad = tmp_path / "garbage.pkl"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="cannot read body model") as err:
        BodyModel(bad)
    _assert_helpful(err, bad)
    with open(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
        data = pickle.load(f, encoding="latin1")
    nokeys = tmp_path / "nokeys.pkl"
    nokeys.write_bytes(pickle.dumps({k: v for k, v in data.items() if k not in ("weights", "f")}))
    with pytest.raises(ValueError, match="lacks keys f, weights") as err:
        BodyModel(nokeys)
    _assert_helpful(err, nokeys)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({**data, "weights": data["weights"][:, :10]}))
    with pytest.raises(ValueError, match=r"weights has shape \(6890, 10\), expected \(6890, 24\)"):
        BodyModel(wrong)
    bad_npz = tmp_path / "SMPLX_NEUTRAL.npz"
    bad_npz.write_bytes(b"PK broken zip")
    with pytest.raises(ValueError, match="SMPLX_NEUTRAL.npz") as err:
        BodyModel(tmp_path, model_type="smplx")
    _assert_helpful(err, bad_npz)


def test_option_errors(body_dir, tmp_path):
    with pytest.raises(ValueError, match="model_type"):
        BodyModel(body_dir, model_type="mano")
    with pytest.raises(ValueError, match="model_type must be 'smplx'"):
        BodyModel(body_dir, smplx_to_smpl=tmp_path / "map.npz")
    with pytest.raises(ValueError, match="num_betas = 16"):
        BodyModel(body_dir, num_betas=16)
    reg = tmp_path / "reg.npy"
    np.save(reg, np.ones((14, 6890)))
    with pytest.raises(ValueError, match=r"\(17, 6890\) H36M joint regressor"):
        BodyModel(body_dir, h36m_regressor=reg)
    with pytest.raises(FileNotFoundError, match="H36M regressor"):
        BodyModel(body_dir, h36m_regressor=tmp_path / "none.npy")


def test_smplx_to_smpl_mapping_formats(tmp_path):
    n = 500   # vertices of a stand-in SMPL-X mesh
    idx = np.random.default_rng(0).integers(0, n, 6890)
    np.savez(tmp_path / "idx.npz", matrix=idx)
    m = BodyModel._load_mapping(tmp_path / "idx.npz", n)
    assert m.shape == (6890, n) and torch.equal(m.argmax(1), torch.from_numpy(idx)) and (m.sum(1) == 1).all()
    import scipy.sparse

    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump({"matrix": scipy.sparse.csr_matrix(m.numpy())}, f)
    assert torch.equal(BodyModel._load_mapping(tmp_path / "m.pkl", n), m)
    with pytest.raises(ValueError, match=r"has shape \(6890, 500\); expected a \(6890, 400\) matrix"):
        BodyModel._load_mapping(tmp_path / "m.pkl", 400)


def test_procedural_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HUMR_HOME", str(tmp_path))
    body = BodyModel("procedural")
    assert body.model_file.is_relative_to(tmp_path) and body.has_h36m
    with pytest.raises(ValueError, match="model_type='smpl'"):
        BodyModel("procedural", model_type="smplx")


def test_docstring_examples(tmp_path, monkeypatch):
    import doctest

    from humr.body import model, procedural

    monkeypatch.setenv("HUMR_HOME", str(tmp_path))
    for mod in (model, procedural):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
