"""Conditional flows: invertibility, log-determinants against autograd Jacobians, factorized
context against concatenation, soft clamp, parameter counts, state dict, input validation."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import humr
from humr.flows import ContextMLP, SoftClampAffineCoupling, build_flow, soft_clamp

NAMES = ["nice", "realnvp", "glow"]
DIM, CTX = 12, 7
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def random_flow(name, dtype=torch.float64, factorized=True, seed=0, **kw):
    """A small flow in eval mode with every parameter perturbed away from the identity init."""
    kw = {"num_blocks": 3, "hidden_features": 32, **kw}
    flow = build_flow(name, DIM, CTX, factorized=factorized, **kw).to(dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return flow


def inputs(dtype, batch=3, samples=5):
    return (torch.randn(batch, samples, DIM, dtype=dtype), torch.randn(batch, CTX, dtype=dtype))


def test_registered():
    assert set(NAMES) <= set(humr.FLOWS.names())
    assert isinstance(build_flow("nice", 4, 2, num_blocks=1, hidden_features=8),
                      humr.FLOWS.get("nice"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_inversion_x_z_x(name, dtype):
    flow = random_flow(name, dtype)
    x, c = inputs(dtype)
    flat = x.reshape(-1, DIM)
    z, logdet = flow.transform(flat, c)
    back, logdet_inv = flow.transform.inverse(z, c)
    assert (z - flat).abs().max() > 0.1  # far from the identity, so the check is not vacuous
    assert (back - flat).abs().max() < TOL[dtype]
    assert (logdet + logdet_inv).abs().max() < TOL[dtype]


@pytest.mark.parametrize("name", NAMES)
def test_logdet_equals_autograd_jacobian(name):
    flow = random_flow(name)
    x, c = inputs(torch.float64, batch=2, samples=2)
    for b in range(2):
        for s in range(2):
            point, ctx = x[b, s], c[b:b + 1]
            z, logdet = flow.transform(point[None], ctx)
            jac = jacobian(lambda v, ctx=ctx: flow.transform(v[None], ctx)[0][0], point)
            assert jac.shape == (DIM, DIM)
            assert torch.allclose(logdet[0], torch.linalg.slogdet(jac)[1], atol=1e-10)
            jac_inv = jacobian(lambda v, ctx=ctx: flow.transform.inverse(v[None], ctx)[0][0], z[0])
            _, logdet_inv = flow.transform.inverse(z, ctx)
            assert torch.allclose(logdet_inv[0], torch.linalg.slogdet(jac_inv)[1], atol=1e-10)
    if name != "nice":
        assert logdet.abs().max() > 0.1  # a non-trivial Jacobian was compared


def test_nice_logdet_exactly_zero():
    flow = random_flow("nice")
    x, c = inputs(torch.float64)
    z, logdet = flow.transform(x.reshape(-1, DIM), c)
    _, logdet_inv = flow.transform.inverse(z, c)
    assert torch.equal(logdet, torch.zeros_like(logdet))
    assert torch.equal(logdet_inv, torch.zeros_like(logdet_inv))
    normal = torch.distributions.Normal(0.0, 1.0)
    ref = normal.log_prob(z).sum(-1).view(3, 5)
    assert torch.allclose(flow.log_prob(x, c), ref, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_sample_log_prob_equals_log_prob(name, dtype):
    flow = random_flow(name, dtype)
    c = torch.randn(4, CTX, dtype=dtype)
    x, log_prob, z = flow.sample(c, 6)
    assert x.shape == (4, 6, DIM) and z.shape == (4, 6, DIM) and log_prob.shape == (4, 6)
    assert x.dtype == dtype and log_prob.dtype == dtype
    assert torch.allclose(log_prob, flow.log_prob(x, c), atol=TOL[dtype] * 10, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_samples_match_per_image_per_sample_loop(name):
    """Brute force: every (image, sample) pair evaluated alone gives the batched result."""
    flow = random_flow(name)
    x, c = inputs(torch.float64, batch=3, samples=4)
    z = torch.randn(3, 4, DIM, dtype=torch.float64)
    z[:, 0] = 0.0  # the mode
    xs, log_prob, z_out = flow.sample(c, 4, z=z)
    assert z_out is z
    lp = flow.log_prob(x, c)
    for b in range(3):
        for s in range(4):
            x1, lp1, _ = flow.sample(c[b:b + 1], 1, z=z[b:b + 1, s:s + 1])
            assert torch.allclose(x1[0, 0], xs[b, s], atol=1e-12)
            assert torch.allclose(lp1[0, 0], log_prob[b, s], atol=1e-12)
            assert torch.allclose(flow.log_prob(x[b:b + 1, s:s + 1], c[b:b + 1])[0, 0], lp[b, s],
                                  atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_factorized_equals_concatenated(name):
    fact = random_flow(name, factorized=True)
    concat = build_flow(name, DIM, CTX, num_blocks=3, hidden_features=32,
                        factorized=False).double().eval()
    concat.load_state_dict(fact.state_dict())
    x, c = inputs(torch.float64)
    z = torch.randn_like(x)
    out_f, out_c = fact.sample(c, 5, z=z), concat.sample(c, 5, z=z)
    for a, b in zip(out_f, out_c):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)
    lp_f, lp_c = fact.log_prob(x, c), concat.log_prob(x, c)
    assert torch.allclose(lp_f, lp_c, atol=1e-12, rtol=0)
    lp_f.sum().backward()
    lp_c.sum().backward()
    for (key, p_f), p_c in zip(fact.named_parameters(), concat.parameters()):
        assert torch.allclose(p_f.grad, p_c.grad, atol=1e-10), key


def test_context_mlp_factorized_equals_concatenated_float32():
    net = ContextMLP(5, 6, context_features=9, hidden_features=16, zero_init=False)
    x, c = torch.randn(12, 5), torch.randn(3, 9)
    ref = net.first(torch.cat([x, c.repeat_interleave(4, 0)], 1))
    ref = net.rest(ref)
    assert torch.allclose(net(x, c), ref, atol=1e-5)
    with pytest.raises(ValueError, match="multiple of the context batch"):
        net(torch.randn(10, 5), c)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_context(name):
    flow = random_flow(name, num_blocks=2, hidden_features=8)
    x, c = inputs(torch.float64, batch=2, samples=3)
    z = torch.randn_like(x)
    c.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda ctx: flow.log_prob(x, ctx), (c,))
    assert torch.autograd.gradcheck(lambda ctx: flow.sample(ctx, 3, z=z)[:2], (c,))
    flow.sample(c, 3, z=z)[0].sum().backward()
    assert c.grad.abs().min() > 0


@pytest.mark.parametrize("form", ["freia", "atan_scaled"])
def test_soft_clamp_bounds_every_log_scale(form):
    alpha = 2.0
    s = torch.tensor([-1e30, -1e6, -3.0, 0.0, 1e-4, 3.0, 1e6, 1e30], dtype=torch.float64)
    clamped = soft_clamp(s, alpha, form)
    assert (clamped.abs() <= alpha).all() and clamped[-1] > 0.998 * alpha
    if form == "freia":   # FrEIA 0.2: clamp * 0.636 * atan(s)
        assert torch.allclose(clamped[4], s[4] * alpha * 0.636, rtol=1e-7)
        assert torch.allclose(clamped[5], torch.tensor(alpha * 0.636 * math.atan(3.0), dtype=s.dtype))
    else:
        assert torch.allclose(clamped[4], s[4] * 2 / math.pi, rtol=1e-7)  # slope 2/pi at zero
        assert torch.allclose(clamped[5], torch.tensor(4 / math.pi * math.atan(1.5), dtype=s.dtype))
    assert torch.equal(soft_clamp(-s, alpha, form), -clamped)
    with pytest.raises(ValueError, match="clamp must be one of freia, atan_scaled"):
        soft_clamp(s, alpha, "tanh")

    flow = random_flow("realnvp", alpha=alpha, clamp=form)
    with torch.no_grad():  # huge subnet outputs
        for module in flow.modules():
            if isinstance(module, ContextMLP):
                module.rest[-1].weight.mul_(1e6)
                module.rest[-1].bias.normal_(0.0, 1e6)
    x, c = inputs(torch.float64)
    h = x.reshape(-1, DIM)
    seen = 0
    for layer in flow.transform._transforms:
        if isinstance(layer, SoftClampAffineCoupling):
            params = layer.transform_net(h[:, layer.identity_features], c)
            scale, _ = layer._scale_and_shift(params)
            log_scale = scale.log()
            assert log_scale.abs().max() <= alpha
            assert log_scale.abs().max() > 0.99 * alpha  # the raw outputs really were huge
            assert layer.clamp == form
            _, logdet = layer(h, c)
            assert logdet.abs().max() <= alpha * layer.num_transform_features
            seen += 1
        h, _ = layer(h, c)
    assert seen == 6


def _subnet_params(d_in, d_out, ctx, hidden):
    return (d_in + ctx) * hidden + hidden + hidden * hidden + hidden + hidden * d_out + d_out


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_paper_configuration(name):
    dim, ctx, hidden, blocks, half = 132, 979, 1024, 8, 66
    flow = build_flow(name, dim, ctx)
    count = sum(p.numel() for p in flow.parameters())
    if name == "realnvp":  # 8 blocks x 2 couplings, subnet outputs shift + log-scale
        expected = blocks * 2 * _subnet_params(half, 2 * half, ctx, hidden)
    elif name == "nice":  # additive: shift only
        expected = blocks * 2 * _subnet_params(half, half, ctx, hidden)
    else:  # ActNorm (2D) + LU (D(D-1) off-diagonal + D diagonal + D bias) + one coupling
        expected = blocks * (2 * dim + dim * (dim - 1) + 2 * dim
                             + _subnet_params(half, 2 * half, ctx, hidden))
    print(f"{name} (D={dim}, C={ctx}): {count:,} parameters")
    assert count == expected


def test_realnvp_starts_at_identity_up_to_permutation():
    flow = build_flow("realnvp", DIM, CTX, num_blocks=2, hidden_features=16).double()
    x, c = inputs(torch.float64)
    z, logdet = flow.transform(x.reshape(-1, DIM), c)
    assert torch.equal(logdet, torch.zeros_like(logdet))
    assert torch.equal(z.sort(-1).values, x.reshape(-1, DIM).sort(-1).values)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)
    assert torch.allclose(flow.log_prob(x, c), ref, atol=1e-12)


def test_permutations_saved_and_restored():
    a = build_flow("realnvp", DIM, CTX, num_blocks=3, hidden_features=8, seed=0)
    b = build_flow("realnvp", DIM, CTX, num_blocks=3, hidden_features=8, seed=1)
    keys = [k for k in a.state_dict() if k.endswith("_permutation")]
    assert len(keys) == 2  # between 3 blocks
    assert any(not torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in keys)
    again = build_flow("realnvp", DIM, CTX, num_blocks=3, hidden_features=8, seed=0)
    assert all(torch.equal(a.state_dict()[k], again.state_dict()[k]) for k in keys)  # seeded
    b.load_state_dict(a.state_dict())
    for k in keys:
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
        perm = b.state_dict()[k]
        assert torch.equal(perm.sort().values, torch.arange(DIM))


def test_glow_actnorm_data_dependent_init():
    flow = build_flow("glow", DIM, CTX, num_blocks=1, hidden_features=8).double()
    x = 3.0 + 2.0 * torch.randn(4, 50, DIM, dtype=torch.float64)
    actnorm = flow.transform._transforms[0]
    assert not actnorm.initialized
    flow.log_prob(x, torch.randn(4, CTX, dtype=torch.float64))  # training mode: initialises
    assert actnorm.initialized
    out, _ = actnorm(x.reshape(-1, DIM))
    assert torch.allclose(out.mean(0), torch.zeros(DIM, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(out.std(0), torch.ones(DIM, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda f, x, c: f.log_prob(x, c[:, :-1]), r"context must have shape \(B, 7\)"),
    (lambda f, x, c: f.log_prob(x, c[0]), r"context must have shape \(B, 7\)"),
    (lambda f, x, c: f.log_prob(x, c[:0]), "at least one row"),
    (lambda f, x, c: f.log_prob(x, c.fill_(float("nan"))), "context .* NaN"),
    (lambda f, x, c: f.log_prob(x[:2], c), r"x must have shape \(B=3, S>=1, 12\)"),
    (lambda f, x, c: f.log_prob(x[..., :-1], c), r"x must have shape \(B=3, S>=1, 12\)"),
    (lambda f, x, c: f.log_prob(x[0], c), r"x must have shape"),
    (lambda f, x, c: f.log_prob(x.index_fill(1, torch.tensor([1]), float("nan")), c), "x .* NaN"),
    (lambda f, x, c: f.log_prob(x.float(), c), "x is torch.float32 on cpu but the flow is torch.float64"),
    (lambda f, x, c: f.log_prob(x.float(), c.float()), "flow is torch.float64"),
    (lambda f, x, c: f.sample(c, 0), "num_samples must be a positive int"),
    (lambda f, x, c: f.sample(c, 4, z=x), "z has 5 samples per row, num_samples=4"),
    (lambda f, x, c: f.sample(c, 5, z=x[1:]), r"z must have shape \(B=3"),
    (lambda f, x, c: f.sample(c, 5, z=x * float("inf")), "z .* NaN or inf"),
])
def test_invalid_input_raises(call, match):
    flow = random_flow("realnvp", num_blocks=1, hidden_features=8)
    flow.validate_args = True            # NaN / inf checks are opt-in (host synchronisations)
    x, c = inputs(torch.float64)
    with pytest.raises(ValueError, match=match):
        call(flow, x, c)


def test_dropout_in_subnets_only_in_training():
    flow = random_flow("realnvp", dropout=0.5, num_blocks=1)
    rates = [m.p for m in flow.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.5] * 4  # 2 couplings x 2 hidden layers
    c, z = torch.randn(2, CTX, dtype=torch.float64), torch.randn(2, 3, DIM, dtype=torch.float64)
    assert torch.equal(flow.sample(c, 3, z=z)[0], flow.sample(c, 3, z=z)[0])  # eval: no dropout
    flow.train()
    assert not torch.equal(flow.sample(c, 3, z=z)[0], flow.sample(c, 3, z=z)[0])


def test_generator_makes_sampling_repeatable():
    flow = random_flow("nice", num_blocks=1)
    c = torch.randn(2, CTX, dtype=torch.float64)
    draw = [flow.sample(c, 4, generator=torch.Generator().manual_seed(3))[0] for _ in range(2)]
    assert torch.equal(draw[0], draw[1])


def test_invalid_construction():
    with pytest.raises(ValueError, match="dim >= 2"):
        build_flow("nice", 1, CTX)
    with pytest.raises(ValueError, match="num_blocks"):
        build_flow("glow", DIM, CTX, num_blocks=0)


def test_autocast_accepts_lower_precision_context():
    flow = random_flow("realnvp", dtype=torch.float32, num_blocks=1)
    x, c = inputs(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = flow.log_prob(x, c.bfloat16())
        xs, _, z = flow.sample(c.bfloat16(), 2)
    assert lp.shape == (3, 5) and z.dtype == torch.float32 and xs.shape == (3, 2, DIM)
    assert torch.allclose(lp.float(), flow.log_prob(x, c), atol=0.5, rtol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    flow = random_flow(name)
    x, c = inputs(torch.float64)
    z = torch.randn_like(x)
    ref = flow.sample(c, 5, z=z)[0]
    gpu = flow.cuda()
    out = gpu.sample(c.cuda(), 5, z=z.cuda())[0]
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), ref, atol=1e-9)
    assert gpu.sample(c.cuda(), 2)[0].device.type == "cuda"


@pytest.mark.parametrize("kind", ["affine", "additive", "soft_clamp"])
@pytest.mark.parametrize("mask", [[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0, 1]])
def test_half_split_couplings_equal_nflows_index_path(kind, mask):
    """Slicing contiguous halves gives nflows' index-based split (outputs, log-dets,
    gradients) in both directions, to float32 rounding: the subnet's product reads a strided
    view instead of a gathered copy, which BLAS may sum in another order (MKL on AMD EPYC
    does); a non-contiguous mask takes nflows' own path."""
    from nflows.transforms import AdditiveCouplingTransform, AffineCouplingTransform

    from humr.flows.couplings import HalfAdditiveCoupling, HalfAffineCoupling
    from humr.flows.subnet import subnet_factory

    make = subnet_factory(3, 8, factorized=True)
    mask = torch.tensor(mask)
    torch.manual_seed(0)
    ours = {"affine": lambda: HalfAffineCoupling(mask, make),
            "additive": lambda: HalfAdditiveCoupling(mask, make),
            "soft_clamp": lambda: SoftClampAffineCoupling(mask, make)}[kind]()
    base = {"affine": AffineCouplingTransform, "additive": AdditiveCouplingTransform,
            "soft_clamp": AffineCouplingTransform}[kind]
    ref = base(mask, make)
    if kind == "soft_clamp":      # nflows' split with humr's clamped scale: the reference path
        ref = SoftClampAffineCoupling(mask, make)
        ref._halves = None
    for p in ours.transform_net.parameters():
        torch.nn.init.normal_(p, std=0.3)                     # not the identity at init
    ref.load_state_dict(ours.state_dict())
    assert (ours._halves is None) == (mask.tolist() == [0, 1, 0, 1, 1, 0, 1])
    x, c = torch.randn(10, 7), torch.randn(2, 3)
    for direction in ("forward", "inverse"):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        (ya, la), (yb, lb) = getattr(ours, direction)(xa, c), getattr(ref, direction)(xb, c)
        torch.testing.assert_close(ya, yb, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(la, lb, rtol=1e-6, atol=1e-6)
        (ya.square().sum() + la.sum()).backward()
        (yb.square().sum() + lb.sum()).backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-6, atol=1e-6)
