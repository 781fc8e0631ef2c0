"""``humr.predict`` / ``humr predict`` on a synthetic image of the procedural body."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def scene(body_dir):
    """A 320 x 240 image with two procedural bodies, their COCO-17 keypoints (full-image px)."""
    from humr.body import BodyModel
    from humr.geometry import perspective_project
    from humr.viz.render import render_mesh

    body = BodyModel(body_dir, dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64).expand(1, 24, 3, 3).clone()
    rot[0, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))   # upright, facing
    out = body(rot, torch.zeros(1, 10, dtype=torch.float64), return_vertices=True)
    H, W = 240, 320
    focal = float(np.hypot(H, W))
    image = np.full((H, W, 3), 90, np.uint8)
    kps = []
    for tx in (-0.6, 0.6):
        t = torch.tensor([tx, 0.0, 6.0], dtype=torch.float64)
        image = render_mesh((out["vertices"][0] + t).numpy(), body.faces, (focal, focal), (W / 2, H / 2),
                            (H, W), background=image)["rgb"]
        kp = perspective_project(out["coco17"][0] + t, torch.tensor([focal, focal], dtype=torch.float64),
                                 torch.tensor([W / 2, H / 2], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
        kps.append(np.concatenate([kp.numpy(), np.full((17, 1), 0.9)], 1))
    return image, np.stack(kps)


@pytest.fixture(scope="module")
def model(body_dir):
    from humr import build_model

    return build_model(conditions=["image", "pose2d", "bbox"], body_model=str(body_dir),
                       overrides={"model.conditions.image.backbone": {"name": "small_cnn", "width": 8,
                                                                      "num_layers": 2, "input_size": 64},
                                  "model.flow.num_blocks": 2, "model.flow.hidden_features": 32,
                                  "model.head.hidden": 32}).eval()


def _vitpose_heatmaps(kp, boxes):
    """Gaussian heatmaps (P, 17, 64, 48) of a 256 x 192 top-down crop, peaks at the keypoints."""
    from humr.prediction import _vitpose_box

    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = _vitpose_box(center, boxes[:, 2:] - boxes[:, :2])
    # heatmap pixel centre (x + 0.5) / 48 of the box width (docs/conventions.md)
    u = (kp[..., 0] - center[:, None, 0] + wh[:, None, 0] / 2) / wh[:, None, 0] * 48 - 0.5
    v = (kp[..., 1] - center[:, None, 1] + wh[:, None, 1] / 2) / wh[:, None, 1] * 64 - 0.5
    yy, xx = np.mgrid[:64, :48]
    hm = np.exp(-((xx - np.round(u)[..., None, None]) ** 2 + (yy - np.round(v)[..., None, None]) ** 2) / 8)
    return hm * 0.9, wh


def test_heatmap_peaks_map_back_to_the_keypoints(scene, model):
    from humr.prediction import _keypoint_boxes, predict

    image, kp = scene
    boxes = _keypoint_boxes(kp)
    hm, wh = _vitpose_heatmaps(kp, boxes)
    pred = predict(model, image, heatmaps=hm, bbox=boxes, num_samples=4)
    err = np.abs(pred["cond_kp"][..., :2] - kp[..., :2]) / (wh[:, None] / np.array([48, 64]))
    # peaks were rounded to heatmap pixels (pixel centres): within 0.5 heatmap px; up to 1.5 px
    # under mmpose's UDP mapping (x (w - 1) / (W - 1)); a wrong box, aspect or padding is off
    # by many pixels
    assert err.max() <= 1.5 + 1e-6, err.max()
    np.testing.assert_allclose(pred["cond_kp"][..., 2], 0.9, atol=1e-6)


def test_predict_batches_people_and_writes_files(scene, model, tmp_path):
    from humr.prediction import predict, save_prediction

    image, kp = scene
    pred = predict(model, image, keypoints=kp, num_samples=6, seed=3)
    P, S = 2, 6
    assert pred["rotmat"].shape == (P, S, 24, 3, 3) and pred["log_prob"].shape == (P, S)
    assert pred["keypoints2d"].shape == (P, S, 17, 2) and pred["vertices"].shape == (P, S, 6890, 3)
    # person 1 alone (same box, same latent draws for that person) gives the same mode
    single = predict(model, image, keypoints=kp[1], num_samples=6, seed=3)
    np.testing.assert_allclose(single["keypoints2d"][0, 0], pred["keypoints2d"][1, 0], atol=1e-3)
    # the mode's 2D keypoints are the projection of its camera-frame mesh keypoints
    files = save_prediction(pred, tmp_path / "out", num_meshes=2, mesh_format="obj")
    names = sorted(f.name for f in files)
    assert names == sorted(["hypotheses.npz", *(f"person{p}_{n}.obj" for p in range(P) for n in ("mode", "hyp01", "hyp02")),
                            *(f"person{p}_{n}.png" for p in range(P) for n in ("overlay", "uncertainty"))])
    with np.load(tmp_path / "out" / "hypotheses.npz") as z:
        assert set(z.files) >= {"rotations", "betas", "camera", "joints3d", "log_density"}
        np.testing.assert_array_equal(z["log_density"], pred["log_prob"])
    verts = np.loadtxt(tmp_path / "out" / "person0_mode.obj", usecols=(1, 2, 3), max_rows=6890)
    np.testing.assert_allclose(verts, pred["vertices"][0, 0] + pred["cam_t"][0, 0], atol=1e-5)


def test_predict_command_with_coco_and_openpose_json(scene, model, tmp_path, monkeypatch, capsys):
    import cv2

    from humr.cli import main

    image, kp = scene
    img_path = tmp_path / "img.png"
    cv2.imwrite(str(img_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps([{"image_id": 1, "category_id": 1, "keypoints": p.ravel().tolist(), "score": 0.9}
                                for p in kp]))
    from humr.data.official import BODY25_TO_COCO17

    body25 = np.zeros((2, 25, 3))
    body25[:, list(BODY25_TO_COCO17)] = kp
    openpose = tmp_path / "op.json"
    openpose.write_text(json.dumps({"people": [{"pose_keypoints_2d": p.ravel().tolist()} for p in body25]}))
    from humr.prediction import load_detections

    np.testing.assert_array_equal(load_detections(coco), load_detections(openpose))
    monkeypatch.setattr("humr.commands.predict.load_any", lambda ckpt, body_model: model)
    hm_path = tmp_path / "hm.npy"
    np.save(hm_path, _vitpose_heatmaps(kp[:1], np.array([[100.0, 50.0, 160.0, 200.0]]))[0])
    for det in (["--keypoints", str(coco)], ["--heatmaps", str(hm_path), "--bbox", "100", "50", "160", "200"]):
        out = tmp_path / det[0][2:]
        assert main(["predict", "--ckpt", "unused.ckpt", "--image", str(img_path), *det, "--out", str(out),
                     "--samples", "3", "--meshes", "1", "--mesh-format", "ply"]) == 0
        assert (out / "hypotheses.npz").is_file() and (out / "person0_mode.ply").is_file()
        assert (out / "person0_overlay.png").is_file() and (out / "person0_uncertainty.png").is_file()
    assert "2 people" in capsys.readouterr().out
