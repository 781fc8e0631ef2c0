"""Run a model on a user's image with a 2D detector's output (``humr.predict``, ``humr predict``).

(The module is ``humr.prediction`` so that the package attribute ``humr.predict`` stays the
function.)

Inputs as users have them, per person p of one image:

- ViTPose-style heatmaps (P, 17, H, W) (64 x 48 for a 256 x 192 input) of a top-down crop:
  the person box enlarged to the 192 : 256 aspect and padded by 1.25 (mmpose's top-down
  affine); heatmap pixels go to that box through :func:`humr.heatmaps.heatmap_to_crop` (the
  library's one heatmap coordinate convention) and the box's half sides.
- COCO-17 keypoints with scores (P, 17, 3) (COCO results JSON, OpenPose BODY_25 JSON): heatmap
  samples are drawn as Gaussians around each keypoint, sigma = 2 heatmap pixels of a 64-row map
  of the box (ViTPose's training target), with the score as the confidence (sample value =
  score * Gaussian); joints with score 0 give padding samples (value 0).

The person crop is square around the box centre with side 1.2 max(w, h) (CLIFF / the official
demo), so ``center`` / ``scale`` follow humr's conventions (docs/conventions.md).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from humr.io import atomic_write, atomic_write_image, atomic_write_text

__all__ = ["load_detections", "predict", "save_prediction"]

NUM_SAMPLES_HM = 150          # heatmap samples per joint (section 4.5)
BOX_PAD = 1.2                 # crop side / max(box w, box h)
VITPOSE_ASPECT = 192 / 256    # w / h of the ViTPose input
VITPOSE_PAD = 1.25


def _box_center_size(bbox: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 4) x0 y0 x1 y1 -> centres (P, 2), sizes (P, 2) (w, h), validated."""
    bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    wh = bbox[:, 2:] - bbox[:, :2]
    if not np.isfinite(bbox).all() or (wh <= 0).any():
        raise ValueError(f"bbox must be finite (P, 4) [x0, y0, x1, y1] with x1 > x0, y1 > y0, got {bbox.tolist()}")
    return (bbox[:, :2] + bbox[:, 2:]) / 2.0, wh


def _keypoint_boxes(kp: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """Boxes (P, 4) around the keypoints of score >= min_score (all keypoints if none)."""
    boxes = []
    for person in kp:
        good = person[person[:, 2] >= min_score] if (person[:, 2] >= min_score).sum() >= 2 else person
        lo, hi = good[:, :2].min(0), good[:, :2].max(0)
        pad = np.maximum(hi - lo, 1.0) * 0.1
        boxes.append(np.concatenate([lo - pad, hi + pad]))
    return np.stack(boxes)


def _vitpose_box(center: np.ndarray, wh: np.ndarray, aspect: float = VITPOSE_ASPECT) -> np.ndarray:
    """mmpose top-down box: (w, h) enlarged to the w:h ``aspect`` (ViTPose 192:256) and padded by 1.25."""
    w, h = wh[:, 0].copy(), wh[:, 1].copy()
    wide = w > aspect * h
    h[wide] = w[wide] / aspect
    w[~wide] = h[~wide] * aspect
    return np.stack([w, h], 1) * VITPOSE_PAD


def _heatmap_inputs(heatmaps: np.ndarray, center: np.ndarray, wh: np.ndarray,
                    generator: torch.Generator) -> dict[str, torch.Tensor]:
    """cond_kp (P, 17, 3), hm_samples (P, 17, n, 2), hm_values, hm_max_conf from heatmaps."""
    from humr.heatmaps import heatmap_to_full, max_confidence, sample_heatmaps

    hm = torch.as_tensor(heatmaps, dtype=torch.float64)
    H, W = hm.shape[-2:]
    # the detector's input box has the heatmap's aspect; humr.heatmaps' convention maps the
    # heatmap over the square crop whose side is that box's height (P,)
    side = torch.as_tensor(_vitpose_box(center, wh, aspect=W / H)[:, 1])
    c = torch.as_tensor(center)
    to_full = lambda xy: heatmap_to_full(xy, (H, W), c, side)
    xy, values = sample_heatmaps(hm, NUM_SAMPLES_HM, generator=generator)
    arg = hm.flatten(-2).argmax(-1)
    peak = torch.stack([arg % W, torch.div(arg, W, rounding_mode="floor")], -1).to(hm.dtype)
    conf = max_confidence(hm)
    cond = torch.cat([to_full(peak[:, :, None])[:, :, 0], conf[..., None]], -1)
    return {"cond_kp": cond, "hm_samples": to_full(xy), "hm_values": values, "hm_max_conf": conf}


def _keypoint_inputs(kp: np.ndarray, wh: np.ndarray, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Gaussian heatmap samples around keypoints (P, 17, 3) with the scores as confidences."""
    kp = torch.as_tensor(kp, dtype=torch.float64)
    P, K, _ = kp.shape
    box_h = torch.as_tensor(_vitpose_box(np.zeros((P, 2)), wh)[:, 1])
    sigma = (2.0 * box_h / 64.0)[:, None, None, None]                          # 2 px of a 64-row map
    noise = torch.randn(P, K, NUM_SAMPLES_HM, 2, generator=generator, dtype=torch.float64)
    samples = kp[..., None, :2] + sigma * noise
    score = kp[..., 2].clamp(0.0, 1.0)
    values = score[..., None] * torch.exp(-0.5 * (noise ** 2).sum(-1))
    samples = torch.where((score > 0)[..., None, None], samples, kp[..., None, :2].expand_as(samples))
    return {"cond_kp": torch.cat([kp[..., :2], score[..., None]], -1), "hm_samples": samples,
            "hm_values": values, "hm_max_conf": score}


def _crop_res(model: nn.Module) -> int:
    """Crop resolution the model's image backbone expects (its ``input_size``, else 224)."""
    cond = getattr(model, "conditions", {})
    backbone = getattr(cond["image"], "backbone", None) if "image" in cond else None
    return int(getattr(backbone, "input_size", None) or 224)


def _read_image(image) -> np.ndarray:
    if isinstance(image, str | Path):
        import cv2

        img = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {image} (expected a PNG / JPEG file)")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {img.shape} {img.dtype}")
    return img


def predict(model: nn.Module, image, heatmaps: np.ndarray | None = None,
            keypoints: np.ndarray | None = None, bbox: np.ndarray | Sequence[float] | None = None,
            num_samples: int = 25, seed: int = 0, crop_res: int | None = None) -> dict[str, Any]:
    """Hypotheses for every person of one image from a 2D detector's output.

    Args:
        model: a :class:`humr.model.HUMR` (e.g. :func:`humr.load_official`), any device.
        image: (H, W, 3) uint8 RGB array or an image path.
        heatmaps: (P, 17, h, w) or (17, h, w) ViTPose heatmaps of each person's top-down crop.
        keypoints: (P, 17, 3) or (17, 3) COCO-17 (x, y, score) in full-image pixels.
        bbox: (P, 4) or (4,) person boxes [x0, y0, x1, y1] px; default: around the keypoints
            (keypoints) or the whole image (heatmaps).
        num_samples: S hypotheses per person (the first is the mode, z = 0).
        seed: seed of the latent draws and heatmap samples.
        crop_res: crop resolution (default: the backbone's input size, else 224).
    Returns:
        numpy dict: ``rotmat`` (P,S,J,3,3), ``betas`` (P,S,nb), ``cam`` (P,S,3) weak perspective,
        ``cam_t`` (P,S,3) m, ``joints3d`` (P,S,J,3) m body frame, ``keypoints2d`` (P,S,17,2)
        full-image px, ``log_prob`` (P,S), ``vertices`` (P,S,V,3) m body frame, ``faces``,
        ``focal`` (P,2), ``center`` (P,2), ``scale`` (P,1), ``cond_kp`` (P,17,3), ``crop``
        (P,R,R,3) uint8.
    """
    from humr.data.dataset import IMAGENET_MEAN, IMAGENET_STD
    from humr.data.official import crop_image
    from humr.geometry import crop_to_full

    if (heatmaps is None) == (keypoints is None):
        raise ValueError("give exactly one of heatmaps= (P, 17, h, w) and keypoints= (P, 17, 3)")
    img = _read_image(image)
    H, W = img.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    if keypoints is not None:
        kp = np.asarray(keypoints, dtype=np.float64)
        kp = kp[None] if kp.ndim == 2 else kp
        if kp.ndim != 3 or kp.shape[1:] != (17, 3) or not np.isfinite(kp).all():
            raise ValueError(f"keypoints must be finite (P, 17, 3) (x, y, score), got {kp.shape}")
        boxes = _keypoint_boxes(kp) if bbox is None else np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
    else:
        hm = np.asarray(heatmaps, dtype=np.float64)
        hm = hm[None] if hm.ndim == 3 else hm
        if hm.ndim != 4 or hm.shape[1] != 17:
            raise ValueError(f"heatmaps must have shape (P, 17, h, w), got {hm.shape}")
        boxes = (np.array([[0.0, 0.0, W, H]]).repeat(len(hm), 0) if bbox is None
                 else np.asarray(bbox, dtype=np.float64).reshape(-1, 4))
    P = len(kp) if keypoints is not None else len(hm)
    if len(boxes) != P:
        raise ValueError(f"{len(boxes)} boxes for {P} people; give one bbox per person")
    center, wh = _box_center_size(boxes)
    inputs = (_keypoint_inputs(kp, wh, gen) if keypoints is not None
              else _heatmap_inputs(hm, center, wh, gen))
    side = BOX_PAD * wh.max(1)
    R = crop_res or _crop_res(model)
    crops = np.stack([crop_image(img, c, b, R) for c, b in zip(center, side)])
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    param = next(model.parameters())
    batch = {k: v.to(param.device) for k, v in inputs.items()}
    batch.update({
        "img": torch.as_tensor(((crops / 255.0 - mean) / std).transpose(0, 3, 1, 2), device=param.device),
        "center": torch.as_tensor(center, device=param.device),
        "scale": torch.as_tensor(side[:, None] / 200.0, device=param.device),
        "orig_shape": torch.tensor([[H, W]], dtype=torch.float64, device=param.device).expand(P, 2)})
    z = torch.randn(P, num_samples, model.pose_dim, generator=gen).to(param)
    z[:, 0] = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(batch, num_samples=num_samples, outputs=("vertices",), z=z)
    model.train(was_training)
    box = torch.as_tensor(side, dtype=out["keypoints2d"].dtype, device=param.device)
    res = {k: out[k].detach().cpu().numpy() for k in
           ("rotmat", "betas", "cam", "cam_t", "joints3d", "log_prob", "vertices")}
    res["keypoints2d"] = crop_to_full(out["keypoints2d"], batch["center"].to(box.dtype)[:, None],
                                      box[:, None]).cpu().numpy()
    from humr.conditions import batch_focal

    res.update(faces=np.asarray(model.body.faces), focal=batch_focal(batch).cpu().numpy(),
               center=center, scale=side[:, None] / 200.0, cond_kp=inputs["cond_kp"].numpy(),
               crop=crops.astype(np.uint8), image_hw=np.array([H, W]))
    return res


def load_detections(path: str | Path) -> np.ndarray:
    """Detector output from a file: ``.npy`` heatmaps (P, 17, h, w) / (17, h, w), or a JSON of
    COCO results (a list of {"keypoints": [x, y, s] * 17}) or OpenPose (``people`` with
    ``pose_keypoints_2d`` BODY_25, mapped to COCO-17). Returns heatmaps or keypoints (P, 17, 3)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"detections file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    from humr.data.official import BODY25_TO_COCO17

    data = json.loads(path.read_text())
    people = []
    if isinstance(data, dict) and "people" in data:
        for person in data["people"]:
            kp = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float64)
            if kp.size != 75:
                raise ValueError(f"{path}: OpenPose pose_keypoints_2d must hold 25 x 3 values, got {kp.size}")
            people.append(kp.reshape(25, 3)[list(BODY25_TO_COCO17)])
    elif isinstance(data, list):
        for det in data:
            kp = np.asarray(det.get("keypoints", []) if isinstance(det, dict) else [], dtype=np.float64)
            if kp.size != 51:
                raise ValueError(f"{path}: COCO results entries need 'keypoints' with 17 x 3 values")
            people.append(kp.reshape(17, 3))
    else:
        raise ValueError(f"{path}: expected a COCO results list or an OpenPose dict with 'people'")
    if not people:
        raise ValueError(f"{path} holds no people")
    return np.stack(people)


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    # OBJ is a few lines of text: no mesh library is a dependency for it
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    import io

    buf = io.StringIO()
    buf.write(f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {len(faces)}\n"
              "property list uchar int vertex_indices\nend_header\n")
    np.savetxt(buf, vertices, fmt="%.6f")
    np.savetxt(buf, np.concatenate([np.full((len(faces), 1), 3), faces], 1), fmt="%d")
    atomic_write_text(path, buf.getvalue())


def save_prediction(pred: dict, out_dir: str | Path, num_meshes: int = 5, mesh_format: str = "obj") -> list[Path]:
    """Write ``hypotheses.npz`` (rotations, betas, camera, joints, log-densities), per person the
    mode and ``num_meshes`` hypotheses as meshes (camera frame, metres), a Fig. 1-style overlay
    (``person{p}_overlay.png``: hypotheses of the least confident articulated joint over the
    crop) and the per-vertex uncertainty render (``person{p}_uncertainty.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    from humr.heatmaps import ARTICULATED_COCO
    from humr.viz.hypotheses import plot_hypotheses_2d
    from humr.viz.mesh import render_hypotheses, uncertainty_colors

    if mesh_format not in ("obj", "ply"):
        raise ValueError(f"mesh_format must be 'obj' or 'ply', got {mesh_format!r}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    npz = out / "hypotheses.npz"
    atomic_write(npz, lambda f: np.savez(
        f, rotations=pred["rotmat"], betas=pred["betas"], camera=pred["cam"],
        camera_translation=pred["cam_t"], joints3d=pred["joints3d"],
        keypoints2d=pred["keypoints2d"], log_density=pred["log_prob"],
        center=pred["center"], scale=pred["scale"], focal=pred["focal"], cond_kp=pred["cond_kp"]))
    written.append(npz)
    writer = _write_obj if mesh_format == "obj" else _write_ply
    P, S = pred["rotmat"].shape[:2]
    faces = pred["faces"]
    for p in range(P):
        cam_verts = pred["vertices"][p] + pred["cam_t"][p][:, None]
        for s in range(min(S, num_meshes + 1)):
            path = out / f"person{p}_{'mode' if s == 0 else f'hyp{s:02d}'}.{mesh_format}"
            writer(path, cam_verts[s], faces)
            written.append(path)
        crop = pred["crop"][p]
        kp_crop = (pred["keypoints2d"][p] - pred["center"][p]) / (100.0 * pred["scale"][p])
        conf = pred["cond_kp"][p, :, 2]
        joint = min(ARTICULATED_COCO, key=lambda k: conf[k])
        overlay = out / f"person{p}_overlay.png"
        plot_hypotheses_2d(crop, kp_crop, joint, out=overlay,
                           title=f"person {p}: {S - 1} hypotheses, joint {joint} (conf {conf[joint]:.2f})")
        written.append(overlay)
        if S > 2:
            import cv2

            colors, _, _ = uncertainty_colors(pred["vertices"][p, 1:])
            R = max(crop.shape[0], 256)          # render at >= 256 px even for small crops
            background = cv2.resize(crop, (R, R), interpolation=cv2.INTER_LINEAR)
            box = 200.0 * float(pred["scale"][p, 0])
            H, W = pred["image_hw"]
            # the crop's camera: full-image intrinsics shifted and scaled into the R x R crop
            focal = pred["focal"][p] * R / box
            principal = (np.array([W, H]) / 2.0 - pred["center"][p] + box / 2.0) * R / box
            grid = render_hypotheses(cam_verts[:1], faces, focal, principal, (R, R), background=background,
                                     colors=[colors])

            path = out / f"person{p}_uncertainty.png"
            atomic_write_image(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
            written.append(path)
    return written

