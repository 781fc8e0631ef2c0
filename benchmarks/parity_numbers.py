"""Numbers of docs/parity.md: how far humr's earlier defaults are from the official release.

Every number is measured here on synthetic batches (seeded), each as a ratio of the earlier
humr formulation (still available as an option) to the official one (humr's default now):

* loss strengths at the same lambda (kp2d_mode, betas, orth, mmd, mask);
* the MMD gradient direction (cosine between the unbiased / valid-mean and the official
  biased / all-slots gradients);
* the MMD target / supervision decisions on a grid of 16 confidences x 4 ground-truth
  positions x 17 joints (1,088 decisions): earlier rule (articulated and conf < 0.7 ->
  heatmap; supervised if -1 <= u < 1 and (articulated or conf > 0.5)) vs the official one;
* the heatmap-to-crop offset between the mmpose and the pixel-centre conventions.

    python benchmarks/parity_numbers.py          # about 10 s on one CPU core
"""
from __future__ import annotations

import torch

import humr
from humr.core.crop import inside_box, inside_crop
from humr.core.skeleton import ARTICULATED_COCO
from humr.core.visibility import heatmap_target_joints, mmd_supervised
from humr.heatmaps import heatmap_to_crop

B, S, K, P, R = 32, 26, 17, 150, 64


def batch_and_output(seed: int = 0, nb: int = 10, joints: int = 22):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)
    center, scale = 200 + 50 * r(B, 2), 0.8 + 0.5 * r(B, 1)
    full = lambda u: u * (100 * scale[:, None]) + center[:, None]
    gt = (r(B, K, 2) * 2.2 - 1.1)
    hyp = gt[:, None] + 0.15 * torch.randn(B, S, K, 2, generator=g, dtype=torch.float64)
    samples = gt[:, :, None] + 0.1 * torch.randn(B, K, P, 2, generator=g, dtype=torch.float64)
    mask = torch.zeros(B, R, R, dtype=torch.uint8)
    mask[:, 16:48, 20:44] = 1
    batch = {"center": center, "scale": scale,
             "coco_gt": torch.cat([full(gt), torch.ones(B, K, 1, dtype=torch.float64)], -1),
             "kp2d_gt": torch.cat([full(r(B, 24, 2) * 2 - 1), torch.ones(B, 24, 1, dtype=torch.float64)], -1),
             "hm_samples": full(samples.reshape(B, -1, 2)).reshape(B, K, P, 2),
             "hm_values": torch.full((B, K, P), 0.5, dtype=torch.float64),
             "hm_max_conf": r(B, K), "hm_samples_mask_dist": 3 * r(B, K, P) * (r(B, K, P) > 0.5),
             "mask": mask, "mask_valid": torch.ones(B, dtype=torch.bool),
             "betas": torch.randn(B, nb, generator=g, dtype=torch.float64)}
    out = {"keypoints2d": hyp, "joints2d": gt[:, None, :1].expand(B, S, joints, 2) + 0.1 * r(B, S, joints, 2),
           "betas": torch.randn(B, S, nb, generator=g, dtype=torch.float64),
           "pose_6d": torch.eye(3, dtype=torch.float64)[:, :2].reshape(6).repeat(B, S, joints)
           + 0.1 * torch.randn(B, S, joints * 6, generator=g, dtype=torch.float64)}
    return batch, out


def ratio(name: str, old: dict, batch, out, new: dict | None = None) -> float:
    torch.manual_seed(0)
    a = humr.LOSSES.build(name, **old)(batch, out).item()
    torch.manual_seed(0)
    b = humr.LOSSES.build(name, **(new or {}))(batch, out).item()
    return a / b


def mmd_gradient_cosine(batch, out) -> float:
    grads = []
    for kw in ({"estimator": "unbiased", "reduction": "valid"}, {}):
        kp = out["keypoints2d"].clone().requires_grad_()
        torch.manual_seed(0)
        humr.LOSSES.build("mmd", **kw)(batch, {**out, "keypoints2d": kp}).backward()
        grads.append(kp.grad.flatten())
    return torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0).item()


def decision_grid() -> tuple[int, int]:
    conf = torch.tensor([0.0, 0.1, 0.15, 0.16, 0.2, 0.3, 0.4, 0.49, 0.5, 0.51, 0.6, 0.65,
                         0.69, 0.7, 0.8, 1.0], dtype=torch.float64)
    pos = torch.tensor([[0.2, 0.1], [0.9, 0.1], [1.0, 0.5], [1.1, 0.0]], dtype=torch.float64)
    c = conf[:, None, None].expand(16, 4, K).reshape(-1, K)
    u = pos[None, :, None].expand(16, 4, K, 2).reshape(-1, K, 2)
    art = torch.zeros(K, dtype=torch.bool)
    art[list(ARTICULATED_COCO)] = True
    old_crop = ((u >= -1) & (u < 1)).all(-1)
    old_hm = art & (c < 0.7)
    old_valid = old_crop & (art | (c > 0.5))
    new_hm = heatmap_target_joints(c, inside_crop(u), inside_box(u))
    new_valid = mmd_supervised(c, inside_crop(u))
    differ = ((old_hm & old_valid) != (new_hm & new_valid)) | (old_valid != new_valid)
    return int(differ.sum()), differ.numel()


def main() -> None:
    batch, out = batch_and_output()
    print("loss strength, earlier humr default / official (same lambda):")
    print(f"  kp2d_mode  mean over joints vs sum / B      {ratio('kp2d_mode', {'reduction': 'mean'}, batch, out):.4f}")
    print(f"  betas      mean vs sum / B (nb = 10)        {ratio('betas', {'reduction': 'mean'}, batch, out):.4f}")
    print(f"  orth       mean_all vs official             {ratio('orth', {'reduction': 'mean_all'}, batch, out):.3f}")
    for b in (0, 1, 2):
        bo = batch_and_output(seed=b)
        print(f"  mmd        unbiased+valid vs official (seed {b})  "
              f"{ratio('mmd', {'estimator': 'unbiased', 'reduction': 'valid'}, *bo):.3f}")
    print(f"  mmd        biased+valid vs official (reduction only)  "
          f"{ratio('mmd', {'reduction': 'valid'}, batch, out):.3f}")
    print(f"  mask       same_joint anchors vs all             "
          f"{ratio('mask', {'anchors': 'same_joint'}, batch, out):.3f}")
    print(f"  mask       mean over points vs / B (S - 1)       "
          f"{ratio('mask', {'reduction': 'points'}, batch, out):.3f}")
    print(f"  mask       no dilation vs 3 x 3 x 3              "
          f"{ratio('mask', {'dilate_iterations': 0}, batch, out):.3f}")
    print(f"mmd gradient cosine (unbiased+valid vs official): {mmd_gradient_cosine(batch, out):.4f}")
    n, total = decision_grid()
    print(f"MMD target / supervision decisions that differ on the grid: {n} of {total}")
    xy = torch.stack(torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="xy"), -1)
    d = (heatmap_to_crop(xy, (64, 48)) - heatmap_to_crop(xy, (64, 48), "centers")).abs()
    print(f"heatmap mmpose vs centres: max offset {d[..., 0].max() * 128:.2f} px (x), "
          f"{d[..., 1].max() * 128:.2f} px (y) of a 256 crop")


if __name__ == "__main__":
    main()
