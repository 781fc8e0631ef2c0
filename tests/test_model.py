"""HUMR model: shapes for every flow x conditioner subset, densities, mode, seeds, camera
geometry against a hand-written projection, losses, dtypes and helpful errors."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _batches import make_batch
from scipy.spatial.transform import Rotation

import humr
from humr.body import BodyModel
from humr.losses import DEFAULT_WEIGHTS
from humr.model import HUMR, build_model

CONDITIONS = ("image", "pose2d", "bbox", "diffpose")
SMALL = ["model.conditions.image.backbone=small_cnn", "model.flow.num_blocks=2",
         "model.flow.hidden_features=64", "model.head.hidden=64"]
DIFFPOSE = ["model.conditions.diffpose.num_samples=8", "model.conditions.diffpose.d_model=16"]


@pytest.fixture(scope="module")
def body(body_dir):
    return BodyModel(body_dir)


def small_model(body, overrides=(), **kw):
    conds = kw.get("conditions", ["image", "pose2d", "bbox"])
    extra = [o for o in SMALL if "image" in conds or "image" not in o]
    extra += DIFFPOSE if "diffpose" in conds else []
    return build_model(body=body, overrides=[*extra, *overrides], **kw)


SUBSETS = [list(s) for r in range(1, 5) for s in itertools.combinations(CONDITIONS, r)]


@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow"])
def test_output_shapes_every_flow_and_condition_subset(body, flow):
    batch = make_batch()
    B, S, J = 2, 3, 24
    expected = {"pose_6d": (B, S, 6 * J), "rotmat": (B, S, J, 3, 3), "betas": (B, S, 10),
                "cam": (B, S, 3), "cam_t": (B, S, 3), "log_prob": (B, S), "joints3d": (B, S, J, 3),
                "keypoints3d": (B, S, 17, 3), "joints2d": (B, S, J, 2), "keypoints2d": (B, S, 17, 2)}
    dims = {"image": 256, "pose2d": 256, "bbox": 3, "diffpose": 256}
    for conds in SUBSETS:
        model = small_model(body, flow=flow, conditions=conds)
        assert model.context_dim == sum(dims[c] for c in conds)
        assert list(model.conditions) == conds
        out = model(batch, num_samples=S)
        assert out.pop("context").shape == (B, model.context_dim)
        assert {k: tuple(v.shape) for k, v in out.items()} == expected, conds
        assert all(torch.isfinite(v).all() for v in out.values()), conds


def test_body_outputs_only_when_asked(body):
    model = small_model(body).eval()
    batch = make_batch()
    out = model(batch, num_samples=2)
    assert not {"vertices", "lsp14", "h36m17", "log_prob_gt"} & set(out)
    out = model(batch, num_samples=2, outputs=("vertices", "lsp14", "h36m17"))
    assert out["vertices"].shape == (2, 2, 6890, 3) and out["lsp14"].shape == (2, 2, 14, 3)
    h36m = body(out["rotmat"], out["betas"], joints_only=False)["h36m17"]
    torch.testing.assert_close(out["h36m17"], h36m, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="lsp14"):
        model(batch, num_samples=2, outputs=("mesh",))
    # joints of the mesh pass equal the joints-only pass
    full = body(out["rotmat"], out["betas"], joints_only=False)
    torch.testing.assert_close(out["joints3d"], full["joints"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["keypoints3d"], full["coco17"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("flow", ["nice", "realnvp", "glow"])
def test_log_prob_of_samples_equals_sampler(body, flow):
    model = small_model(body, flow=flow, conditions=["image", "bbox"]).eval()
    batch = make_batch()
    with torch.no_grad():
        for p in model.flow.parameters():    # move away from the near-identity initialisation
            p.add_(0.05 * torch.randn_like(p))
        out = model(batch, num_samples=5)
        torch.testing.assert_close(model.log_prob(batch, out["pose_6d"]), out["log_prob"],
                                   atol=1e-4, rtol=1e-4)
        # without S: (B, D) -> (B,)
        torch.testing.assert_close(model.log_prob(batch, out["pose_6d"][:, 2]), out["log_prob"][:, 2],
                                   atol=1e-4, rtol=1e-4)


def test_log_prob_of_rotation_matrices(body):
    """Orthonormal 6D poses (the mode of a fresh flow = the mean pose) give the same density as
    rotation matrices (B, S, J, 3, 3) and (B, J, 3, 3)."""
    model = small_model(body).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch, num_samples=1)
        rot = out["rotmat"]
        torch.testing.assert_close(rot.transpose(-1, -2) @ rot, torch.eye(3).expand_as(rot),
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(model.log_prob(batch, rot), out["log_prob"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model.log_prob(batch, rot[:, 0]), out["log_prob"][:, 0],
                                   atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"pose must have shape"):
        model.log_prob(batch, torch.zeros(2, 5, 7))


def test_log_prob_of_matrices_differs_from_the_sample_density(body):
    """A sample is an unconstrained 6D point; its rotation matrix maps back to another 6D point
    (orthonormalised columns), so log_prob(rotmat) is not the sample's log_prob (README)."""
    model = small_model(body, conditions=["bbox"]).eval()
    batch = make_batch()
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
        out = model(batch, num_samples=4)
        from_6d = model.log_prob(batch, out["pose_6d"])
        from_rot = model.log_prob(batch, out["rotmat"])
    torch.testing.assert_close(from_6d, out["log_prob"], atol=1e-4, rtol=1e-4)
    assert (from_rot[:, 1:] - out["log_prob"][:, 1:]).abs().min() > 1e-2


def test_gt_log_prob_equals_log_prob_of_scipy_rotations(body):
    model = small_model(body).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch, num_samples=2)
        gt = model.objective.eval().gt_log_prob(model, batch, out)     # eval: no GT noise
        rot = Rotation.from_rotvec(batch["pose"].reshape(-1, 3).double().numpy()).as_matrix()
        rot = torch.from_numpy(rot).float().view(2, 24, 3, 3)
        torch.testing.assert_close(gt, model.log_prob(batch, rot), atol=1e-4, rtol=1e-4)


def test_objective_fills_the_ground_truth_joints_kp3d_mode_needs(body):
    """kp3d_mode reads out['joints3d_gt']: the objective poses batch['pose'] / ['betas'] with
    the model's body (checked against scipy rotations and a body call), once per step."""
    model = small_model(body, losses=["nll", "kp3d_mode"]).eval()
    batch = make_batch()
    assert model.objective.needs() == {"log_prob_gt", "joints3d_gt"}
    assert model.objective.weights["kp3d_mode"] == DEFAULT_WEIGHTS["kp3d_mode"] == 0.05
    with torch.no_grad():
        out = model(batch, num_samples=3)
        _, parts = model.loss(batch, out)
        rot = Rotation.from_rotvec(batch["pose"].reshape(-1, 3).double().numpy()).as_matrix()
        rot = torch.from_numpy(rot).float().view(2, 24, 3, 3)
        gt = body(rot, batch["betas"].float())["joints"]
    pred = out["joints3d"][:, 0]
    expected = ((pred - pred[:, :1]) - (gt - gt[:, :1])).abs().sum() / 2
    torch.testing.assert_close(parts["kp3d_mode"], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"joints3d_gt"):
        model.objective(None, batch, {**out, "log_prob_gt": torch.zeros(2)})


def test_loss_needs_no_flags_and_adds_gt_noise_in_training(body):
    """model.loss computes the GT density itself; in training mode the GT 6D pose gets
    N(0, 0.005^2) noise (official), so nll differs from the noiseless value by a known amount."""
    model = small_model(body, conditions=["bbox"], losses=["nll"])
    batch = make_batch()
    model.eval()
    out = model(batch, num_samples=2)
    with torch.no_grad():
        clean, _ = model.loss(batch, out)
        rot = torch.from_numpy(Rotation.from_rotvec(batch["pose"].reshape(-1, 3).numpy()).as_matrix())
        x = rot.float().view(2, 24, 3, 3)[..., :2].flatten(-3)     # 6D: first two columns
        expected = -model.log_prob(batch, x).mean() / 144 * 0.1
        torch.testing.assert_close(clean, expected, atol=1e-5, rtol=1e-5)
        model.train()
        torch.manual_seed(4)
        noisy, _ = model.loss(batch, out)
        torch.manual_seed(4)
        noise = 0.005 * torch.randn(2, 144)
        torch.testing.assert_close(noisy, -model.log_prob(batch, x + noise).mean() / 144 * 0.1,
                                   atol=1e-5, rtol=1e-5)
        assert (noisy - clean).abs() > 0
        off = build_model(body=body, conditions=["bbox"], losses=["nll"], overrides=[
            *SMALL[1:], "losses.nll.gt_noise_std=0"])
        assert off.objective.gt_noise_std == 0.0


def test_mode_is_hypothesis_zero_and_deterministic(body):
    model = small_model(body).eval()
    batch = make_batch()
    torch.manual_seed(1)
    a = model(batch, num_samples=4)
    torch.manual_seed(2)
    b = model(batch, num_samples=6)
    c = model(batch, num_samples=1)
    d = model(batch, num_samples=3, z=torch.zeros(2, 3, 144))
    torch.testing.assert_close(a.pop("context"), d.pop("context"), rtol=0, atol=0)
    for key in a:
        torch.testing.assert_close(a[key][:, 0], b[key][:, 0], rtol=0, atol=0)
        torch.testing.assert_close(a[key][:, 0], c[key][:, 0], rtol=0, atol=0)
        torch.testing.assert_close(d[key][:, 2], c[key][:, 0], rtol=0, atol=0)
    assert not torch.allclose(b["pose_6d"][:, 1], b["pose_6d"][:, 2])    # random hypotheses differ
    # the mode of a fresh flow is the upright mean pose: root 180 degrees about x, rest identity
    rot = a["rotmat"][:, 0]
    torch.testing.assert_close(rot[:, 0], torch.diag(torch.tensor([1.0, -1.0, -1.0])).expand(2, 3, 3))
    torch.testing.assert_close(rot[:, 1:], torch.eye(3).expand(2, 23, 3, 3))


def test_same_seed_same_outputs(body):
    torch.manual_seed(5)
    m1 = small_model(body, conditions=["image", "pose2d", "bbox", "diffpose"])
    torch.manual_seed(5)
    m2 = small_model(body, conditions=["image", "pose2d", "bbox", "diffpose"])
    batch = make_batch()
    torch.manual_seed(3)
    a = m1(batch, num_samples=4)                       # train mode: dropout too
    torch.manual_seed(3)
    b = m2(batch, num_samples=4)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    m1.eval()
    torch.testing.assert_close(m1(batch, 4, generator=g1)["pose_6d"], m1(batch, 4, generator=g2)["pose_6d"],
                               rtol=0, atol=0)


def _project_by_hand(points, cam, center, box, hw, focal):
    """numpy reference: CLIFF translation, pinhole projection, crop coordinates."""
    s, tx, ty = cam
    h, w = hw
    t = np.array([tx + 2 * (center[0] - w / 2) / (box * s), ty + 2 * (center[1] - h / 2) / (box * s),
                  2 * focal[0] / (box * s)])
    p = points + t
    u = focal[0] * p[:, 0] / p[:, 2] + w / 2
    v = focal[1] * p[:, 1] / p[:, 2] + h / 2
    return t, np.stack([(u - center[0]) / (box / 2), (v - center[1]) / (box / 2)], axis=-1)


@pytest.mark.parametrize("with_focal", [False, True])
def test_camera_and_projection_match_hand_computation(body, with_focal):
    model = small_model(body).eval()
    batch = make_batch()
    if with_focal:
        batch["focal"] = torch.tensor([[900.0, 950.0], [1200.0, 1100.0]])
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.01 * torch.randn_like(p))
        out = model(batch, num_samples=3)
    for b in range(2):
        h, w = batch["orig_shape"][b].tolist()
        focal = batch["focal"][b].numpy() if with_focal else np.array([math.hypot(h, w)] * 2)
        cam = out["cam"][b, 0].double().numpy()
        assert cam[0] > 0
        for s in range(3):
            for key3d, key2d in (("joints3d", "joints2d"), ("keypoints3d", "keypoints2d")):
                t, uv = _project_by_hand(out[key3d][b, s].double().numpy(), cam,
                                         batch["center"][b].numpy(), 200 * batch["scale"][b, 0].item(),
                                         (h, w), focal)
                np.testing.assert_allclose(out["cam_t"][b, s].numpy(), t, rtol=1e-5)
                np.testing.assert_allclose(out[key2d][b, s].numpy(), uv, atol=1e-4)


def test_head_initial_camera_and_betas(body):
    model = small_model(body, overrides=["model.head.init_scale=0.7"]).eval()
    out = model(make_batch(), num_samples=2)
    torch.testing.assert_close(out["cam"], torch.tensor([0.7, 0.0, 0.0]).expand(2, 2, 3))
    assert out["betas"].abs().max() == 0


def test_loss_is_weighted_sum_and_backpropagates(body):
    names = ["nll", "mmd", "mask", "kp2d_mode", "kp2d_vis", "betas", "orth", "cam"]
    model = small_model(body, conditions=["image", "pose2d", "bbox"], losses=names,
                        overrides=["losses.mmd.weight=0.3"])
    with torch.no_grad():        # zero-initialised output layers pass no gradient to the context
        for p in [*model.flow.parameters(), *model.head.parameters()]:
            p.add_(0.01 * torch.randn_like(p))
    batch = make_batch()
    out = model(batch, num_samples=6)
    total, parts = model.loss(batch, out)
    assert set(parts) == set(names)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in parts.values())
    weights = {**DEFAULT_WEIGHTS, "mmd": 0.3}
    expected = sum(weights[n] * parts[n].item() for n in names)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    for part in (model.flow, model.head, model.conditions["image"], model.conditions["pose2d"]):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_float64_model(body_dir):
    own_body = BodyModel(body_dir)
    torch.manual_seed(0)
    m32 = small_model(own_body, conditions=["image", "pose2d", "bbox", "diffpose"]).eval()
    batch = make_batch()
    z = torch.randn(2, 3, 144)
    ref = m32(batch, num_samples=3, z=z)
    m64 = m32.to(torch.float64)
    out = m64(batch, num_samples=3, z=z.double(), outputs=("vertices",))
    assert all(v.dtype == torch.float64 for v in out.values())
    assert own_body.v_template.dtype == torch.float64
    for key in ("pose_6d", "log_prob", "keypoints2d"):
        torch.testing.assert_close(out[key].float(), ref[key], atol=1e-3, rtol=1e-4)
    total, _ = m64.loss(make_batch(), out)
    assert total.dtype == torch.float64


def test_unknown_names_list_the_choices(body):
    with pytest.raises(KeyError, match="realnvp"):
        small_model(body, flow="nvp")
    with pytest.raises(KeyError, match="pose2d"):
        small_model(body, conditions=["image", "keypoints"])
    with pytest.raises(KeyError, match="small_cnn"):
        small_model(body, overrides=["model.conditions.image.backbone=resnet"])
    with pytest.raises(KeyError, match="kp2d_mode"):
        small_model(body, losses=["nll", "l2"])
    with pytest.raises(KeyError, match="conditions"):
        build_model(body=body, condtions=["image"])
    with pytest.raises(ValueError, match="repeats"):
        small_model(body, conditions=["bbox", "bbox"])


def test_bad_batches_name_the_key(body):
    model = small_model(body, conditions=["image", "pose2d"]).eval()
    batch = make_batch()
    with pytest.raises(KeyError, match="cond_kp"):
        model({k: v for k, v in batch.items() if k != "cond_kp"}, num_samples=2)
    with pytest.raises(ValueError, match="center"):
        model({**batch, "center": torch.zeros(2, 3)}, num_samples=2)
    with pytest.raises(KeyError, match="pose"):
        model.loss({k: v for k, v in batch.items() if k != "pose"}, model(batch, num_samples=2))
    with pytest.raises(ValueError, match="num_samples"):
        model(batch, num_samples=0)


def test_build_from_yaml_with_overrides(body, tmp_path):
    cfg = humr.config.Config.load(None, overrides=["model.flow=nice", "model.flow.num_blocks=2",
                                                    "model.flow.hidden_features=32",
                                                    "model.head.hidden=32",
                                                    "model.conditions.image.backbone=small_cnn"])
    path = cfg.save(tmp_path / "c.yaml")
    model = humr.build_model(path, body=body, flow="glow", conditions=["bbox"], losses=["nll"])
    assert isinstance(model, HUMR)
    assert type(model.flow).__name__ == "GlowFlow" and list(model.conditions) == ["bbox"]
    # switching nice -> glow keeps the changed width
    widths = {m.out_features for m in model.flow.modules() if isinstance(m, torch.nn.Linear)}
    assert 32 in widths and 64 not in widths and 1024 not in widths
    assert list(model.objective.losses) == ["nll"]
    assert "objective" not in dict(model.named_children())       # the model owns no losses
    assert humr.build_model is build_model


def test_autocast_keeps_the_body_and_cameras_in_model_dtype(body):
    model = small_model(body, conditions=["image", "pose2d", "bbox"], losses=["nll", "kp2d_mode"])
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, num_samples=3)
        total, _ = model.loss(batch, out)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert torch.isfinite(total)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_follows_the_device(body_dir):
    model = small_model(BodyModel(body_dir), conditions=["image", "pose2d", "bbox", "diffpose"]).eval()
    batch = make_batch()
    z = torch.randn(2, 3, 144)
    ref = model(batch, num_samples=3, z=z)
    model.cuda()
    out = model({k: v.cuda() for k, v in batch.items()}, num_samples=3, z=z.cuda())
    for key in ref:
        assert out[key].device.type == "cuda"
        torch.testing.assert_close(out[key].cpu(), ref[key], atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_step_follows_the_device(body_dir):
    """Every loss of the full model (the mask loss's every-point search and the MMD kernel's
    hand-written backward run on CUDA) and every gradient equal the CPU's, in float64 (float32
    convolutions on CUDA sum in another order and may use TF32)."""
    names = ["nll", "mmd", "mask", "kp2d_mode", "kp2d_vis", "betas", "orth", "cam"]
    model = small_model(BodyModel(body_dir), conditions=["image", "pose2d", "bbox"],
                        losses=names).double().eval()           # no dropout: the same function
    with torch.no_grad():        # zero-initialised output layers pass no gradient to the context
        for p in [*model.flow.parameters(), *model.head.parameters()]:
            p.add_(0.01 * torch.randn_like(p))
    batch = make_batch(dtype=torch.float64)
    batch["hm_max_conf"][:, ::2] = 0.1                          # invisible joints ...
    batch["mask"].zero_()
    batch["mask"][:, 24:40, 24:40] = 1                          # ... outside a small person
    z = torch.randn(2, 6, 144, dtype=torch.float64)

    def step(m, b):
        m.zero_grad(set_to_none=True)
        total, parts = m.loss(b, m(b, num_samples=6, z=z.to(b["img"].device)))
        total.backward()
        # copies: moving the module later moves its gradients in place, the CPU ones too
        grads = {n: p.grad.to("cpu", copy=True) for n, p in m.named_parameters()
                 if p.grad is not None}
        return {k: v.detach().to("cpu", copy=True) for k, v in parts.items()}, grads

    ref_parts, ref_grads = step(model, batch)
    assert all(ref_parts[name] > 0 for name in ("mmd", "mask", "kp2d_mode"))
    parts, grads = step(model.cuda(), {k: v.cuda() for k, v in batch.items()})
    for name in names:
        torch.testing.assert_close(parts[name], ref_parts[name], msg=lambda m, n=name: f"{n}: {m}")
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], msg=lambda m, n=name: f"{n}: {m}")
