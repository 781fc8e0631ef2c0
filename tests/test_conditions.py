"""Conditioners against hand computations and invariances; backbones; HRNet-W48 layout."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from humr.conditions import (
    BBoxCondition,
    DiffPoseCondition,
    HRNetW48,
    ImageCondition,
    Pose2DCondition,
    sinusoidal_embedding,
)
from humr.registry import BACKBONES, CONDITIONS


def crop_batch(B=2):
    return {"center": torch.tensor([[300.0, 200.0], [120.0, 400.0]])[:B],
            "scale": torch.tensor([[1.5], [0.6]])[:B],
            "orig_shape": torch.tensor([[480.0, 640.0], [900.0, 300.0]])[:B]}


def _builtin(registry):
    """Names registered by humr.conditions itself (other modules, e.g. humr.official once
    imported, add their own names to the same registries)."""
    return [n for n in registry.names() if registry.get(n).__module__.split(".")[:2] == ["humr", "conditions"]]


def test_registries():
    assert _builtin(CONDITIONS) == ["bbox", "diffpose", "image", "pose2d"]
    assert _builtin(BACKBONES) == ["hrnet_w48", "precomputed", "small_cnn"]


@pytest.mark.parametrize("with_focal", [False, True])
def test_bbox_is_cliff_information(with_focal):
    batch = crop_batch()
    if with_focal:
        batch["focal"] = torch.tensor([[1000.0, 990.0], [700.0, 710.0]])
    out = BBoxCondition()(batch)
    for b in range(2):
        (cx, cy), s, (h, w) = batch["center"][b].tolist(), batch["scale"][b, 0].item(), batch["orig_shape"][b].tolist()
        f = batch["focal"][b, 0].item() if with_focal else math.sqrt(w * w + h * h)
        expected = [(cx - w / 2) / f, (cy - h / 2) / f, 200 * s / f]
        np.testing.assert_allclose(out[b].numpy(), expected, rtol=1e-6)


def test_pose2d_maps_to_crop_then_mlp():
    torch.manual_seed(0)
    cond = Pose2DCondition()
    assert [m.in_features for m in cond.mlp if isinstance(m, nn.Linear)] == [51, 512]
    assert cond.out_dim == 256 and cond.mlp[-1].out_features == 256
    batch = crop_batch()
    batch["cond_kp"] = torch.rand(2, 17, 3) * 300
    expected_in = torch.zeros(2, 51)
    for b in range(2):
        cx, cy = batch["center"][b].tolist()
        half = 100 * batch["scale"][b, 0].item()
        for k in range(17):
            x, y, c = batch["cond_kp"][b, k].tolist()
            expected_in[b, 3 * k:3 * k + 3] = torch.tensor([(x - cx) / half, (y - cy) / half, c])
    torch.testing.assert_close(cond(batch), cond.mlp(expected_in))


def test_pose2d_is_invariant_to_moving_the_crop_with_the_person():
    cond = Pose2DCondition()
    batch = crop_batch()
    batch["cond_kp"] = torch.rand(2, 17, 3) * 300
    moved = dict(batch, center=batch["center"] + torch.tensor([37.0, -12.0]))
    moved["cond_kp"] = batch["cond_kp"] + torch.tensor([37.0, -12.0, 0.0])
    torch.testing.assert_close(cond(batch), cond(moved), atol=1e-5, rtol=0)


def test_sinusoidal_embedding_matches_numpy():
    xy = torch.rand(3, 2) * 2 - 1
    freqs = torch.tensor([1.0, 2.5, 7.0])
    emb = sinusoidal_embedding(xy, freqs)
    for i in range(3):
        x, y = xy[i].tolist()
        ref = ([math.sin(f * x) for f in freqs.tolist()] + [math.cos(f * x) for f in freqs.tolist()]
               + [math.sin(f * y) for f in freqs.tolist()] + [math.cos(f * y) for f in freqs.tolist()])
        np.testing.assert_allclose(emb[i].numpy(), ref, rtol=1e-5, atol=1e-6)


def hm_batch(N=10, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = crop_batch(B)
    batch["hm_samples"] = batch["center"][:, None, None] + 100 * (torch.rand(B, 17, N, 2, generator=g) - 0.5)
    batch["hm_values"] = 0.05 + 0.95 * torch.rand(B, 17, N, generator=g)
    return batch


def test_diffpose_is_a_set_function_of_each_joints_samples():
    torch.manual_seed(0)
    cond = DiffPoseCondition(num_samples=32, d_model=16).eval()
    batch = hm_batch(N=10)
    ref = cond(batch)
    perm = torch.randperm(10)
    shuffled = dict(batch, hm_samples=batch["hm_samples"][:, :, perm], hm_values=batch["hm_values"][:, :, perm])
    torch.testing.assert_close(cond(shuffled), ref, atol=1e-5, rtol=1e-5)
    # the samples of one joint matter: moving them changes the output
    moved = dict(batch, hm_samples=batch["hm_samples"].clone())
    moved["hm_samples"][:, 3] += 20.0
    assert not torch.allclose(cond(moved), ref, atol=1e-4)


def test_diffpose_ignores_padding_and_takes_the_first_valid_samples():
    torch.manual_seed(0)
    cond = DiffPoseCondition(num_samples=6, d_model=16).eval()
    batch = hm_batch(N=6)
    ref = cond(batch)
    # interleave padding (value 0, arbitrary positions) and append further valid samples
    N = 20
    samples = torch.rand(2, 17, N, 2) * 500
    values = torch.zeros(2, 17, N)
    slots = torch.tensor([1, 2, 5, 8, 9, 13])
    samples[:, :, slots], values[:, :, slots] = batch["hm_samples"], batch["hm_values"]
    values[:, :, 15:] = 0.5                                 # valid, but beyond the first six
    padded = dict(batch, hm_samples=samples, hm_values=values)
    torch.testing.assert_close(cond(padded), ref, atol=1e-5, rtol=1e-5)


def test_diffpose_empty_joint_rule():
    """A joint without valid samples is one token holding its joint embedding: finite and
    independent of where its (padding) samples are."""
    cond = DiffPoseCondition(num_samples=8, d_model=16).eval()
    batch = hm_batch(N=8)
    batch["hm_values"][:, 4] = 0.0
    out = cond(batch)
    assert torch.isfinite(out).all()
    moved = dict(batch, hm_samples=batch["hm_samples"].clone())
    moved["hm_samples"][:, 4] += 55.0
    torch.testing.assert_close(cond(moved), out)
    # and equals the value of a single zero-valued token at the joint
    single = dict(batch, hm_samples=batch["hm_samples"].clone(), hm_values=batch["hm_values"].clone())
    single["hm_values"][:, 4, 0] = 1e-30
    torch.testing.assert_close(cond(single), out, atol=1e-5, rtol=1e-5)


def test_diffpose_shapes_and_errors():
    cond = DiffPoseCondition()
    assert cond.out_dim == 256 and cond(hm_batch(N=150)).shape == (2, 256)
    with pytest.raises(ValueError, match="multiple of 4"):
        DiffPoseCondition(d_model=18)
    bad = hm_batch()
    bad["hm_values"] = bad["hm_values"][:, :, :3]
    with pytest.raises(ValueError, match="hm_values"):
        cond(bad)


def test_image_condition_backbones():
    torch.manual_seed(0)
    small = ImageCondition({"name": "small_cnn", "width": 8, "num_layers": 3})
    assert small.out_dim == 32 and small.frozen_modules() == []
    assert small({"img": torch.randn(2, 3, 64, 48)}).shape == (2, 32)
    pre = ImageCondition({"name": "precomputed", "dim": 5})
    feats = torch.randn(3, 5)
    assert pre({"features": feats}) is feats
    with pytest.raises(KeyError, match="features"):
        pre({"img": torch.randn(3, 3, 8, 8)})
    with pytest.raises(KeyError, match="img"):
        small({"features": feats})
    with pytest.raises(KeyError, match="small_cnn"):
        ImageCondition("resnet50")
    with pytest.raises(KeyError, match="name"):
        ImageCondition({"width": 8})
    # per-call value checks are opt-in (validate_args), as in torchmetrics
    nan = {"img": torch.full((2, 3, 8, 8), float("nan"))}
    assert torch.isnan(small(nan)).all()
    checked = ImageCondition({"name": "precomputed", "dim": 5}, validate_args=True)
    with pytest.raises(ValueError, match=r"features.*\(B, 5\)"):
        checked({"features": torch.randn(3, 6)})
    checked = ImageCondition({"name": "small_cnn", "width": 8}, validate_args=True, freeze=True)
    with pytest.raises(ValueError, match="img"):
        checked(nan)
    assert checked.frozen_modules() == [checked.backbone]


def test_bbox_features_is_the_tensor_core_of_the_bbox_condition():
    from humr.conditions import BBoxCondition, bbox_features

    center, scale = torch.tensor([[400.0, 300.0], [10.0, 20.0]]), torch.tensor([[1.0], [0.5]])
    hw, focal = torch.tensor([[600.0, 800.0], [100.0, 200.0]]), torch.tensor([[1000.0, 1000.0], [50.0, 60.0]])
    expected = torch.tensor([[0.0, 0.0, 0.2], [(10 - 100) / 50, (20 - 50) / 50, 100 / 50]])
    torch.testing.assert_close(bbox_features(center, scale, hw, focal[:, 0]), expected)
    batch = {"center": center, "scale": scale, "orig_shape": hw, "focal": focal}
    torch.testing.assert_close(BBoxCondition()(batch), expected)
    with pytest.raises(ValueError, match="center"):
        BBoxCondition(validate_args=True)({**batch, "center": torch.zeros(2, 3)})


def test_small_cnn_input_size_is_a_box_filter():
    """input_size = 64 on a 128 image equals the network on the 2x2 block means."""
    from humr.conditions.backbones import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(width=4, num_layers=2, input_size=64).eval()
    img = torch.randn(2, 3, 128, 128)
    blocks = img.reshape(2, 3, 64, 2, 64, 2).mean(dim=(3, 5))
    full = SmallCNN(width=4, num_layers=2).eval()
    full.load_state_dict(net.state_dict())
    assert torch.allclose(net(img), full(blocks), atol=1e-6)
    assert torch.equal(net(blocks), full(blocks))              # already 64: unchanged
    with pytest.raises(ValueError, match="input_size"):
        SmallCNN(input_size=0)


def test_small_cnn_spatial_readout_sees_where_the_average_does_not():
    """A blob moved by a multiple of the total stride (no border in reach): the average
    readout's features do not change (the conv maps only shift), the spatial readout's do.
    Odd sizes round up at each stride-2 stage (20 -> 10 -> 5 -> 3)."""
    from humr.conditions.backbones import SmallCNN

    torch.manual_seed(0)
    avg = SmallCNN(width=4, num_layers=2, input_size=32).eval()
    spatial = SmallCNN(width=4, num_layers=2, input_size=32, readout="spatial").eval()
    spatial.features[:6].load_state_dict(avg.features[:6].state_dict())   # the same stages
    img = torch.zeros(2, 3, 32, 32)
    img[0, :, 8:12, 8:12] = 1.0
    img[1, :, 20:24, 16:20] = 1.0                    # shifted by (12, 8) px: multiples of 4
    torch.testing.assert_close(avg(img)[0], avg(img)[1])
    assert (spatial(img)[0] - spatial(img)[1]).abs().max() > 1e-3
    assert spatial(img).shape == (2, spatial.out_dim) == (2, 8)
    assert spatial.features[-2].in_features == 8 * 8 * 8
    assert SmallCNN(width=2, num_layers=3, input_size=20, readout="spatial")(
        torch.randn(1, 3, 20, 20)).shape == (1, 8)
    assert SmallCNN(width=2, num_layers=3, input_size=20,
                    readout="spatial").features[-2].in_features == 8 * 3 * 3
    with pytest.raises(ValueError, match="needs input_size"):
        SmallCNN(readout="spatial")
    with pytest.raises(ValueError, match="readout"):
        SmallCNN(input_size=32, readout="max")


@pytest.mark.parametrize("readout", ["avg", "spatial"])
def test_small_cnn_channels_last_input_matches_the_default_format(readout):
    """The network (channels-last activations) equals the same layers run on a contiguous
    image, values and gradients; its weights and their gradients stay contiguous."""
    from humr.conditions.backbones import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(width=8, num_layers=3, input_size=32, readout=readout)
    plain = copy.deepcopy(net.features)
    img = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(net(img), plain(img), rtol=1e-5, atol=1e-5)
    net(img).square().sum().backward()
    plain(img).square().sum().backward()
    for ours, theirs in zip(net.features.parameters(), plain.parameters()):
        assert ours.is_contiguous() and ours.grad.is_contiguous()
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def hrnet():
    torch.manual_seed(0)
    return HRNetW48()


def test_hrnet_w48_forward_frozen_and_layout(hrnet):
    assert hrnet.out_dim == 720
    assert not any(p.requires_grad for p in hrnet.parameters())
    hrnet.train()
    assert not hrnet.training and not any(m.training for m in hrnet.modules())
    with torch.no_grad():
        out = hrnet(torch.randn(1, 3, 48, 40))
    assert out.shape == (1, 720) and torch.isfinite(out).all()
    keys = hrnet.state_dict()
    for key in ("conv1.weight", "bn2.running_var", "layer1.0.downsample.0.weight", "layer1.3.conv3.weight",
                "transition1.0.0.weight", "transition1.1.0.0.weight", "transition2.2.0.0.weight",
                "transition3.3.0.1.running_mean", "stage2.0.branches.1.3.conv2.weight",
                "stage3.3.fuse_layers.0.2.0.weight", "stage4.2.fuse_layers.3.0.0.0.weight",
                "stage4.2.fuse_layers.3.2.0.1.weight"):
        assert key in keys, key
    # fusion from branch j to a lower-resolution branch i: i - j stride-2 convs, widths as HRNet-W48
    fuse = hrnet.stage4[2].fuse_layers[3][0]
    assert [step[0].stride for step in fuse] == [(2, 2)] * 3
    assert [step[0].out_channels for step in fuse] == [48, 48, 384]
    assert hrnet.stage4[0].fuse_layers[0][1] is not None and hrnet.stage4[0].fuse_layers[1][1] is None


def test_hrnet_w48_loads_prefixed_state_dicts(hrnet, tmp_path):
    state = {f"backbone.{k}": v.clone() for k, v in hrnet.state_dict().items()}
    state["backbone.final_layer.weight"] = torch.zeros(3)    # head keys are ignored
    key = "backbone.stage3.1.branches.2.0.conv1.weight"
    state[key] = torch.randn_like(state[key])
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    hrnet.load_weights(tmp_path / "w.pth")
    torch.testing.assert_close(hrnet.stage3[1].branches[2][0].conv1.weight, state[key], rtol=0, atol=0)
    del state["backbone.conv1.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="conv1.weight"):
        hrnet.load_weights(tmp_path / "bad.pth")
