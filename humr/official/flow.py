"""The official flow (a FrEIA 0.2 ``ReversibleGraphNet`` of ``GLOWCouplingBlock`` +
``PermuteRandom``) as humr's :class:`~humr.flows.realnvp.RealNVPFlow`.

Official graph (twehrbein/humr, train/models/freia_nf.py), direction pose x -> noise z, block k:
``x1, x2 = split(x)`` (first half, second half); ``a = subnet2([x2, c])``, ``s, t = a[:n1], a[n1:]``,
``y1 = x1 * exp(0.636 clamp atan(s)) + t``; ``a = subnet1([y1, c])``, ``y2 = x2 * exp(...) + t``;
then ``x = y[:, perm_k]``. Subnets: Linear(0)-Dropout-ReLU-Linear(3)-Dropout-ReLU-Linear(6).

humr's RealNVP with ``clamp="freia"`` and ``layout="freia"`` computes the same function: its
couplings update the first half (nflows mask ``1 - half``, the net of FrEIA's ``subnet2``) then
the second (``subnet1``), and a Permutation with FrEIA's ``perm`` follows each block. The only
re-labelling is the order of the subnets' outputs: FrEIA ``[s, t]``, nflows ``[t, s]``: the rows
of the last layer are swapped.
"""
from __future__ import annotations

import re

import torch
from torch import Tensor

from humr.flows.couplings import SoftClampAffineCoupling
from humr.flows.realnvp import RealNVPFlow

__all__ = ["OfficialKeyError", "flow_from_freia_state", "freia_flow_sizes"]

_KEY = re.compile(r"module_list\.(\d+)\.(subnet[12]\.[036]\.(?:weight|bias)|perm|perm_inv)$")


class OfficialKeyError(KeyError):
    """An official checkpoint holds a key or shape this converter does not map."""

    def __str__(self) -> str:   # KeyError quotes its message; show it plainly
        return str(self.args[0])


def freia_flow_sizes(state: dict[str, Tensor]) -> dict:
    """Sizes of a FrEIA flow state (keys relative to the flow, ``module_list.*``): dim D,
    context C, hidden H and number of blocks. Raises :class:`OfficialKeyError` for other keys."""
    for key in state:
        if not _KEY.match(key):
            raise OfficialKeyError(f"unexpected flow key {key!r}; expected module_list.<i>."
                                   "subnet1/subnet2.{0,3,6}.weight/bias (even i) or "
                                   "module_list.<i>.perm/perm_inv (odd i)")
    indices = sorted({int(_KEY.match(k).group(1)) for k in state})
    if indices != list(range(len(indices))) or len(indices) % 2:
        raise OfficialKeyError(f"flow modules {indices}: expected 0..2n-1 (coupling, permutation) pairs")
    try:
        first = state["module_list.0.subnet1.0.weight"]
        dim = state["module_list.1.perm"].shape[0]
    except KeyError as err:
        raise OfficialKeyError(f"flow lacks key {err.args[0]!r}") from None
    half = dim - dim // 2   # FrEIA: split_len1 = round(0.5 D); D = 6 J is even
    return {"dim": dim, "context_dim": first.shape[1] - half, "hidden": first.shape[0],
            "num_blocks": len(indices) // 2}


def flow_from_freia_state(state: dict[str, Tensor], alpha: float, factorized: bool = True) -> RealNVPFlow:
    """humr's RealNVP with the weights of a FrEIA flow state dict (keys ``module_list.*``).

    Args:
        state: the official flow's tensors (``model.flow.`` prefix removed).
        alpha: FrEIA's ``clamp`` (hyper-parameter FREIA_NF.CLAMP; 3.0 in the official config).
        factorized: see :class:`RealNVPFlow`.

    Every tensor is checked for shape; unknown or missing keys raise :class:`OfficialKeyError`.
    """
    sizes = freia_flow_sizes(state)
    dim, n_blocks = sizes["dim"], sizes["num_blocks"]
    flow = RealNVPFlow(dim, sizes["context_dim"], num_blocks=n_blocks, hidden_features=sizes["hidden"],
                       alpha=alpha, factorized=factorized, clamp="freia", layout="freia")
    layers = flow.transform._transforms
    target: dict[str, Tensor] = {}
    used = set()
    for block in range(n_blocks):
        src = f"module_list.{2 * block}"
        # humr layers 3b, 3b+1: first half (FrEIA subnet2), second half (subnet1); 3b+2: perm
        for offset, subnet in ((0, "subnet2"), (1, "subnet1")):
            coupling = layers[3 * block + offset]
            assert isinstance(coupling, SoftClampAffineCoupling)
            n = coupling.num_transform_features
            net = f"transform._transforms.{3 * block + offset}.transform_net"
            for freia_idx, humr_name in (("0", "first"), ("3", "rest.2"), ("6", "rest.5")):
                for kind in ("weight", "bias"):
                    key = f"{src}.{subnet}.{freia_idx}.{kind}"
                    if key not in state:
                        raise OfficialKeyError(f"flow lacks key {key!r}")
                    value = state[key]
                    used.add(key)
                    if freia_idx == "6":   # FrEIA [s, t] -> nflows [t, s]
                        value = torch.cat([value[n:], value[:n]], 0)
                    target[f"{net}.{humr_name}.{kind}"] = value
        perm_key = f"module_list.{2 * block + 1}.perm"
        if perm_key not in state:
            raise OfficialKeyError(f"flow lacks key {perm_key!r}")
        perm = state[perm_key].long()
        inv = state.get(f"module_list.{2 * block + 1}.perm_inv")
        if sorted(perm.tolist()) != list(range(dim)) or (
                inv is not None and not torch.equal(perm[inv.long()], torch.arange(dim))):
            raise OfficialKeyError(f"{perm_key} is not a permutation of 0..{dim - 1} with its perm_inv")
        used.update({perm_key, f"module_list.{2 * block + 1}.perm_inv"})
        target[f"transform._transforms.{3 * block + 2}._permutation"] = perm
    unused = sorted(set(state) - used)
    if unused:
        raise OfficialKeyError(f"unexpected flow keys {unused[:5]}")
    own = flow.state_dict()
    # nflows' coupling masks (buffers) are fixed by the layout, not by weights
    target.update({k: v for k, v in own.items() if k.endswith(("identity_features", "transform_features"))})
    for key, value in target.items():
        if own[key].shape != value.shape:
            raise OfficialKeyError(f"flow tensor for {key} has shape {tuple(value.shape)}, "
                                   f"expected {tuple(own[key].shape)}")
    missing = sorted(set(own) - set(target))
    if missing:
        raise OfficialKeyError(f"no official tensor for flow parameters {missing[:5]}")
    flow.load_state_dict({k: v.to(own[k].dtype) for k, v in target.items()})
    return flow
