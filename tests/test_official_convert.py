"""The official release's checkpoint converted to humr: the FrEIA flow built with FrEIA itself
(random weights) is the reference for densities, samples and rotations."""
from __future__ import annotations

import math

import pytest
import torch

FrEIA = pytest.importorskip("FrEIA")

from _official import CLAMP, HEAD_HIDDEN, WIDTHS, C, D, H, freia_flow


def freia_log_density(net, x, context):
    """log N(f(x); 0, I) + log|det df/dx| of the FrEIA graph (x -> z direction)."""
    z, log_jac = net(x, context)
    return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + log_jac


def test_freia_flow_maps_onto_realnvp():
    from humr.official import flow_from_freia_state

    net = freia_flow()
    flow = flow_from_freia_state(net.state_dict(), CLAMP).eval()
    torch.manual_seed(1)
    B, S = 3, 4
    context = torch.randn(B, C)
    x = torch.randn(B, S, D)
    with torch.no_grad():
        ref = freia_log_density(net, x.reshape(B * S, D), context.repeat_interleave(S, 0)).view(B, S)
        got = flow.log_prob(x, context)
        assert (ref - got).abs().max() < 1e-4 and ref.std() > 1   # not a constant
        z = torch.randn(B, S, D)
        z[:, 0] = 0
        ref_x, ref_jac = net(z.reshape(B * S, D), context.repeat_interleave(S, 0), rev=True)
        got_x, got_logp, _ = flow.sample(context, S, z=z)
        assert (ref_x.view(B, S, D) - got_x).abs().max() < 1e-4
        ref_logp = -0.5 * (z ** 2).sum(-1) - 0.5 * D * math.log(2 * math.pi) - ref_jac.view(B, S)
        assert (ref_logp - got_logp).abs().max() < 1e-4


def test_flow_key_and_shape_errors():
    from humr.official import OfficialKeyError, flow_from_freia_state

    state = freia_flow(dim=12, context=5, hidden=8, blocks=2).state_dict()
    with pytest.raises(OfficialKeyError, match="unexpected flow key 'module_list.0.extra'"):
        flow_from_freia_state({**state, "module_list.0.extra": torch.zeros(1)}, CLAMP)
    bad = dict(state)
    bad["module_list.2.subnet1.3.weight"] = torch.zeros(8, 9)
    with pytest.raises(OfficialKeyError, match=r"shape \(8, 9\), expected \(8, 8\)"):
        flow_from_freia_state(bad, CLAMP)
    bad = {k: v for k, v in state.items() if k != "module_list.2.subnet2.6.bias"}
    with pytest.raises(OfficialKeyError, match="lacks key 'module_list.2.subnet2.6.bias'"):
        flow_from_freia_state(bad, CLAMP)
    bad = dict(state)
    bad["module_list.1.perm"] = torch.zeros(12, dtype=torch.long)
    with pytest.raises(OfficialKeyError, match="not a permutation"):
        flow_from_freia_state(bad, CLAMP)


def _reference_context(ref, batch):
    """The official context [image | pose | bbox] computed independently (pose with Python int())."""
    feats = ref["backbone"](batch["img"])
    rows = []
    for kp, (cx, cy), s in zip(batch["cond_kp"].tolist(), batch["center"].tolist(), batch["scale"][:, 0].tolist()):
        b = 200 * s
        rows.append([v for x, y, c in kp for v in (2 * (int(224 * (x - cx) / b + 112) + 1) / 224 - 1,
                                                     2 * (int(224 * (y - cy) / b + 112) + 1) / 224 - 1, c)])
    pose = ref["joints_enc"](torch.tensor(rows))
    h, w = batch["orig_shape"][:, 0], batch["orig_shape"][:, 1]
    f = (h ** 2 + w ** 2).sqrt()
    bbox = torch.stack([(batch["center"][:, 0] - w / 2) / f, (batch["center"][:, 1] - h / 2) / f,
                        200 * batch["scale"][:, 0] / f], 1)
    return torch.cat([feats, pose, bbox], 1)


def _reference_head(head, context):
    shape, cam = head["init_shape"].expand(len(context), -1), head["init_cam"].expand(len(context), -1)
    for _ in range(3):
        x = torch.cat([context, shape, cam], 1) @ head["fc1.weight"].T + head["fc1.bias"]
        x = x @ head["fc2.weight"].T + head["fc2.bias"]
        shape = shape + x @ head["decshape.weight"].T + head["decshape.bias"]
        cam = cam + x @ head["deccam.weight"].T + head["deccam.bias"]
    return shape, cam


def _batch(B=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    center = torch.tensor([[300.0, 200.0], [150.0, 260.0]])[:B]
    scale = torch.tensor([[1.2], [0.8]])[:B]
    kp = center[:, None] + 200 * scale[:, None] * (torch.rand(B, 17, 2, generator=gen) - 0.5)
    return {"img": torch.randn(B, 3, 64, 64, generator=gen), "center": center, "scale": scale,   # small: speed
            "orig_shape": torch.tensor([[480.0, 640.0]]).expand(B, 2),
            "cond_kp": torch.cat([kp, torch.rand(B, 17, 1, generator=gen)], -1)}


def test_load_official_reproduces_context_densities_samples_rotations(official_ckpt, tiny_smplx, tmp_path):
    import roma

    from humr import load_official
    from humr.losses import NLLLoss
    from humr.objective import Objective
    from humr.official.checkpoint import convert_official

    path, ref = official_ckpt
    folder = tiny_smplx[0]
    batch = _batch()
    B, S = 2, 5
    with torch.no_grad():
        want_ctx = _reference_context(ref, batch)
        want_betas, want_cam = _reference_head(ref["head"], want_ctx)
        z = torch.randn(B, S, 132)
        z[:, 0] = 0
        rep = want_ctx.repeat_interleave(S, 0)
        want_x, jac = ref["flow"](z.reshape(B * S, 132), rep, rev=True)
        want_logp = (-0.5 * (z ** 2).sum(-1) - 66 * math.log(2 * math.pi) - jac.view(B, S))
        rows = want_x.view(B, S, 22, 2, 3)
        want_rot = roma.special_gramschmidt(rows.transpose(-1, -2)).transpose(-1, -2)
        converted = convert_official(path, tmp_path / "out" / "humr_official.ckpt", body_model=folder)
        for model in (load_official(path, body_model=folder), load_official(converted, body_model=folder)):
            ctx = model.context(batch)
            assert (ctx - want_ctx).abs().max() < 1e-4 and want_ctx[:, -3:].abs().min() > 0
            out = model(batch, num_samples=S, z=z)
            assert (out["pose_6d"] - want_x.view(B, S, -1)).abs().max() < 1e-4
            assert (out["log_prob"] - want_logp).abs().max() < 1e-4 and want_logp.std() > 1
            assert (out["rotmat"] - want_rot).abs().max() < 1e-4
            assert (out["betas"][:, 0] - want_betas).abs().max() < 1e-4
            assert (out["cam"][:, 0] - want_cam).abs().max() < 1e-4
            # density of identical poses (rotation matrices): the official flow at the rows 6D
            dens = model.log_prob(batch, want_rot)
            x6 = want_rot[..., :2, :].reshape(B * S, 132)
            zz, lj = ref["flow"](x6, rep)
            ref_dens = (-0.5 * (zz ** 2).sum(-1) - 66 * math.log(2 * math.pi) + lj).view(B, S)
            assert (dens - ref_dens).abs().max() < 1e-4
            # the objective's ground-truth density (nll loss): the official flow at the rows 6D
            gt_batch = {**batch, "pose": roma.rotmat_to_rotvec(want_rot[:, 1]).reshape(B, 66)}
            gt_rows = roma.rotvec_to_rotmat(gt_batch["pose"].view(B, 22, 3))[..., :2, :].reshape(B, 132)
            zz, lj = ref["flow"](gt_rows, want_ctx)
            ref_gt = -0.5 * (zz ** 2).sum(-1) - 66 * math.log(2 * math.pi) + lj
            objective = Objective({"nll": NLLLoss()}, {"nll": 1.0}).eval()
            assert (objective.gt_log_prob(model, gt_batch, out) - ref_gt).abs().max() < 1e-4
            total, _ = objective(model, gt_batch, out)
            assert abs(float(total) + float(ref_gt.mean()) / 132) < 1e-5
            # not humr's column 6D of the same rotations (which the flow rates differently)
            zc, ljc = ref["flow"](roma.rotvec_to_rotmat(gt_batch["pose"].view(B, 22, 3))[..., :2].reshape(B, 132), want_ctx)
            assert (-0.5 * (zc ** 2).sum(-1) - 66 * math.log(2 * math.pi) + ljc - ref_gt).abs().min() > 1e-2


def test_official_key_and_shape_errors(official_ckpt, tiny_smplx, tmp_path):
    from humr import load_official
    from humr.official import OfficialKeyError

    _, ref = official_ckpt
    folder = tiny_smplx[0]
    state = ref["state"]
    cases = [({**state, "model.extra.weight": torch.zeros(1)}, "unexpected key 'model.extra.weight'"),
             ({**state, "model.head.fc2.bias": torch.zeros(7)}, r"model.head.fc2.bias has shape \(7,\)"),
             ({k: v for k, v in state.items() if k != "model.joints_enc.2.bias"},
              "no tensor for .*conditions.pose2d_official.mlp.2.bias")]
    for bad, msg in cases:
        p = tmp_path / "bad.ckpt"
        torch.save({"state_dict": bad, "hyper_parameters": {"FREIA_NF": {"CLAMP": 3.0}}}, p)
        with pytest.raises(OfficialKeyError, match=msg):
            load_official(p, body_model=folder)
    no_body = {k: v for k, v in state.items() if not k.startswith("model.smpl.")}
    torch.save({"state_dict": no_body, "hyper_parameters": {"FREIA_NF": {"CLAMP": 3.0}}}, tmp_path / "nobody.ckpt")
    with pytest.raises(FileNotFoundError, match="SMPL-X.*smpl-x.is.tue.mpg.de"):
        load_official(tmp_path / "nobody.ckpt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_official(tmp_path / "none.ckpt", body_model=folder)


def test_convert_official_command(official_ckpt, tiny_smplx, tmp_path, capsys):
    from humr.cli import main

    path, _ = official_ckpt
    out = tmp_path / "converted.ckpt"
    assert main(["convert-official", str(path), str(out), "--body-model", str(tiny_smplx[0])]) == 0
    assert str(out) in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["format"] == "humr-official-v1" and ckpt["settings"]["model"]["flow"]["alpha"] == CLAMP
    # the settings are a config in humr.config's layout
    from humr.config import Config

    m = Config.load(ckpt["settings"]).model
    assert (m.flow.name, m.flow.num_blocks, m.flow.hidden_features) == ("realnvp", 2, H)
    assert list(m.conditions) == ["image", "pose2d_official", "bbox"]
    backbone = m.conditions["image"].backbone
    assert backbone.name == "hrnet_w48_official" and list(backbone.widths) == list(WIDTHS)
    assert (m.head.hidden, m.model_type, m.num_betas) == (HEAD_HIDDEN, "smplx", 11)
    assert not any(k.startswith("body.") for k in ckpt["state_dict"])


def test_official_backbone_weights_and_random_hrnet_warning(official_ckpt):
    from humr.conditions.hrnet import HRNetW48
    from humr.official.components import OfficialHRNet

    path, ref = official_ckpt
    net = OfficialHRNet(weights=path, widths=WIDTHS)
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(img), ref["backbone"](img))
    with pytest.warns(UserWarning, match="randomly initialised.*humr convert-official"):
        HRNetW48()


def test_body_stored_in_the_checkpoint_equals_the_smplx_file(official_ckpt, tiny_smplx, tmp_path):
    from humr import load_official
    from humr.body import BodyModel
    from humr.official.checkpoint import convert_official

    path, _ = official_ckpt
    want = BodyModel(tiny_smplx[0], model_type="smplx", num_betas=11)
    a = torch.randn(3, 22, 3, 3) * 0.3
    rot = torch.linalg.matrix_exp(a - a.transpose(-1, -2))
    betas = torch.randn(3, 11)
    ref = want(rot, betas, return_vertices=True)
    converted = convert_official(path, tmp_path / "c.ckpt")
    for model in (load_official(path), load_official(converted)):
        got = model.body(rot, betas, return_vertices=True)
        assert (got["vertices"] - ref["vertices"]).abs().max() < 1e-5
        assert (got["joints"] - ref["joints"]).abs().max() < 1e-5


def test_predict_with_the_official_model(official_ckpt, tmp_path):
    import numpy as np

    from humr import load_official, predict

    path, _ = official_ckpt
    model = load_official(path)
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    kp = np.concatenate([np.random.default_rng(1).uniform(40, 100, (17, 2)), np.full((17, 1), 0.8)], 1)
    pred = predict(model, image, keypoints=kp, num_samples=3)
    assert pred["crop"].shape == (1, 224, 224, 3) and pred["rotmat"].shape == (1, 3, 22, 3, 3)
    rot = pred["rotmat"]
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
