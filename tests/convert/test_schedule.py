"""The official timestep grid and end point as a model-config option (maa.models.diffusion)."""

import math

import pytest
import torch

from maa.core.errors import MaaError
from maa.models.diffusion import (
    SAMPLERS,
    DiffusionConfig,
    alphas_cumprod,
    end_alpha,
    official_timesteps,
    schedule,
    timesteps,
)

AC = alphas_cumprod(DiffusionConfig())


def test_official_grid():
    assert official_timesteps(10, 1000) == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    g = official_timesteps(100, 1000)
    assert len(g) == 100 and g[:2] == [991, 981] and g[-1] == 1
    assert official_timesteps(3, 1000) == [667, 334, 1]  # 1000 would be past the schedule
    assert official_timesteps(7, 1000)[0] == 995 and len(official_timesteps(7, 1000)) == 8
    for sampler in SAMPLERS:
        assert schedule(10, AC, sampler, "official") == official_timesteps(10, 1000)
    assert schedule(25, AC, "dpm++") == timesteps(25, AC, "logsnr")  # maa's models keep theirs
    assert schedule(25, AC, "ddim") == timesteps(25, AC)
    assert end_alpha(AC) == 1.0 and end_alpha(AC, "official") == float(AC[0]) == pytest.approx(0.99915, abs=1e-5)
    with pytest.raises(MaaError, match="timestep_grid 'leading'"):
        schedule(10, AC, "ddim", "leading")


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_last_step_goes_to_final_alpha(sampler):
    """With eps fixed, one step from t to the end point is sqrt(a_end) x0 + sqrt(1 - a_end) eps."""
    x = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, a_end = 101, float(AC[0])
    a_t = float(AC[t])
    x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
    got = SAMPLERS[sampler](lambda _x, _t: e, x, [t], AC, final_alpha=a_end)
    assert torch.allclose(got, math.sqrt(a_end) * x0 + math.sqrt(1 - a_end) * e, atol=1e-10)
    assert torch.allclose(SAMPLERS[sampler](lambda _x, _t: e, x, [t], AC), x0, atol=1e-10)  # default: clean
