"""Batches shared by several test modules (plain helpers, not fixtures)."""
from __future__ import annotations

import torch


def make_batch(B=2, R=64, N=12, seed=0, dtype=torch.float32):
    """A tiny random batch following docs/conventions.md (full-image pixels, crop of side 200 s)."""
    g = torch.Generator().manual_seed(seed)
    orig = torch.tensor([[480.0, 640.0], [720.0, 540.0]])[:B]
    center = torch.tensor([[400.0, 200.0], [250.0, 420.0]])[:B]
    scale = torch.tensor([[1.2], [0.9]])[:B]
    box = 200 * scale

    def in_crop(*lead):
        return center.view(B, *[1] * (len(lead) - 1), 2) + (torch.rand(B, *lead[1:], 2, generator=g) - 0.5) * box.view(
            B, *[1] * (len(lead) - 1), 1)

    hm_values = torch.rand(B, 17, N, generator=g)
    hm_values[:, :, N // 2:] *= torch.rand(B, 17, 1, generator=g) > 0.3    # some padding
    batch = {
        "img": torch.randn(B, 3, R, R, generator=g),
        "center": center, "scale": scale, "orig_shape": orig,
        "pose": 0.3 * torch.randn(B, 72, generator=g),
        "betas": torch.randn(B, 10, generator=g),
        "kp2d_gt": torch.cat([in_crop(B, 24), torch.ones(B, 24, 1)], dim=-1),
        "coco_gt": torch.cat([in_crop(B, 17), torch.ones(B, 17, 1)], dim=-1),
        "cond_kp": torch.cat([in_crop(B, 17), torch.rand(B, 17, 1, generator=g)], dim=-1),
        "hm_samples": in_crop(B, 17, N),
        "hm_values": hm_values,
        "hm_max_conf": hm_values.amax(-1),
        "hm_samples_mask_dist": torch.rand(B, 17, N, generator=g) * 5,
        "mask": (torch.rand(B, R, R, generator=g) > 0.5).to(torch.uint8),
        "mask_valid": torch.ones(B, dtype=torch.bool),
    }
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
