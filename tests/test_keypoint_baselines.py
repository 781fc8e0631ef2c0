"""benchmarks/keypoint_baselines.py: the keyed shard reader against the validated dataset, the
inputs against the conditioners, the regressor on a known linear map, and the reports on
predictions with known answers (the truth itself, the mean shape)."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from _posterior_loops import determined_by_loop

from humr.body import BodyModel
from humr.conditions.bbox import BBoxCondition
from humr.core.skeleton import IMAGENET_MEAN, IMAGENET_STD
from humr.data.dataset import HumrDataset, normalise_images
from humr.data.schema import DataFormatError
from humr.geometry import axis_angle_to_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from keypoint_baselines import (
    INPUT_KEYS,
    ORACLE_KEYS,
    TARGET_KEYS,
    depth_order_shares,
    fit,
    keypoint_inputs,
    lift_report,
    main,
    markdown,
    prior_depths,
    read_split,
    shape_report,
    true_joints,
)


@pytest.fixture(scope="module")
def body():
    return BodyModel("procedural")


@pytest.fixture(scope="module")
def test_split(tiny_data):
    return read_split(tiny_data, "test", INPUT_KEYS + TARGET_KEYS + ORACLE_KEYS)


def test_read_split_matches_the_validated_dataset(tiny_data):
    full = HumrDataset(str(tiny_data), "train").arrays
    part = read_split(tiny_data, "train", ("cond_kp", "betas"), max_examples=5)
    assert set(part) == {"cond_kp", "betas"} and len(part["betas"]) == 5
    assert torch.equal(part["cond_kp"], torch.as_tensor(full["cond_kp"][:5]))
    with pytest.raises(DataFormatError, match="'nope'"):
        read_split(tiny_data, "train", ("betas", "nope"))
    with pytest.raises(DataFormatError, match="no split 'val'"):
        read_split(tiny_data, "val", ("betas",))


def test_read_split_checks_the_values(tiny_data, tmp_path):
    """A copy of the dataset whose first shard holds a NaN beta: refused, naming the key."""
    import shutil

    import numpy as np

    root = tmp_path / "bad"
    shutil.copytree(tiny_data, root)
    shard = min((root / "train").glob("*.npz"))
    with np.load(shard, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["betas"][0, 0] = np.nan
    np.savez(shard, **arrays)
    with pytest.raises(DataFormatError, match="betas"):
        read_split(root, "train", ("betas",))


def test_inputs_are_the_conditioners_inputs(test_split):
    x = keypoint_inputs(test_split)
    B = len(x)
    assert x.shape == (B, 54)
    # crop coordinates by hand: (x - centre) / (box / 2), box = 200 scale
    kp, center = test_split["cond_kp"], test_split["center"]
    crop = (kp[..., :2] - center[:, None]) / (100.0 * test_split["scale"][:, None])
    by_hand = torch.cat([crop, kp[..., 2:]], -1).flatten(1)
    torch.testing.assert_close(x[:, :51], by_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x[:, 51:], BBoxCondition()(test_split), rtol=1e-5, atol=1e-6)
    ideal = keypoint_inputs(test_split, "true_visible")[:, :51].reshape(B, 17, 3)
    visible = test_split["coco_visible"].bool()
    assert visible.any() and (~visible).any()
    torch.testing.assert_close(ideal[~visible], x[:, :51].reshape(B, 17, 3)[~visible])
    gt = (test_split["coco_gt"][..., :2] - center[:, None]) / (100.0 * test_split["scale"][:, None])
    torch.testing.assert_close(ideal[..., :2][visible], gt[visible], rtol=1e-5, atol=1e-5)
    exact = keypoint_inputs(test_split, "true_all")
    torch.testing.assert_close(exact[:, :51].reshape(B, 17, 3)[..., :2], gt, rtol=1e-5, atol=1e-5)
    assert (exact[:, :51].reshape(B, 17, 3)[..., 2] == 1).all()
    torch.testing.assert_close(exact[:, 51:], x[:, 51:])
    with pytest.raises(ValueError, match="source"):
        keypoint_inputs(test_split, "oracle")


def test_fit_learns_a_linear_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 6, generator=gen) * torch.tensor([1.0, 10, 0.1, 1, 1, 5]) + 3.0
    A = torch.randn(6, 2, generator=gen)
    y = x @ A
    model, best = fit(x, y, "mse", steps=600, lr=3e-3, check_every=100, progress=False)
    with torch.no_grad():
        err = (model(x) - y).norm(dim=-1).mean() / y.norm(dim=-1).mean()
        # the returned weights are the ones whose held-out loss (last 10 %) was recorded
        held = torch.nn.functional.mse_loss(model.standardised(x[-204:]),
                                            (y[-204:] - model.y_mean) / model.y_std)
    assert err < 0.05
    assert best["best_step"] in (100, 200, 300, 400, 500, 600)
    assert float(held) == pytest.approx(best["held_out_loss"], rel=1e-5)
    assert fit(x, y, "mse", steps=5, held_out=0.0, progress=False)[1] == {"best_step": 5.0}


def test_reports_of_known_predictions(body, test_split):
    truth = true_joints(body, test_split)
    rot = axis_angle_to_matrix(test_split["pose"].reshape(len(truth), -1, 3)[:, :24])
    by_hand = body(rot, test_split["betas"])["joints"]
    torch.testing.assert_close(truth, by_hand - by_hand[:, [1, 2]].mean(1, keepdim=True))
    lift = lift_report(body, test_split, truth)
    assert lift["lift/mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert lift["lift/determined/mode"] == pytest.approx(0.0, abs=1e-3)
    assert lift["lift/undetermined/mode"] == pytest.approx(0.0, abs=1e-3)
    assert lift["lift/undetermined/draw"] > 1.0               # occluded chains do move
    shape = shape_report(body, test_split, test_split["betas"], num_samples=8)
    assert shape["regressed/betas_rms"] == 0.0
    assert shape["regressed/gt_pose_mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert shape["regressed/oracle_best"] == pytest.approx(shape["true shape/oracle_best"],
                                                           abs=1e-6)
    rms = test_split["betas"].pow(2).mean(-1).sqrt().mean()
    assert shape["mean shape/betas_rms"] == pytest.approx(float(rms), rel=1e-6)
    flat = body(rot, torch.zeros_like(test_split["betas"]))["joints"]
    flat_err = 1e3 * ((flat - flat[:, [1, 2]].mean(1, keepdim=True)) - truth).norm(dim=-1).mean()
    assert shape["mean shape/gt_pose_mpjpe"] == pytest.approx(float(flat_err), rel=1e-4)
    assert shape["mean shape/oracle_best"] > shape["true shape/oracle_best"] + 5


def test_prior_depth_order_against_a_loop(body, tiny_data, test_split):
    """Each bone's most common order over the training poses, scored on the test split's
    visible limb bones, counted by plain loops over examples, bones and posterior samples; the
    truth's own depth differences score 1, their negation 0."""
    from error_decomposition import DEPTH_ORDER_MIN_M, LIMB_BONES, limb_depths

    train = read_split(tiny_data, "train", TARGET_KEYS)
    behind = [0] * len(LIMB_BONES)
    for joints in true_joints(body, train):
        for k, (parent, child) in enumerate(LIMB_BONES.tolist()):
            behind[k] += float(joints[child, 2]) > float(joints[parent, 2])
    truth = true_joints(body, test_split)
    right = scored = 0
    for b in range(len(truth)):
        fixed = determined_by_loop(body, test_split, b)
        for k, (parent, child) in enumerate(LIMB_BONES.tolist()):
            dz = float(truth[b, child, 2] - truth[b, parent, 2])
            if fixed[parent] and fixed[child] and abs(dz) >= DEPTH_ORDER_MIN_M:
                scored += 1
                right += (dz > 0) == (2 * behind[k] > len(train["pose"]))
    assert scored > 0
    shares = depth_order_shares(body, test_split, {
        "prior": prior_depths(true_joints(body, train)).expand(len(truth), -1),
        "truth": limb_depths(truth), "mirrored": -limb_depths(truth)})
    assert shares["prior"] == pytest.approx(right / scored)
    assert shares["truth"] == 1.0
    assert shares["mirrored"] == 0.0


@pytest.mark.parametrize("image", [[], ["--image"]], ids=["keypoints", "image"])
def test_command_end_to_end(tiny_data, tmp_path, capsys, image):
    out = tmp_path / "baselines.json"
    assert main(["--data", str(tiny_data), "--steps", "4", "--num-samples", "4",
                 "--out", str(out), *image]) == 0
    result = json.loads(out.read_text())
    assert result["num_train"] == 16 and result["num_test"] == 4
    assert all(math.isfinite(v) for v in result.values())
    assert result["shape/best_step"] == 4.0 and "lift/held_out_loss" in result
    text = capsys.readouterr().out
    assert text.strip().endswith(markdown(result, 4).strip())
    assert "| regressed |" in text and "| mean shape |" in text and "oracle best-of-4" in text
    assert 0.0 <= result["prior/depth_order"] <= 1.0 and "the pose prior:" in text
    assert 0.0 <= result["order/depth_order"] <= 1.0 and result["order/best_step"] == 4.0


def test_image_regressor_reads_the_crop(tiny_data):
    """``--image``: the shape regressor's output depends on the crop (a dark crop changes it),
    its crops are normalised as the dataset loader normalises them, and it trains."""
    data = read_split(tiny_data, "train", INPUT_KEYS + TARGET_KEYS + ("img",))
    loaded = HumrDataset(str(tiny_data), "train")[3]["img"]
    torch.testing.assert_close(normalise_images(data["img"][3:4])[0], loaded, rtol=1e-5,
                               atol=1e-5)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    by_hand = (data["img"][3].permute(2, 0, 1).float() / 255.0 - mean) / std
    torch.testing.assert_close(loaded, by_hand, rtol=1e-5, atol=1e-5)
    x = keypoint_inputs(data)
    model, best = fit(x, data["betas"], "mse", steps=3, batch_size=4, img=data["img"],
                      progress=False)
    assert best["best_step"] == 3.0 and model.encoder is not None
    with torch.no_grad():
        lit, dark = model(x, data["img"]), model(x, torch.zeros_like(data["img"]))
    assert lit.shape == (16, 10) and not torch.allclose(lit, dark)
