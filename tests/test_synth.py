"""Synthetic benchmark: pose prior limits, occlusion rules, ideal detector, posterior samples
(re-projected with an independent body pass), heatmap peaks, mask, determinism and resume."""
import hashlib

import numpy as np
import pytest
import torch

from humr.data.detector import detect, gaussian_maps
from humr.data.occlusion import hidden_joints, rotations_to_resample
from humr.data.pose_prior import JointLimitPrior
from humr.data.synthetic import SynthConfig, generate, make_example
from humr.geometry import axis_angle_to_matrix, perspective_project

CFG = SynthConfig(posterior_samples=16, candidates=128, max_rounds=3, shard_size=2)


@pytest.fixture(scope="module")
def body(body_dir):
    from humr.body import BodyModel

    return BodyModel(body_dir, dtype=torch.float64)


@pytest.fixture(scope="module")
def examples(body):
    cfg = SynthConfig(**{**CFG.__dict__, "body_model": "unused"})
    prior = JointLimitPrior()
    return [make_example(i, "train", 3, cfg, body, prior, extras=True) for i in range(24)]


def test_prior_bends_knees_backwards_and_elbows_forwards():
    rot = JointLimitPrior().sample(500, np.random.default_rng(1))
    down, left, right = (torch.tensor(v, dtype=torch.float64) for v in
                         ([0, -1, 0], [1, 0, 0], [-1, 0, 0]))
    for knee in (4, 5):
        assert ((rot[:, knee] @ down)[:, 2] <= 1e-9).all()          # shin swings to -z
    assert ((rot[:, 18] @ left)[:, 2] >= -0.1).all()                 # forearm swings to +z
    assert ((rot[:, 19] @ right)[:, 2] >= -0.1).all()
    # global orientation: upright in the camera frame (body up = camera -y) within 20 degrees
    up = rot[:, 0] @ torch.tensor([0, 1.0, 0], dtype=torch.float64)
    assert (up[:, 1] < -np.cos(np.deg2rad(20))).all()


def test_closed_form_euler_matches_roma():
    import roma

    xyz = np.random.default_rng(2).uniform(-np.pi, np.pi, (50, 4, 3))
    got = JointLimitPrior._euler_to_rotmat(xyz)
    ref = roma.euler_to_rotmat("ZYX", torch.from_numpy(np.ascontiguousarray(xyz[..., ::-1])))
    assert got.shape == (50, 4, 3, 3) and got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_resample_changes_only_the_given_joints():
    prior, rng = JointLimitPrior(), np.random.default_rng(0)
    base = prior.sample(1, rng)[0]
    out = prior.resample(base, [16, 18], 8, rng)
    keep = [j for j in range(24) if j not in (16, 18)]
    assert torch.equal(out[:, keep], base[keep].expand(8, -1, -1, -1))
    assert (out[:, 18] - base[18]).abs().amax() > 0
    with pytest.raises(ValueError, match="joints"):
        prior.resample(base, [0], 2, rng)


def test_hidden_joints_against_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-20, 120, (50, 17, 2))
    boxes = np.array([[10, 10, 40, 50], [60, 0, 90, 30.0]])
    got = hidden_joints(pts, boxes, (100, 80))
    for p, g in zip(pts.reshape(-1, 2), got.reshape(-1)):
        out = not (0 <= p[0] < 80 and 0 <= p[1] < 100)
        occ = any(b[0] <= p[0] < b[2] and b[1] <= p[1] < b[3] for b in boxes)
        assert g == (out or occ)


def test_rotations_explaining_hidden_joints():
    hidden = np.zeros(17, bool)
    assert rotations_to_resample(hidden) == []
    hidden[15] = True                           # left ankle -> left knee
    assert rotations_to_resample(hidden) == [4]
    hidden[8] = True                            # right elbow -> right shoulder + elbow
    assert rotations_to_resample(hidden) == [4, 17, 19]
    hidden[:] = False
    hidden[0] = True                            # nose: no rotation
    assert rotations_to_resample(hidden) == []


def test_gaussian_maps_and_detect_argmax():
    hm = gaussian_maps(np.array([[-0.5, 0.25]]), (8, 16), sigma=1.3)[0]
    # brute force at pixel centres: x = (-0.5 + 1) / 2 * 16 = 4, y = (0.25 + 1) / 2 * 8 = 5
    for r in range(8):
        for c in range(16):
            d2 = (c + 0.5 - 4.0) ** 2 + (r + 0.5 - 5.0) ** 2
            assert hm[r, c] == pytest.approx(np.exp(-d2 / (2 * 1.3 ** 2)))
    maps = torch.zeros(2, 8, 8, dtype=torch.float64)
    maps[0, 2, 5], maps[1, 7, 0] = 0.9, 0.3
    out = detect(maps, torch.tensor([100.0, 50.0], dtype=torch.float64),
                 torch.tensor(80.0, dtype=torch.float64))
    # pixel (5, 2) centre -> crop ((5.5 / 8) * 2 - 1, (2.5 / 8) * 2 - 1) -> full c + u * b / 2
    assert out[0].tolist() == pytest.approx([100 + (5.5 / 4 - 1) * 40, 50 + (2.5 / 4 - 1) * 40, 0.9])
    assert out[1].tolist() == pytest.approx([100 + (0.5 / 4 - 1) * 40, 50 + (7.5 / 4 - 1) * 40, 0.3])


def _project(body, pose, betas, ex):
    rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float64).reshape(-1, 24, 3))
    coco = body(rot, torch.as_tensor(betas, dtype=torch.float64))["coco17"]
    focal = torch.as_tensor(ex["focal"], dtype=torch.float64)
    principal = torch.tensor([CFG.frame_hw[1] / 2, CFG.frame_hw[0] / 2], dtype=torch.float64)
    return perspective_project(coco, focal, principal, torch.as_tensor(ex["transl"])).numpy()


def test_posterior_keeps_visible_joints_and_hidden_joints_hidden(body, examples):
    spread = []
    for ex in examples:
        post = ex["posterior"]
        np.testing.assert_allclose(post[0], ex["pose"], atol=1e-6)      # ground truth first
        proj = _project(body, post, ex["betas"], ex)                     # (P, 17, 2)
        vis = ex["coco_visible"]
        gt = _project(body, ex["pose"][None], ex["betas"], ex)[0]
        np.testing.assert_allclose(gt, ex["coco_gt"][:, :2], atol=1e-2)
        err = np.linalg.norm(proj[:, vis] - gt[vis], axis=-1)
        assert err.max() <= CFG.tolerance_px + 0.05                  # float32 storage slack
        assert hidden_joints(proj[:, ~vis], ex["boxes"], CFG.frame_hw).all()
        # the rotations outside the hidden chains are those of the ground truth
        moved = rotations_to_resample(~vis)
        keep = [j for j in range(24) if j not in moved]
        p = post.reshape(len(post), 24, 3)
        np.testing.assert_allclose(p[:, keep], np.broadcast_to(p[:1, keep], p[:, keep].shape),
                                   atol=1e-6)
        if moved:
            spread.append(int(ex["posterior_count"]))
    assert max(spread) > 1                        # some hidden chains get a real posterior


def test_heatmap_peaks_and_detected_pose(examples):
    for ex in examples:
        vis = ex["coco_visible"]
        assert (ex["hm_max_conf"][vis] >= 0.9).all()
        assert (ex["hm_max_conf"][~vis] < 0.5).all()
        np.testing.assert_allclose(ex["hm_max_conf"], ex["heatmaps"].reshape(17, -1).max(1))
        # a visible joint is detected within one heatmap pixel of the ground truth
        px = 200 * ex["scale"][0] / CFG.heatmap_res
        err = np.linalg.norm(ex["cond_kp"][vis, :2] - ex["coco_gt"][vis, :2], axis=-1)
        assert (err <= px).all()
        np.testing.assert_allclose(ex["cond_kp"][:, 2], ex["hm_max_conf"], atol=1e-6)


def test_occlusion_share_and_mask_contains_silhouette(body, examples):
    from humr.viz.mesh import crop_camera
    from humr.viz.render import render_mesh

    hidden = np.array([(~ex["coco_visible"]).sum() for ex in examples])
    assert (hidden >= 2).mean() >= 0.3
    for ex in examples[:4]:
        rot = axis_angle_to_matrix(torch.as_tensor(ex["pose"], dtype=torch.float64).reshape(24, 3))
        verts = body(rot[None], torch.as_tensor(ex["betas"], dtype=torch.float64)[None],
                     return_vertices=True)["vertices"][0].numpy() + ex["transl"]
        focal, principal = crop_camera(ex["focal"], ex["center"], 200 * ex["scale"][0],
                                       CFG.frame_hw, CFG.crop_res)
        sil = render_mesh(verts, body.faces, focal, principal, (CFG.crop_res,) * 2)["silhouette"]
        assert sil.any() and ex["mask"][sil].all()
        assert ex["mask_valid"]


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files_resume_and_parameter_check(tmp_path, body_dir):
    cfg = SynthConfig(**{**CFG.__dict__, "body_model": str(body_dir)})
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = _digest(generate(tmp_path / "a", 3, 2, seed=5, config=cfg))
        assert torch.get_num_threads() == 2      # in-process generation restores the threads
    finally:
        torch.set_num_threads(threads)
    assert set(a) == {"meta.json", "train/shard_00000.npz", "train/shard_00001.npz",
                      "test/shard_00000.npz"}
    assert _digest(generate(tmp_path / "b", 3, 2, seed=5, config=cfg)) == a
    assert _digest(generate(tmp_path / "w", 3, 2, seed=5, config=cfg, workers=2)) == a
    (tmp_path / "a" / "train" / "shard_00001.npz").unlink()            # interrupted run
    assert _digest(generate(tmp_path / "a", 3, 2, seed=5, config=cfg)) == a
    assert _digest(generate(tmp_path / "c", 3, 2, seed=6, config=cfg)) != a
    with pytest.raises(ValueError, match="other parameters"):
        generate(tmp_path / "a", 3, 2, seed=6, config=cfg)


def _euler_of(rot):
    """Intrinsic ZYX angles (x, y, z) of rotations (..., 3, 3) (roma, reversed to x, y, z)."""
    import roma

    return roma.rotmat_to_euler("ZYX", rot)[..., [2, 1, 0]].numpy()


def test_limit_scale_and_yaw_knobs_bound_the_prior():
    rng = np.random.default_rng(4)
    full, half = JointLimitPrior(), JointLimitPrior(limit_scale=0.5, yaw_deg=30.0)
    np.testing.assert_allclose(half.low, full.low * 0.5)
    np.testing.assert_allclose(half.high, full.high * 0.5)
    rot = half.sample(400, rng)
    angles = _euler_of(rot[:, 1:])                                   # local joints
    assert (angles >= half.low[1:] - 1e-9).all() and (angles <= half.high[1:] + 1e-9).all()
    knee = angles[:, 3, 0]                                           # joint 4, about x
    assert knee.max() <= np.deg2rad(65) + 1e-9 and knee.max() > np.deg2rad(55)
    # yaw: the body's forward axis (+z) turned into the camera frame; camera looks along +z,
    # so a person facing the camera has forward ~ -z; |yaw| <= 30 deg (+ pitch / roll)
    def yaw_deg(rot0):
        forward = rot0 @ torch.tensor([0, 0, 1.0], dtype=torch.float64)
        return np.degrees(np.arctan2(forward[:, 0].numpy(), -forward[:, 2].numpy()))

    assert 20 < np.abs(yaw_deg(rot[:, 0])).max() <= 30 + 20
    assert np.abs(yaw_deg(full.sample(400, rng)[:, 0])).max() > 150
    for bad in ({"limit_scale": 0.0}, {"limit_scale": 1.5}, {"yaw_deg": -1.0}, {"yaw_deg": 200.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            JointLimitPrior(**bad)


def test_generator_workers_use_the_configs_knobs(tmp_path, body_dir):
    cfg = SynthConfig(**{**CFG.__dict__, "body_model": str(body_dir), "limit_scale": 0.3,
                         "yaw_deg": 10.0})
    root = generate(tmp_path / "k", 4, 0, seed=1, config=cfg, workers=2)
    from humr.data.format import read_meta, read_shard

    assert read_meta(root)["generator"]["limit_scale"] == 0.3
    pose = np.concatenate([read_shard(root / "train" / f"shard_0000{k}.npz")["pose"]
                           for k in range(2)])
    rot = axis_angle_to_matrix(torch.from_numpy(pose).double().view(-1, 24, 3))
    angles = _euler_of(rot[:, 1:])
    prior = cfg.prior()
    assert (angles >= prior.low[1:] - 1e-5).all() and (angles <= prior.high[1:] + 1e-5).all()
    assert np.abs(JointLimitPrior().high[1:]).max() > np.abs(angles).max() * 2


@pytest.mark.parametrize("knob, value, bad", [("light_dir", (-0.3, -0.8, -0.5), (0.0, 0.0, 0.0)),
                                             ("depth_cue", 2.0, -1.0)])
def test_image_knobs_change_the_image_only(body, knob, value, bad):
    """``light_dir`` re-lights the same example and ``depth_cue`` shades it by depth: every
    stored key but the image is equal; a bad value is refused naming the knob."""
    cfg = SynthConfig(**{**CFG.__dict__, "body_model": "unused"})
    changed = SynthConfig(**{**cfg.__dict__, knob: value})
    prior = JointLimitPrior()
    a, b = (make_example(2, "train", 3, c, body, prior) for c in (cfg, changed))
    assert set(a) == set(b)
    for key in a:
        if key != "img":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert np.abs(a["img"].astype(int) - b["img"].astype(int)).max() > 20
    with pytest.raises(ValueError, match=knob):
        SynthConfig(**{knob: bad})


def test_a_folder_written_before_a_knob_existed_reads_as_its_default(tmp_path, body_dir):
    """meta.json without a later knob (``light_dir``) matches the default config (resumes),
    not another value of the knob."""
    import json

    from humr.data.synthetic import recorded_config

    cfg = SynthConfig(**{**CFG.__dict__, "body_model": str(body_dir)})
    root = generate(tmp_path / "old", 2, 0, seed=5, config=cfg)
    meta = json.loads((root / "meta.json").read_text())
    del meta["generator"]["light_dir"]
    (root / "meta.json").write_text(json.dumps(meta))
    assert recorded_config(meta) == cfg.to_dict()
    assert recorded_config({}) is None
    generate(root, 2, 0, seed=5, config=cfg)                              # same: accepted
    with pytest.raises(ValueError, match="other parameters"):
        generate(root, 2, 0, seed=5, config=SynthConfig(**{**cfg.__dict__,
                                                           "light_dir": (0.0, -1.0, 0.0)}))
