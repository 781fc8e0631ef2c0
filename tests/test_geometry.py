"""humr.geometry against scipy and hand-made cases."""
import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from humr import geometry as G


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_matches_scipy(dtype):
    rv = np.random.default_rng(0).normal(size=(4, 5, 3))
    rot = G.axis_angle_to_matrix(torch.tensor(rv, dtype=dtype))
    ref = Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(4, 5, 3, 3)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert rot.dtype == dtype and rot.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(rot.numpy(), ref, atol=tol)
    back = G.matrix_to_axis_angle(rot).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(back.reshape(-1, 3)).as_matrix(),
                               ref.reshape(-1, 3, 3), atol=tol * 10)


def test_axis_angle_180_degrees():
    axes = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]], dtype=torch.float64)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    rv = axes * torch.pi
    rot = G.axis_angle_to_matrix(rv)
    ref = Rotation.from_rotvec(rv.numpy()).as_matrix()
    np.testing.assert_allclose(rot.numpy(), ref, atol=1e-12)
    back = G.matrix_to_axis_angle(rot)
    # a 180 degree rotation about a and about -a are the same rotation
    np.testing.assert_allclose(back.norm(dim=-1).numpy(), np.pi, atol=1e-9)
    np.testing.assert_allclose(G.axis_angle_to_matrix(back).numpy(), ref, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_round_trip_and_gram_schmidt(dtype):
    ref = Rotation.random(30, random_state=1).as_matrix()
    rot = torch.tensor(ref, dtype=dtype).reshape(3, 10, 3, 3)
    six = G.matrix_to_rot6d(rot)
    assert six.shape == (3, 10, 6)
    np.testing.assert_allclose(six[0, 0].numpy(), ref[0][:, :2].reshape(-1), atol=1e-6)
    np.testing.assert_allclose(G.rot6d_to_matrix(six).numpy(), rot.numpy(), atol=1e-6)
    # scaled, skewed columns map to the Gram-Schmidt rotation
    a1 = torch.tensor([2.0, 0, 0], dtype=dtype)
    a2 = torch.tensor([3.0, 0.5, 0], dtype=dtype)
    out = G.rot6d_to_matrix(torch.stack([a1, a2], -1).reshape(6))
    np.testing.assert_allclose(out.numpy(), np.eye(3), atol=1e-6)
    rnd = G.rot6d_to_matrix(torch.randn(100, 6, dtype=dtype))
    eye = torch.eye(3, dtype=dtype).expand(100, 3, 3)
    assert torch.allclose(rnd @ rnd.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rnd), torch.ones(100, dtype=dtype), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_to_matrix_is_gram_schmidt_of_the_first_two_columns(dtype):
    """Against a numpy Gram-Schmidt loop on the COLUMNS [R00, R10, R20], [R01, R11, R21]."""
    x = np.random.default_rng(3).normal(size=(20, 6))
    got = G.rot6d_to_matrix(torch.tensor(x, dtype=dtype)).numpy()
    for i in range(20):
        a1, a2 = x[i, 0::2], x[i, 1::2]             # columns of the row-major 3 x 2 layout
        b1 = a1 / np.linalg.norm(a1)
        b2 = a2 - b1 @ a2 * b1
        b2 /= np.linalg.norm(b2)
        ref = np.stack([b1, b2, np.cross(b1, b2)], axis=1)
        np.testing.assert_allclose(got[i], ref, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_perspective_projection_hand_made():
    pts = torch.tensor([[0.0, 0.0, 5.0], [1.0, -2.0, 4.0]])
    uv = G.perspective_project(pts, torch.tensor([1000.0, 900.0]), torch.tensor([320.0, 240.0]))
    np.testing.assert_allclose(uv.numpy(), [[320.0, 240.0], [570.0, -210.0]], atol=1e-4)
    uv_t = G.perspective_project(pts - torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1000.0, 900.0]),
                                 torch.tensor([320.0, 240.0]), translation=torch.tensor([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(uv_t.numpy(), uv.numpy(), atol=1e-4)


def test_weak_cam_to_full_translation_reprojects_crop():
    """A point projected with the full-image camera lands where the weak camera puts it."""
    torch.manual_seed(0)
    cam = torch.tensor([[0.9, 0.05, -0.1]], dtype=torch.float64)
    center = torch.tensor([[400.0, 150.0]], dtype=torch.float64)
    box = torch.tensor([180.0], dtype=torch.float64)
    hw = torch.tensor([[480.0, 640.0]], dtype=torch.float64)
    focal = G.estimate_focal(hw)
    assert focal.item() == pytest.approx(800.0)
    t = G.weak_cam_to_full_translation(cam, center, box, hw, focal)
    # a point at the body origin (depth 0) projects to the crop position s*(0)+ (tx,ty)*s
    origin = torch.zeros(1, 1, 3, dtype=torch.float64)
    uv = G.perspective_project(origin, focal[:, None].expand(1, 2), hw.flip(-1) / 2, t)
    crop = G.full_to_crop(uv, center, box)
    np.testing.assert_allclose(crop.numpy()[0, 0], (cam[0, 0] * cam[0, 1:]).numpy(), atol=1e-12)
    # and a small offset X scales by s (weak perspective is exact at depth tz for a planar point)
    p = torch.tensor([[[0.1, -0.2, 0.0]]], dtype=torch.float64)
    crop_p = G.full_to_crop(G.perspective_project(p, focal[:, None].expand(1, 2), hw.flip(-1) / 2, t), center, box)
    np.testing.assert_allclose(crop_p.numpy()[0, 0], (cam[0, 0] * (p[0, 0, :2] + cam[0, 1:])).numpy(), atol=1e-12)


def test_crop_round_trip():
    pts = torch.rand(2, 7, 2) * 500
    center = torch.tensor([[100.0, 200.0], [300.0, 50.0]])
    box = torch.tensor([150.0, 80.0])
    crop = G.full_to_crop(pts, center, box)
    assert torch.allclose(G.crop_to_full(crop, center, box), pts, atol=1e-3)
    corner = G.full_to_crop(torch.tensor([[[175.0, 275.0]]]), center[:1], box[:1])
    np.testing.assert_allclose(corner.numpy(), [[[1.0, 1.0]]])


def _scipy_similarity(pred, gt):
    mp, mg = pred.mean(0), gt.mean(0)
    p0, g0 = pred - mp, gt - mg
    R, sca = orthogonal_procrustes(p0, g0)  # p0 @ R ~ g0, R may be a reflection
    if np.linalg.det(R) < 0:
        return None
    s = sca / (p0 ** 2).sum()
    return s * p0 @ R + mg


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_procrustes_matches_scipy(dtype):
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(6, 14, 3))
    gt = rng.normal(size=(6, 14, 3))
    out = G.procrustes_align(torch.tensor(pred, dtype=dtype), torch.tensor(gt, dtype=dtype)).numpy()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    checked = 0
    for i in range(6):
        ref = _scipy_similarity(pred[i], gt[i])
        if ref is not None:
            np.testing.assert_allclose(out[i], ref, atol=tol)
            checked += 1
        # the result is never worse than the identity-rotation alignment
        base = (pred[i] - pred[i].mean(0)) + gt[i].mean(0)
        assert ((out[i] - gt[i]) ** 2).sum() <= ((base - gt[i]) ** 2).sum() + tol
    assert checked >= 2


def test_procrustes_recovers_similarity_and_rejects_reflection():
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(20, 3))
    R = Rotation.random(random_state=5).as_matrix()
    pred = 0.3 * gt @ R.T + np.array([1.0, -2.0, 0.5])
    out = G.procrustes_align(torch.tensor(pred), torch.tensor(gt)).numpy()
    np.testing.assert_allclose(out, gt, atol=1e-10)
    # a mirrored copy cannot be aligned exactly by a proper rotation
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    out_m = G.procrustes_align(torch.tensor(mirrored), torch.tensor(gt)).numpy()
    assert np.abs(out_m - gt).max() > 1e-3
    centred = mirrored - mirrored.mean(0)
    Rm, _ = orthogonal_procrustes(centred, gt - gt.mean(0))
    assert np.linalg.det(Rm) < 0  # scipy's unconstrained answer is the reflection


def test_shape_errors_name_argument():
    with pytest.raises(ValueError, match="rotmat"):
        G.matrix_to_rot6d(torch.zeros(3, 3, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        G.rot6d_to_matrix(torch.zeros(5))
    with pytest.raises(ValueError, match="equal shapes"):
        G.procrustes_align(torch.zeros(4, 3), torch.zeros(5, 3))
