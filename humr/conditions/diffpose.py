"""``diffpose`` conditioner: a DiffPose-style embedding of heatmap samples (paper Table S2)."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from humr.conditions.bbox import validate
from humr.geometry import full_to_crop
from humr.registry import CONDITIONS

__all__ = ["DiffPoseCondition", "sinusoidal_embedding"]


def sinusoidal_embedding(xy: Tensor, freqs: Tensor) -> Tensor:
    r"""Sinusoidal embedding of 2D points: (..., 2) -> (..., 4F) with F = ``len(freqs)``,
    :math:`[\sin(\omega_f x), \cos(\omega_f x), \sin(\omega_f y), \cos(\omega_f y)]_f` (grouped
    per coordinate: sines of x, cosines of x, sines of y, cosines of y).
    """
    angles = xy[..., :, None] * freqs                                     # (..., 2, F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


@CONDITIONS.register("diffpose")
class DiffPoseCondition(nn.Module):
    r"""Embedding of heatmap samples in the manner of DiffPose (Holmquist & Wandt, ICCV 2023).

    For joint k and its samples :math:`s_{ki}` (crop coordinates [-1, 1]) with heatmap values
    :math:`h_{ki}`, the tokens are

    .. math::
        t_{ki} = h_{ki} \, \mathrm{PE}(s_{ki}) + e_k,

    with the sinusoidal embedding :func:`sinusoidal_embedding` (frequencies
    :math:`\pi \cdot m^{f/(F-1)}`, ``m = max_freq``) and a learned joint embedding
    :math:`e_k`. A transformer encoder attends over the tokens of each joint, the outputs are
    averaged per joint (padding excluded) and the K pooled vectors are projected to ``out_dim``.

    Inputs: ``hm_samples`` (B, K, N, 2) full-image pixels and ``hm_values`` (B, K, N) (0 =
    padding), with ``center`` / ``scale`` for the crop. The first ``num_samples`` valid samples
    of each joint are used (the stored samples are i.i.d. draws, so this is a random subset).
    Rule for a joint without any valid sample: it is represented by a single token carrying
    only its joint embedding.

    Args:
        num_samples: samples per joint fed to the encoder (32 of the stored 150).
        d_model: token width (a multiple of 4).
        num_layers: transformer encoder layers.
        num_heads: attention heads.
        out_dim: output size.
        num_keypoints: K (17, COCO).
        max_freq: ratio of the highest to the lowest frequency.
        validate_args: check the batch keys on every call (off by default).

    Example:
        >>> import torch
        >>> cond = DiffPoseCondition()
        >>> batch = {"hm_samples": torch.rand(2, 17, 150, 2) * 200, "hm_values": torch.rand(2, 17, 150),
        ...          "center": torch.full((2, 2), 100.0), "scale": torch.ones(2, 1)}
        >>> cond(batch).shape
        torch.Size([2, 256])
    """

    def __init__(self, num_samples: int = 32, d_model: int = 64, num_layers: int = 1,
                 num_heads: int = 4, out_dim: int = 256, num_keypoints: int = 17,
                 max_freq: float = 64.0, validate_args: bool = False) -> None:
        super().__init__()
        self.validate_args = bool(validate_args)
        if d_model % 4 or num_samples < 1:
            raise ValueError(f"d_model must be a multiple of 4 and num_samples >= 1, got "
                             f"{d_model}, {num_samples}")
        self.num_samples, self.num_keypoints, self.out_dim = int(num_samples), int(num_keypoints), int(out_dim)
        num_freqs = d_model // 4
        freqs = math.pi * max_freq ** (torch.arange(num_freqs) / max(num_freqs - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.joint_embedding = nn.Parameter(0.02 * torch.randn(self.num_keypoints, d_model))
        layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward=2 * d_model,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.proj = nn.Linear(self.num_keypoints * d_model, self.out_dim)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        if self.validate_args:
            K = self.num_keypoints
            validate(batch, {"hm_samples": ("B", K, "N", 2), "hm_values": ("B", K, "N"),
                             "center": ("B", 2), "scale": ("B", 1)})
        return self.encode(batch["hm_samples"], batch["hm_values"], batch["center"], batch["scale"])

    def encode(self, hm_samples: Tensor, hm_values: Tensor, center: Tensor, scale: Tensor) -> Tensor:
        """Tensor core: heatmap samples (B, K, N, 2) full-image pixels, their values (B, K, N)
        (0 = padding), crop centre (B, 2) and scale (B, 1) -> features (B, out_dim)."""
        K = self.num_keypoints
        if hm_samples.shape[1] != K or hm_values.shape != hm_samples.shape[:3]:
            raise ValueError(f"hm_samples must be (B, {K}, N, 2) and hm_values (B, {K}, N), got "
                             f"{tuple(hm_samples.shape)} and {tuple(hm_values.shape)}")
        dtype = self.proj.weight.dtype
        B, _, N, _ = hm_samples.shape
        xy = full_to_crop(hm_samples.to(dtype).reshape(B, K * N, 2), center.to(dtype),
                          200.0 * scale[:, 0].to(dtype)).reshape(B, K, N, 2)
        values = hm_values.to(dtype)
        valid = values > 0
        # first num_samples valid samples of each joint (stable sort keeps the draw order)
        order = torch.argsort((~valid).to(torch.uint8), dim=-1, stable=True)[..., :self.num_samples]
        xy = xy.gather(2, order[..., None].expand(-1, -1, -1, 2))
        values, valid = values.gather(2, order), valid.gather(2, order)
        padding = ~valid
        padding[..., 0] &= valid.any(dim=-1)          # an empty joint keeps one (value 0) token
        tokens = (values[..., None] * sinusoidal_embedding(xy, self.freqs.to(dtype))
                  + self.joint_embedding[:, None])                            # (B, K, n, d)
        B, _, n, d = tokens.shape
        h = self.encoder(tokens.reshape(B * K, n, d), src_key_padding_mask=padding.reshape(B * K, n))
        keep = (~padding).reshape(B * K, n, 1).to(dtype)
        pooled = (h * keep).sum(dim=1) / keep.sum(dim=1)
        return self.proj(pooled.reshape(B, K * d))
