"""DDPM pieces: the noise schedule, forward noising, the training loss, eps/v conversions, the
latent scale factor.

Make-An-Audio's numbers: 1000 steps, "linear" schedule that is linear in sqrt(beta) from
0.00085 to 0.0120 (the Stable Diffusion schedule), epsilon prediction, latents multiplied by
1 / std of the training latents ("scale_by_std"). v prediction (Salimans & Ho) is an option.

Notation: a_t = alphas_cumprod[t]; x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps;
v = sqrt(a_t) eps - sqrt(1 - a_t) x0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from maa.core.config import ConfigMixin, OneOf, Range
from maa.core.errors import MaaError


@dataclass
class DiffusionConfig(ConfigMixin):
    """The diffusion settings: schedule (steps, beta range), prediction target, latent scale, caption dropout, timestep grid."""
    num_steps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.0120
    prediction: str = "eps"  # "eps" or "v"
    scale_factor: float = 1.0  # latents are multiplied by this before diffusion (1 / std of training latents)
    cond_drop: float = 0.1  # share of training captions replaced by "" (classifier-free guidance)
    # Sampling timesteps: "maa" (samplers.timesteps, ending at the clean point), or "official":
    # Make-An-Audio's DDIM grid range(0, T, T // n) + 1 whose last step goes to a_0, not to 1.
    timestep_grid: str = "maa"

    # the official schedule is 1000 steps, betas 0.00085-0.012, scale factor ~0.2 (SD's 0.18215)
    limits: ClassVar[dict] = {
        "num_steps": Range(1, 100_000), "beta_start": Range(1e-8, 0.5), "beta_end": Range(1e-8, 0.999),
        "prediction": OneOf("eps", "v"), "scale_factor": Range(1e-4, 1e4), "cond_drop": Range(0.0, 1.0),
        "timestep_grid": OneOf("maa", "official"),
    }


def alphas_cumprod(cfg: DiffusionConfig) -> torch.Tensor:
    """a_t for t = 0..T-1, float64 (the samplers take ratios of values close to 1)."""
    betas = torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.num_steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def _bcast(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return a.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, ac: torch.Tensor) -> torch.Tensor:
    """x_t given x0, integer timesteps t (B,) and the noise."""
    a = ac.to(x0.device)[t]
    return _bcast(a.sqrt(), x0) * x0 + _bcast((1 - a).sqrt(), x0) * noise


def v_target(x0: torch.Tensor, noise: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The v-prediction target sqrt(a) noise - sqrt(1 - a) x0."""
    return _bcast(a.sqrt(), x0) * noise - _bcast((1 - a).sqrt(), x0) * x0


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(a) v + sqrt(1 - a) x_t (a: (B,) or scalar a_t)."""
    a = a.expand(x_t.shape[0]) if a.dim() == 0 else a
    return _bcast(a.sqrt(), x_t) * v + _bcast((1 - a).sqrt(), x_t) * x_t


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, a) -> torch.Tensor:
    """x0 from x_t and predicted noise: (x_t - sqrt(1 - a) eps) / sqrt(a)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    a = a.expand(x_t.shape[0]) if a.dim() == 0 else a
    return (x_t - _bcast((1 - a).sqrt(), x_t) * eps) / _bcast(a.sqrt(), x_t)


def diffusion_loss(model, x0: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None, cfg: DiffusionConfig,
                   ac: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared error of the eps (or v) prediction at uniformly drawn timesteps."""
    b = x0.shape[0]
    t = torch.randint(0, cfg.num_steps, (b,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = q_sample(x0, t, noise, ac)
    target = noise if cfg.prediction == "eps" else v_target(x0, noise, ac.to(x0.device)[t])
    pred = model(x_t, t, context, mask)
    return F.mse_loss(pred.float(), target.float())


def measure_scale_factor(latents: torch.Tensor) -> float:
    """1 / std of training latents, so that scaled latents have unit variance like the noise."""
    std = float(latents.float().std())
    if not std > 1e-8:
        raise MaaError("latent scale factor: the VAE maps the training data to constant latents; is the VAE trained?")
    return 1.0 / std


LDM_KIND = "ldm"  # config.json "kind" of a model folder's ldm/

