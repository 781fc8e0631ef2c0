"""Conversion of the official release's checkpoint (twehrbein/humr, ``humr_best.ckpt``: FrEIA
flow, HRNet-W48 backbone, shape / camera head, joints encoder) to humr modules.

:mod:`humr.official.flow` maps the FrEIA flow onto :class:`humr.flows.realnvp.RealNVPFlow`,
:mod:`humr.official.components` holds the official conventions as registered components
(``hrnet_w48_official``, ``pose2d_official``, the HMR head) and
:mod:`humr.official.checkpoint` reads the checkpoint (:func:`load_official`,
:func:`convert_official`); :mod:`humr.official.evaluation` evaluates the official model as the
release does (SMPL-X meshes mapped to SMPL, gendered SMPL ground truth; ``humr eval``).
Importing this package does not import smplx or lightning.
"""
from humr.official.flow import OfficialKeyError, flow_from_freia_state, freia_flow_sizes

__all__ = ["OfficialKeyError", "flow_from_freia_state", "freia_flow_sizes"]
