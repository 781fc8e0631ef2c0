"""The official release's checkpoint, built for tests: the FrEIA flow graph of the release
(train/models/freia_nf.py) and a Lightning checkpoint with the official keys (random weights)."""
from __future__ import annotations

import torch
from torch import nn

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


WIDTHS = (4, 8, 16, 32)          # HRNet-W48's key layout with reduced widths
CTX = sum(WIDTHS) + 256 + 3      # [image | pose 256 | bbox 3]
HEAD_HIDDEN = 64


def official_checkpoint(path, body_state, seed=0):
    """An official-format Lightning checkpoint: random weights under the official keys, yacs
    hyper-parameters, the SMPL-X layer's buffers ``body_state``; returns the raw modules used
    as references."""
    from yacs.config import CfgNode

    from humr.official.components import OfficialHRNet

    gen = torch.Generator().manual_seed(seed)
    backbone = OfficialHRNet(widths=WIDTHS)
    joints_enc = nn.Sequential(nn.Linear(51, 512), nn.ReLU(), nn.Linear(512, 256))
    head = {"fc1.weight": (HEAD_HIDDEN, CTX + 14), "fc1.bias": (HEAD_HIDDEN,),
            "fc2.weight": (HEAD_HIDDEN, HEAD_HIDDEN), "fc2.bias": (HEAD_HIDDEN,),
            "decshape.weight": (11, HEAD_HIDDEN), "decshape.bias": (11,),
            "deccam.weight": (3, HEAD_HIDDEN), "deccam.bias": (3,),
            "init_shape": (1, 11), "init_cam": (1, 3)}
    head = {k: 0.05 * torch.randn(s, generator=gen) for k, s in head.items()}
    head["init_cam"] += torch.tensor([[0.9, 0.0, 0.0]])
    with torch.no_grad():
        for p in [*backbone.parameters(), *joints_enc.parameters()]:
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in backbone.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
    flow = freia_flow(dim=132, context=CTX, hidden=H, blocks=2, clamp=CLAMP, seed=seed)
    state = {f"model.backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({"model.backbone.final_layer.weight": torch.zeros(24, WIDTHS[0], 1, 1),
                  "model.backbone.final_layer.bias": torch.zeros(24)})
    state.update({f"model.joints_enc.{k}": v for k, v in joints_enc.state_dict().items()})
    state.update({f"model.head.{k}": v for k, v in head.items()})
    state.update({f"model.flow.{k}": v for k, v in flow.state_dict().items()})
    state.update({f"model.smpl.smplx.{k}": v for k, v in body_state.items()})
    state.update({"smplx.shapedirs": torch.zeros(10, 3, 11), "smpl_neutral.J_regressor_extra": torch.zeros(9, 10),
                  "J_regressor": torch.zeros(17, 10)})
    hp = CfgNode()
    hp.FREIA_NF = CfgNode()
    hp.FREIA_NF.CLAMP = CLAMP
    hp.FREIA_NF.N_BLOCKS = 2
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": {"hparams": hp}}, path)
    return {"backbone": backbone.eval(), "joints_enc": joints_enc, "head": head, "flow": flow, "state": state}
