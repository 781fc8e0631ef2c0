"""The official release's checkpoint converted to humr: the FrEIA flow built with FrEIA itself
(random weights) is the reference for densities, samples and rotations."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

FrEIA = pytest.importorskip("FrEIA")

D, C, H, N_BLOCKS, CLAMP = 132, 40, 32, 3, 3.0


def freia_flow(dim=D, context=C, hidden=H, blocks=N_BLOCKS, clamp=CLAMP, seed=0, scale=0.05):
    """The official flow's graph (train/models/freia_nf.py) with random weights, float32, eval."""
    from FrEIA.framework import (
        ConditionNode,
        InputNode,
        Node,
        OutputNode,
        ReversibleGraphNet,
    )
    from FrEIA.modules import GLOWCouplingBlock, PermuteRandom

    def subnet(n_in, n_out):
        return nn.Sequential(nn.Linear(n_in, hidden), nn.Dropout(0.0), nn.ReLU(),
                             nn.Linear(hidden, hidden), nn.Dropout(0.0), nn.ReLU(),
                             nn.Linear(hidden, n_out))

    nodes = [InputNode(dim, name="input")]
    cond = ConditionNode(context, name="condition")
    for k in range(blocks):
        nodes.append(Node(nodes[-1], GLOWCouplingBlock, {"subnet_constructor": subnet, "clamp": clamp},
                          conditions=cond, name=f"coupling_{k}"))
        nodes.append(Node(nodes[-1], PermuteRandom, {"seed": k}, name=f"permute_{k}"))
    nodes.append(OutputNode(nodes[-1], name="output"))
    net = ReversibleGraphNet(nodes + [cond], verbose=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.dtype.is_floating_point:
                p.copy_(scale * torch.randn(p.shape, generator=gen))
    return net.eval()


def freia_log_density(net, x, context):
    """log N(f(x); 0, I) + log|det df/dx| of the FrEIA graph (x -> z direction)."""
    z, log_jac = net(x, context)
    return -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + log_jac


def test_freia_flow_maps_onto_realnvp():
    from humr.official import flow_from_freia_state

    net = freia_flow()
    flow = flow_from_freia_state(net.state_dict(), CLAMP).eval()
    torch.manual_seed(1)
    B, S = 3, 4
    context = torch.randn(B, C)
    x = torch.randn(B, S, D)
    with torch.no_grad():
        ref = freia_log_density(net, x.reshape(B * S, D), context.repeat_interleave(S, 0)).view(B, S)
        got = flow.log_prob(x, context)
        assert (ref - got).abs().max() < 1e-4 and ref.std() > 1   # not a constant
        z = torch.randn(B, S, D)
        z[:, 0] = 0
        ref_x, ref_jac = net(z.reshape(B * S, D), context.repeat_interleave(S, 0), rev=True)
        got_x, got_logp, _ = flow.sample(context, S, z=z)
        assert (ref_x.view(B, S, D) - got_x).abs().max() < 1e-4
        ref_logp = -0.5 * (z ** 2).sum(-1) - 0.5 * D * math.log(2 * math.pi) - ref_jac.view(B, S)
        assert (ref_logp - got_logp).abs().max() < 1e-4


def test_flow_key_and_shape_errors():
    from humr.official import OfficialKeyError, flow_from_freia_state

    state = freia_flow(dim=12, context=5, hidden=8, blocks=2).state_dict()
    with pytest.raises(OfficialKeyError, match="unexpected flow key 'module_list.0.extra'"):
        flow_from_freia_state({**state, "module_list.0.extra": torch.zeros(1)}, CLAMP)
    bad = dict(state)
    bad["module_list.2.subnet1.3.weight"] = torch.zeros(8, 9)
    with pytest.raises(OfficialKeyError, match=r"shape \(8, 9\), expected \(8, 8\)"):
        flow_from_freia_state(bad, CLAMP)
    bad = {k: v for k, v in state.items() if k != "module_list.2.subnet2.6.bias"}
    with pytest.raises(OfficialKeyError, match="lacks key 'module_list.2.subnet2.6.bias'"):
        flow_from_freia_state(bad, CLAMP)
    bad = dict(state)
    bad["module_list.1.perm"] = torch.zeros(12, dtype=torch.long)
    with pytest.raises(OfficialKeyError, match="not a permutation"):
        flow_from_freia_state(bad, CLAMP)
