"""Conversion of the official release's checkpoint (twehrbein/humr, ``humr_best.ckpt``: FrEIA
flow, HRNet-W48 backbone, shape / camera head, joints encoder) to humr modules.

:mod:`humr.official.flow` maps the FrEIA flow onto :class:`humr.flows.realnvp.RealNVPFlow`.
"""
from humr.official.flow import OfficialKeyError, flow_from_freia_state, freia_flow_sizes

__all__ = ["OfficialKeyError", "flow_from_freia_state", "freia_flow_sizes"]
