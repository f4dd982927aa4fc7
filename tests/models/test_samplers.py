"""Samplers against a toy denoiser with a known exact answer.

Data x0 ~ N(mu, s^2) per dimension. Then x_t ~ N(sqrt(a) mu, a s^2 + 1 - a) and the optimal
noise prediction is E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a). The
probability-flow ODE is the monotone map between these Gaussians, so it keeps the standardised
value z = (x_t - sqrt(a) mu) / sqrt(a s^2 + 1 - a): the exact deterministic sample is known.
"""

import math

import pytest
import torch

from maa.models.diffusion import (
    SAMPLERS,
    DiffusionConfig,
    alphas_cumprod,
    ddim,
    dpmpp_2m,
    eps_from_v,
    guided,
    plms,
    q_sample,
    sdedit_timesteps,
    timesteps,
    v_target,
    x0_from_eps,
)

AC = alphas_cumprod(DiffusionConfig())
MU = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
S = torch.tensor([0.3, 1.5, 0.05, 1.0], dtype=torch.float64)


def toy_eps(x, t):
    a = float(AC[t])
    return math.sqrt(1 - a) * (x - math.sqrt(a) * MU) / (a * S**2 + 1 - a)


@pytest.fixture(scope="module")
def toy():
    x_T = torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a_T, a_0 = float(AC[-1]), float(AC[0])
    z = (x_T - math.sqrt(a_T) * MU) / torch.sqrt(a_T * S**2 + 1 - a_T)
    x_0 = math.sqrt(a_0) * MU + torch.sqrt(a_0 * S**2 + 1 - a_0) * z  # exact state at the last timestep
    exact = (x_0 - math.sqrt(1 - a_0) * toy_eps(x_0, 0)) / math.sqrt(a_0)  # and its clean prediction
    return x_T, exact


def test_schedule_is_the_papers():
    betas = 1 - AC / torch.cat([torch.ones(1, dtype=AC.dtype), AC[:-1]])
    assert len(AC) == 1000
    assert betas[0].item() == pytest.approx(0.00085) and betas[-1].item() == pytest.approx(0.012)
    assert torch.allclose(betas.sqrt().diff(), betas.sqrt().diff()[0].expand(999), atol=1e-9)  # linear in sqrt


def test_ddim_eta0_is_deterministic_and_eta1_uses_the_generator(toy):
    x_T, _ = toy
    ts = timesteps(20, AC)
    a = ddim(toy_eps, x_T.clone(), ts, AC)
    assert torch.equal(a, ddim(toy_eps, x_T.clone(), ts, AC))
    g = lambda s: torch.Generator().manual_seed(s)
    b1 = ddim(toy_eps, x_T.clone(), ts, AC, eta=1.0, generator=g(1))
    assert torch.equal(b1, ddim(toy_eps, x_T.clone(), ts, AC, eta=1.0, generator=g(1)))
    assert not torch.allclose(b1, ddim(toy_eps, x_T.clone(), ts, AC, eta=1.0, generator=g(2)))
    assert not torch.allclose(a, b1)


def test_many_step_ddim_converges_to_the_exact_answer(toy):
    x_T, exact = toy
    err = lambda n: (ddim(toy_eps, x_T.clone(), timesteps(n, AC), AC) - exact).abs().max().item()
    e1000, e100 = err(1000), err(100)
    assert e1000 < 0.01 and e1000 < e100 / 5  # first order: 10x the steps, ~10x less error


def test_plms_and_dpmpp_reach_the_same_sample_in_few_steps(toy):
    x_T, exact = toy
    ref = ddim(toy_eps, x_T.clone(), timesteps(1000, AC), AC)
    p = plms(toy_eps, x_T.clone(), timesteps(25, AC), AC)
    d = dpmpp_2m(toy_eps, x_T.clone(), timesteps(25, AC, "logsnr"), AC)
    d_few = ddim(toy_eps, x_T.clone(), timesteps(25, AC), AC)
    for out in (p, d):
        assert (out - exact).abs().max() < 0.04
        assert (out - ref).abs().max() < 0.04
    # both beat DDIM at the same number of steps by a wide margin
    assert (p - exact).abs().max() * 3 < (d_few - exact).abs().max()
    assert (d - exact).abs().max() * 3 < (d_few - exact).abs().max()
    # and DPM-Solver++ is 2nd order: 4x the steps, >= 8x less error
    d100 = dpmpp_2m(toy_eps, x_T.clone(), timesteps(100, AC, "logsnr"), AC)
    assert (d100 - exact).abs().max() * 8 < (d - exact).abs().max()


def test_samplers_registry_and_callbacks(toy):
    x_T, _ = toy
    for name, fn in SAMPLERS.items():
        seen = []
        fn(toy_eps, x_T.clone(), timesteps(5, AC), AC, callback=lambda i, x: seen.append(i))
        assert seen == [0, 1, 2, 3, 4], name


def test_timesteps():
    assert timesteps(5, AC) == [999, 749, 500, 250, 0]
    lt = timesteps(25, AC, "logsnr")
    assert lt[0] == 999 and lt[-1] == 0 and lt == sorted(lt, reverse=True)
    assert len(timesteps(2000, AC)) == 1000
    assert sdedit_timesteps(timesteps(10, AC), 0.3) == timesteps(10, AC)[7:]
    assert sdedit_timesteps(timesteps(10, AC), 0.0) == []


def test_guidance():
    calls = []

    def den(x, t, cond):
        calls.append(x.shape[0])
        tokens, mask = cond
        return x * 0 + tokens.sum(dim=(1, 2)).view(-1, 1)  # "prediction" = the condition's value

    x = torch.zeros(2, 3)
    cond = (torch.full((2, 4, 1), 1.0), torch.ones(2, 4, dtype=torch.bool))
    uncond = (torch.full((2, 2, 1), 0.5), torch.ones(2, 2, dtype=torch.bool))
    assert torch.equal(guided(den, cond, uncond, 1.0)(x, 5), den(x, 5, cond))  # guidance 1 = conditional
    calls.clear()
    out = guided(den, cond, uncond, 3.0)(x, 5)
    assert calls == [4]  # one batched call for both branches
    assert torch.allclose(out, torch.full((2, 3), 1.0 + 3.0 * (4.0 - 1.0)))  # u + s (c - u) with c=4, u=1


def test_v_and_eps_conversions_agree():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 5, 6, generator=g), torch.randn(3, 4, 5, 6, generator=g)
    t = torch.tensor([0, 400, 999])
    x_t = q_sample(x0, t, noise, AC)
    a = AC[t]
    assert torch.allclose(eps_from_v(x_t, v_target(x0, noise, a), a), noise, atol=1e-5)
    assert torch.allclose(x0_from_eps(x_t, noise, a), x0, atol=1e-3)
