"""The official release's conventions as humr components (registered names ``*_official``).

Where the official model (twehrbein/humr, train/models/humr_model.py) differs from humr's
defaults, these components reproduce it exactly:

- ``hrnet_w48_official`` (backbone): HRNet-W48 whose branches 1-3 are brought to 1/32 by
  ``downsample_stage_1/2/3`` (3, 2, 1 stride-2 3x3 conv-BN-ReLU) before the 720-channel
  concatenation and the global average (humr's ``hrnet_w48`` pools each branch directly).
- ``pose2d_official`` (condition): the detector keypoints truncated to integer pixels of a
  224 crop, ``u = 2 (int(224 (x - cx) / b + 112) + 1) / 224 - 1`` (``j2d_processing`` of the
  official dataset code), then the same 51-512-256 MLP.
- :class:`OfficialShapeCamHead`: HMR's iterative regressor (3 iterations from the mean shape
  and camera; fc1 - dropout - fc2 - dropout, no activation) for 11 betas and [s, tx, ty].
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from humr.conditions.hrnet import BN_MOMENTUM, HRNetW48
from humr.conditions.keypoints import Pose2DCondition
from humr.registry import BACKBONES, CONDITIONS

__all__ = ["OfficialHRNet", "OfficialPose2D", "OfficialShapeCamHead"]


def _downsample(channels: int, steps: int) -> nn.Sequential:
    layers = []
    for _ in range(steps):
        layers += [nn.Conv2d(channels, channels, 3, 2, 1, bias=False),
                   nn.BatchNorm2d(channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@BACKBONES.register("hrnet_w48_official")
class OfficialHRNet(HRNetW48):
    """HRNet-W48 with the official strided-convolution downsampling before pooling (720-d).

    Args: as :class:`humr.conditions.hrnet.HRNetW48` (``weights``, ``frozen``); ``widths``
    overrides the branch widths (tests use reduced widths with the real key layout).
    Input ``img`` (B, 3, 224, 224) ImageNet-normalised; output (B, sum(widths)). Its weights
    come from the official checkpoint (:func:`humr.official.checkpoint.load_official`).
    """

    warn_if_random = False

    def __init__(self, weights: str | Path | None = None, frozen: bool = True,
                 widths: tuple[int, ...] | None = None) -> None:
        if widths is not None:
            self.widths = tuple(int(w) for w in widths)
        super().__init__(weights=None, frozen=frozen)
        w = self.widths
        self.downsample_stage_1 = _downsample(w[0], 3)
        self.downsample_stage_2 = _downsample(w[1], 2)
        self.downsample_stage_3 = _downsample(w[2], 1)
        if weights is not None:
            self.load_weights(weights)
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def load_weights(self, path: str | Path) -> None:
        """Backbone weights from the official checkpoint (``model.backbone.*``), a file of
        ``humr convert-official`` (``conditions.image.backbone.*``) or a plain state dict."""
        from humr.official.checkpoint import read_checkpoint

        try:
            state = read_checkpoint(path)["state_dict"]
        except ValueError:              # no 'state_dict': a plain HRNet state dict
            super().load_weights(path)
            return
        for prefix in ("model.backbone.", "conditions.image.backbone."):
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if sub:
                break
        missing = [k for k in self.state_dict() if k not in sub]
        if missing:
            raise KeyError(f"{path} lacks {len(missing)} official HRNet-W48 keys, e.g. {missing[:5]}")
        self.load_state_dict({k: sub[k] for k in self.state_dict()})

    def forward(self, img: Tensor) -> Tensor:
        x0, x1, x2, x3 = self.branches(img)
        x = torch.cat([self.downsample_stage_1(x0), self.downsample_stage_2(x1),
                       self.downsample_stage_3(x2), x3], dim=1)
        return x.mean(dim=(-2, -1))


@CONDITIONS.register("pose2d_official")
class OfficialPose2D(Pose2DCondition):
    """``pose2d`` with the official input: keypoints on integer pixels of a ``img_res`` crop.

    ``cond_kp`` (B, 17, 3) full-image pixels + confidence, ``center`` (B, 2), ``scale`` (B, 1);
    ``u = 2 (trunc(R (x - cx) / b + R / 2) + 1) / R - 1`` with R = ``img_res``, b = 200 scale.
    Arguments otherwise as :class:`humr.conditions.keypoints.Pose2DCondition`.
    """

    def __init__(self, hidden: int = 512, out_dim: int = 256, num_keypoints: int = 17,
                 img_res: int = 224, validate_args: bool = False) -> None:
        super().__init__(hidden, out_dim, num_keypoints, validate_args)
        self.img_res = int(img_res)

    def encode(self, cond_kp: Tensor, center: Tensor, scale: Tensor) -> Tensor:
        """Tensor core: detector pose (B, K, 3), crop centre (B, 2), scale (B, 1) -> (B, out_dim)."""
        dtype = self.mlp[0].weight.dtype
        kp, center = cond_kp.to(dtype), center.to(dtype)
        box = 200.0 * scale.to(dtype)[:, None]                         # (B, 1, 1)
        R = self.img_res
        px = torch.trunc(R * (kp[..., :2] - center[:, None]) / box + R / 2) + 1   # int() of Python
        crop = 2.0 * px / R - 1.0
        return self.mlp(torch.cat([crop, kp[..., 2:]], dim=-1).flatten(1))


class OfficialShapeCamHead(nn.Module):
    """HMR's iterative shape / camera regressor of the official model (``model.head``).

    ``forward(context (B, C)) -> (betas (B, nb), cam (B, 3))``: starting from the buffers
    ``init_shape`` (1, nb) and ``init_cam`` (1, 3), ``n_iter`` times
    ``h = fc2(drop(fc1([c, shape, cam])))``, ``shape += decshape(h)``, ``cam += deccam(h)``.
    """

    def __init__(self, context_dim: int, num_betas: int = 11, hidden: int = 1024, n_iter: int = 3) -> None:
        super().__init__()
        self.num_betas, self.n_iter = int(num_betas), int(n_iter)
        self.fc1 = nn.Linear(context_dim + num_betas + 3, hidden)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout()
        self.decshape = nn.Linear(hidden, num_betas)
        self.deccam = nn.Linear(hidden, 3)
        self.register_buffer("init_shape", torch.zeros(1, num_betas))
        self.register_buffer("init_cam", torch.tensor([[0.9, 0.0, 0.0]]))

    @property
    def out(self) -> nn.Linear:
        """The last layer (its weight's dtype is the model's dtype, as for humr's head)."""
        return self.deccam

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        B = context.shape[0]
        shape, cam = self.init_shape.expand(B, -1), self.init_cam.expand(B, -1)
        for _ in range(self.n_iter):
            h = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([context, shape, cam], 1)))))
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)
        return shape, cam
