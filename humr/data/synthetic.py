"""Synthetic benchmark with a known posterior (``humr synth``).

One example (:func:`make_example`, deterministic in ``(seed, split, index)``):

1. Pose from :class:`~humr.data.pose_prior.JointLimitPrior` (its difficulty knobs
   ``limit_scale``, ``yaw_deg``, ``pitch_deg``, ``roll_deg`` come from the config),
   betas ~ N(0, betas_std^2 I).
2. Camera: focal ``U(focal_range)`` px, principal point at the frame centre; depth chosen so
   the person covers ``U(height_frac)`` of the frame height (clipped to ``depth_range``); the
   person is placed at a random spot of the frame (off-centre, so the CLIFF box carries
   information); with probability ``prob_truncation`` it is pushed over a frame edge by
   ``U(truncation)`` of its size.
3. Occluder boxes over limbs (:func:`humr.data.occlusion.place_occluders`).
4. Crop: square around the in-frame COCO joints, side ``margin * U(scale_jitter)`` times their
   extent, centre shifted by up to ``crop_shift`` of the side.
5. Posterior and heatmaps of the ideal detector (:mod:`humr.data.detector`), detected pose,
   150 heatmap samples per joint (:func:`humr.heatmaps.precompute_samples`).
6. Rendering straight into the crop (:func:`humr.viz.render.render_mesh` with the crop camera):
   textured background, body coloured by part (left limbs blue, right limbs red), occluders on
   top, black outside the frame. Plausibility mask = silhouette (occluded parts included)
   union occluders union the region outside the frame (a truncated joint may be anywhere
   there, as with the zero-padded crops of the paper's masks); ``mask_valid = True``.

:func:`generate` writes the folder format of :mod:`humr.data.format` shard by shard (skipping
complete shards: resumable), with worker processes and a progress bar.
"""
from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import cv2
import numpy as np
import torch

from humr.data.detector import (
    detect,
    detector_heatmaps,
    posterior_samples,
    project_coco,
)
from humr.data.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    read_meta,
    read_shard,
    shard_name,
    write_meta,
    write_shard,
)
from humr.data.occlusion import hidden_joints, place_occluders
from humr.data.pose_prior import JointLimitPrior
from humr.data.schema import REQUIRED_KEYS, DataFormatError
from humr.geometry import full_to_crop, matrix_to_axis_angle, perspective_project

__all__ = ["SPLITS", "STORED_KEYS", "Scene", "SynthConfig", "generate", "make_example",
           "recorded_config"]

SPLITS = ("train", "test")
#: keys of every generated example (the required schema keys plus the synthetic ones)
STORED_KEYS = REQUIRED_KEYS + ("focal", "posterior", "posterior_count", "coco_visible")
GENERATOR_VERSION = 2   # 2: vectorised rasteriser (pixel coverage), 256 test posterior samples

# RGB in [0, 1] per SMPL joint (vertex colour = colour of its dominant skinning joint)
_TORSO, _HEAD, _LEFT, _RIGHT = (0.55, 0.62, 0.45), (0.85, 0.70, 0.58), (0.30, 0.45, 0.85), (0.85, 0.32, 0.30)
_PART_COLORS = np.array([_TORSO, _LEFT, _RIGHT, _TORSO, _LEFT, _RIGHT, _TORSO, _LEFT, _RIGHT,
                         _TORSO, _LEFT, _RIGHT, _HEAD, _TORSO, _TORSO, _HEAD, _LEFT, _RIGHT,
                         _LEFT, _RIGHT, _LEFT, _RIGHT, _LEFT, _RIGHT])


@dataclass
class SynthConfig:
    """Parameters of the synthetic benchmark (all lengths in px of the full frame unless said).

    Attributes:
        crop_res: R, crop side in pixels. heatmap_res: heatmap side (square, over the crop).
        frame_hw: full image (h, w). focal_range: focal length px. depth_range: metres.
        height_frac: person size / frame height. betas_std: std of the shape coefficients.
        limit_scale: factor in (0, 1] on every joint's Euler range (about the rest pose);
            yaw_deg, pitch_deg, roll_deg: bounds of the global turn / lean (see
            :class:`~humr.data.pose_prior.JointLimitPrior`). The defaults (1, 180, 15, 10) are
            the benchmark as first published; docs/synthetic.md lists the protocol's values.
        prob_truncation, truncation: share of examples pushed over a frame edge, and by how
            much of the person's size.
        crop_margin, crop_scale_jitter, crop_shift: crop side = margin * U(jitter) * extent of
            the in-frame joints; centre shift up to ``crop_shift`` * side.
        prob_occluder, prob_second_occluder, prob_occlude_mid: see ``place_occluders``.
        posterior_samples, candidates, max_rounds, tolerance_px: see ``posterior_samples``.
        test_posterior_samples: P of the test split (its candidates scale by the same factor):
            the reference set of the posterior energy distance and of the oracle's noise floor
            (:mod:`humr.data.oracle`), whose expected value falls with the number of distinct
            samples; training never reads the posterior.
        light_dir: (3,) direction towards a distant light in the camera frame (x right, y
            down, z forward), or None (the default) for a light at the camera, whose shading
            is the same for a limb turned towards the camera and for its mirror image turned
            away (see :func:`humr.viz.render.render_mesh`).
        depth_cue: k >= 0 (1/m): the body's colours are scaled by ``exp(-k dz)`` for a
            surface ``dz`` metres behind the body's mean depth (brighter in front), so the
            image tells which end of a visible limb is nearer; 0 (the default) for none.
        num_hm_samples: heatmap samples per joint. shard_size: examples per shard file.
        body_model: "procedural" or a path for :class:`humr.body.BodyModel`.
    """

    crop_res: int = 128
    heatmap_res: int = 64
    frame_hw: tuple[int, int] = (480, 640)
    focal_range: tuple[float, float] = (500.0, 1500.0)
    depth_range: tuple[float, float] = (3.0, 8.0)
    height_frac: tuple[float, float] = (0.4, 0.85)
    betas_std: float = 1.0
    limit_scale: float = 1.0
    yaw_deg: float = 180.0
    pitch_deg: float = 15.0
    roll_deg: float = 10.0
    num_betas: int = 10
    prob_truncation: float = 0.3
    truncation: tuple[float, float] = (0.1, 0.35)
    crop_margin: float = 1.2
    crop_scale_jitter: tuple[float, float] = (1.0, 1.25)
    crop_shift: float = 0.05
    prob_occluder: float = 0.75
    prob_second_occluder: float = 0.35
    prob_occlude_mid: float = 0.4
    posterior_samples: int = 64
    test_posterior_samples: int = 256
    candidates: int = 256
    max_rounds: int = 4
    tolerance_px: float = 2.0
    light_dir: tuple[float, float, float] | None = None
    depth_cue: float = 0.0
    num_hm_samples: int = 150
    shard_size: int = 32
    body_model: str = "procedural"

    def __post_init__(self) -> None:
        from humr.viz.render import depth_falloff, light_direction

        light_direction(self.light_dir, "light_dir")          # ValueErrors naming the knob
        depth_falloff(self.depth_cue, "depth_cue")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def prior(self) -> JointLimitPrior:
        """The pose prior with this config's difficulty knobs."""
        return JointLimitPrior(pitch_deg=self.pitch_deg, roll_deg=self.roll_deg,
                               yaw_deg=self.yaw_deg, limit_scale=self.limit_scale)


@dataclass
class Scene:
    """Geometry of one example (float64 tensors, camera frame, full-image px)."""

    rotmat: torch.Tensor          # (J, 3, 3)
    betas: torch.Tensor           # (nb,)
    transl: torch.Tensor          # (3,)
    focal: torch.Tensor           # (2,)
    principal: torch.Tensor       # (2,)
    boxes: np.ndarray             # (M, 4) occluders
    center: np.ndarray            # (2,) crop centre
    box_size: float               # crop side
    vertices: torch.Tensor        # (V, 3) posed mesh before the translation, metres
    joints: torch.Tensor          # (J, 3) posed joints before the translation, metres


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of example ``index`` of ``split`` (independent of every other example)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]))


def _place(cfg: SynthConfig, verts, pelvis, focal, principal, rng) -> torch.Tensor:
    """Translation (3,) putting the person (posed mesh ``verts`` (V, 3), ``pelvis`` (3,)) at a
    random spot of the frame (maybe truncated)."""
    h, w = cfg.frame_hw
    dtype = verts.dtype
    extent = float((verts[:, :2].amax(0) - verts[:, :2].amin(0)).max())
    depth = float(np.clip(focal[1].item() * extent / (rng.uniform(*cfg.height_frac) * h),
                          *cfg.depth_range))

    def at(uv):
        ray = (torch.as_tensor(uv, dtype=dtype) - principal) / focal * depth
        return torch.cat([ray, ray.new_tensor([depth])]) - pelvis

    # 2D box of the mesh relative to the pelvis pixel (perspective: nearly a translation)
    ctr = principal.numpy()
    uv = perspective_project(verts, focal, principal, at(ctr)).numpy()
    lo, hi = uv.min(0) - ctr, uv.max(0) - ctr
    size = hi - lo
    frame = np.array([w, h], dtype=np.float64)
    low, high = -lo, frame - hi                      # pelvis positions keeping the box inside
    target = np.where(low <= high, rng.uniform(np.minimum(low, high), np.maximum(low, high)),
                      frame / 2)
    if rng.random() < cfg.prob_truncation:
        axis, side = [(1, 1), (1, 1), (0, 0), (0, 1), (1, 0)][rng.integers(5)]  # bottom x2, l, r, top
        over = rng.uniform(*cfg.truncation) * size[axis]
        target[axis] = frame[axis] - hi[axis] + over if side else -lo[axis] - over
    return at(target)


def make_scene(body, prior: JointLimitPrior, cfg: SynthConfig, rng: np.random.Generator
               ) -> tuple[Scene, np.ndarray]:
    """Pose, shape, camera, occluders and crop of one example; also its COCO 2D (17, 2)."""
    dt = torch.float64
    rotmat = prior.sample(1, rng)[0]
    betas = torch.from_numpy(rng.normal(0.0, cfg.betas_std, cfg.num_betas)).to(dt)
    focal = torch.full((2,), rng.uniform(*cfg.focal_range), dtype=dt)
    principal = torch.tensor([cfg.frame_hw[1] / 2.0, cfg.frame_hw[0] / 2.0], dtype=dt)
    posed = body(rotmat[None], betas[None], return_vertices=True, h36m=False)
    verts, joints = posed["vertices"][0], posed["joints"][0]
    transl = _place(cfg, verts, joints[0], focal, principal, rng)
    coco2d = project_coco(body, rotmat[None], betas, transl, focal, principal)[0].numpy()
    boxes = place_occluders(coco2d, rng, cfg.prob_occluder, cfg.prob_second_occluder,
                            cfg.prob_occlude_mid)
    h, w = cfg.frame_hw
    inside = (coco2d[:, 0] >= 0) & (coco2d[:, 0] < w) & (coco2d[:, 1] >= 0) & (coco2d[:, 1] < h)
    pts = coco2d[inside] if inside.any() else coco2d
    lo, hi = pts.min(0), pts.max(0)
    side = max(float((hi - lo).max()), 20.0) * cfg.crop_margin * rng.uniform(*cfg.crop_scale_jitter)
    center = (lo + hi) / 2 + rng.uniform(-cfg.crop_shift, cfg.crop_shift, 2) * side
    return Scene(rotmat, betas, transl, focal, principal, boxes, center, side, verts,
                 joints), coco2d


def _background(res: int, rng: np.random.Generator) -> np.ndarray:
    """(res, res, 3) uint8 texture: random stripes plus smoothed noise."""
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 40)
    stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (res, res, 3)), (0, 0), rng.uniform(1, 4))
    base = rng.uniform(0.15, 0.85, 3)
    img = base + 0.15 * stripes[..., None] * rng.uniform(-1, 1, 3) + 0.25 * noise
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _render(body, scene: Scene, cfg: SynthConfig, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Crop image (R, R, 3) uint8 and plausibility mask (R, R) uint8."""
    from humr.viz.mesh import crop_camera
    from humr.viz.render import render_mesh

    res, (h, w) = cfg.crop_res, cfg.frame_hw
    verts = (scene.vertices + scene.transl).numpy()
    focal, principal = crop_camera(scene.focal.numpy(), scene.center, scene.box_size,
                                   cfg.frame_hw, res)
    part = body.lbs_weights.argmax(dim=1).numpy()
    colors = np.clip(_PART_COLORS[part] * rng.uniform(0.8, 1.15, 3), 0, 1)
    out = render_mesh(verts, body.faces, focal, principal, (res, res), color=colors,
                      background=_background(res, rng), light=cfg.light_dir,
                      depth_cue=cfg.depth_cue)
    img, mask = out["rgb"], out["silhouette"].copy()
    # crop pixel centres in full-image px
    grid = (np.arange(res) + 0.5) / res * scene.box_size + scene.center[:, None] - scene.box_size / 2
    gx, gy = np.meshgrid(grid[0], grid[1])
    for x0, y0, x1, y1 in scene.boxes:
        inside = (gx >= x0) & (gx < x1) & (gy >= y0) & (gy < y1)
        shade = rng.uniform(0.2, 0.9, 3) * 255
        checker = ((np.floor(gx / rng.uniform(4, 16)) + np.floor(gy / 12)) % 2)[..., None]
        img[inside] = np.clip(shade * (0.75 + 0.25 * checker), 0, 255).astype(np.uint8)[inside]
        mask |= inside
    outside = ~((gx >= 0) & (gx < w) & (gy >= 0) & (gy < h))
    img[outside] = 0
    mask |= outside
    return img, mask.astype(np.uint8)


def make_example(index: int, split: str, seed: int, cfg: SynthConfig, body,
                 prior: JointLimitPrior | None = None, extras: bool = False) -> dict:
    """One example as numpy arrays of the stored schema (no leading N).

    With ``extras`` also ``heatmaps`` (17, H, W), ``posterior_coco`` (count, 17, 2) full-image
    px, ``hidden`` (17,), ``boxes`` (M, 4) and ``transl`` (3,) metres, for previews and tests.
    """
    prior = prior or cfg.prior()
    rng = example_rng(seed, split, index)
    scene, coco2d = make_scene(body, prior, cfg, rng)
    num = cfg.test_posterior_samples if split == "test" else cfg.posterior_samples
    rot, count, post2d = posterior_samples(
        body, prior, scene.rotmat, scene.betas, scene.transl, scene.focal, scene.principal,
        scene.boxes, cfg.frame_hw, rng, num, max(1, cfg.candidates * num // cfg.posterior_samples),
        cfg.max_rounds, cfg.tolerance_px, gt2d=coco2d)
    hidden = hidden_joints(coco2d, scene.boxes, cfg.frame_hw)
    center, box = torch.from_numpy(scene.center), torch.tensor(scene.box_size, dtype=torch.float64)
    to_crop = lambda p: full_to_crop(torch.from_numpy(p), center, box).numpy()
    heatmaps = torch.from_numpy(detector_heatmaps(
        to_crop(coco2d), to_crop(post2d.reshape(-1, 2)).reshape(post2d.shape), hidden, rng,
        (cfg.heatmap_res, cfg.heatmap_res)))
    img, mask = _render(body, scene, cfg, rng)
    scale = torch.tensor([scene.box_size / 200.0])
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    from humr.heatmaps import precompute_samples

    samples = precompute_samples(heatmaps, center.float(), scale.float(), torch.from_numpy(mask),
                                 n=cfg.num_hm_samples, generator=gen,
                                 convention="centers")   # detector maps cover the square crop
    joints2d = perspective_project(scene.joints, scene.focal, scene.principal,
                                   scene.transl).numpy()
    ones = lambda n: np.ones((n, 1))
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    out = {
        "img": img,
        "center": f32(scene.center),
        "scale": f32(scale),
        "orig_shape": f32(cfg.frame_hw),
        "focal": f32(scene.focal),
        "pose": f32(matrix_to_axis_angle(scene.rotmat).reshape(-1)),
        "betas": f32(scene.betas),
        "kp2d_gt": f32(np.concatenate([joints2d, ones(len(joints2d))], 1)),
        "coco_gt": f32(np.concatenate([coco2d, ones(17)], 1)),
        "cond_kp": f32(detect(heatmaps.double(), center, box)),
        **{k: f32(v) for k, v in samples.items()},
        "mask": mask,
        "mask_valid": np.array(bool(mask.any())),
        "posterior": f32(matrix_to_axis_angle(rot).reshape(len(rot), -1)),
        "posterior_count": np.array(count, dtype=np.int64),
        "coco_visible": ~hidden,
    }
    if extras:
        out.update(heatmaps=heatmaps.numpy(), posterior_coco=post2d, hidden=hidden,
                   boxes=scene.boxes, transl=scene.transl.numpy())
    return out


# -- writing a dataset folder ---------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(cfg: dict) -> None:
    from humr.body import BodyModel

    torch.set_num_threads(1)
    cfg = _config(cfg)
    _WORKER.update(body=BodyModel(cfg.body_model, dtype=torch.float64), prior=cfg.prior())


def recorded_config(meta: dict) -> dict | None:
    """The generator parameters a dataset's ``meta.json`` records (``meta['generator']``, the
    JSON form of :class:`SynthConfig`), with the knobs added after it was written filled with
    their defaults: a new knob's default reproduces the generator as it was before the knob
    existed, so such a folder still matches the config that reads it. None if not recorded."""
    written = meta.get("generator")
    return None if written is None else {**SynthConfig().to_dict(), **written}


def _config(data: dict) -> SynthConfig:
    """A SynthConfig from its JSON form (lists back to tuples)."""
    return SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _write_shard(task: tuple) -> tuple[str, int]:
    """Generate and write one shard: ``(path, split, start, stop, seed, config dict)``."""
    path, split, start, stop, seed, cfg = task
    cfg = _config(cfg)
    rows = [make_example(i, split, seed, cfg, _WORKER["body"], _WORKER["prior"])
            for i in range(start, stop)]
    write_shard(path, {k: np.stack([r[k] for r in rows]) for k in rows[0]})
    return path, stop - start


def _shard_done(path: Path, count: int) -> bool:
    try:
        return len(read_shard(path)["img"]) == count
    except (DataFormatError, KeyError):
        return False


def generate(out: str | Path, n_train: int, n_test: int, seed: int = 0,
             config: SynthConfig | None = None, workers: int = 1, progress: bool = False,
             preview: bool = False) -> Path:
    """Write a synthetic dataset folder (format: :mod:`humr.data.format`) and return its path.

    Example ``i`` of a split depends only on ``(seed, split, i)`` and the config, so the same
    arguments give byte-identical files, and an interrupted run resumes: complete shards of the
    same parameters are kept. A folder written with other parameters raises ``ValueError``.

    Args:
        out: dataset folder.
        n_train, n_test: examples per split.
        seed: benchmark seed.
        config: generator parameters (default :class:`SynthConfig`).
        workers: processes (1 = in this process).
        progress: tqdm progress bar over examples.
        preview: also write ``out/preview.png`` (:func:`humr.data.preview.write_preview`).
    """
    cfg = config or SynthConfig()
    root = Path(out)
    counts = {"train": int(n_train), "test": int(n_test)}
    if min(counts.values()) < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {counts}")
    size = cfg.shard_size
    splits = {s: {"count": n, "shards": [shard_name(s, k) for k in range(-(-n // size))]}
              for s, n in counts.items()}
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "generator_version": GENERATOR_VERSION,
            "seed": int(seed), "crop_res": cfg.crop_res, "shard_size": size,
            "generator": cfg.to_dict(), "splits": splits, "complete": False,
            "keys": sorted(STORED_KEYS)}
    if (root / "meta.json").is_file():
        old = read_meta(root, require_complete=False)
        old = {**old, "generator": recorded_config(old)}
        same = ("seed", "generator", "generator_version", "shard_size")
        if any(old.get(k) != meta[k] for k in same):
            raise ValueError(f"{root} holds a dataset written with other parameters "
                             f"({', '.join(f'{k}={old.get(k)!r}' for k in same)}); "
                             "use another folder")
    write_meta(root, meta)
    tasks = []
    for split, n in counts.items():
        for k, name in enumerate(splits[split]["shards"]):
            start, stop = k * size, min((k + 1) * size, n)
            if not _shard_done(root / name, stop - start):
                tasks.append((str(root / name), split, start, stop, int(seed), cfg.to_dict()))
    from tqdm import tqdm

    bar = tqdm(total=sum(t[3] - t[2] for t in tasks), unit="ex", disable=not progress,
               desc=f"humr synth {root}")
    if workers <= 1 or len(tasks) <= 1:
        threads = torch.get_num_threads()
        try:
            _init_worker(cfg.to_dict())
            for _, n in map(_write_shard, tasks):
                bar.update(n)
        finally:                          # the worker set-up makes torch single-threaded
            torch.set_num_threads(threads)
    else:
        # fork where the platform has it: a spawned worker re-imports torch and humr (seconds
        # per worker on 2 busy cores, longer than its share of a few hundred examples)
        method = "fork" if "fork" in get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=get_context(method),
                                 initializer=_init_worker, initargs=(cfg.to_dict(),)) as pool:
            for _, n in pool.map(_write_shard, tasks):
                bar.update(n)
    bar.close()
    write_meta(root, {**meta, "complete": True})
    if preview:
        from humr.data.preview import write_preview

        write_preview(root / "preview.png", seed, cfg, split="test" if n_test else "train")
    return root

