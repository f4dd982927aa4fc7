"""DDPM pieces: the noise schedule, forward noising, the training loss, eps/v conversions, the
latent scale factor; and the samplers that walk the schedule back (ddim, plms, dpm++: the section below).

Make-An-Audio's numbers: 1000 steps, "linear" schedule that is linear in sqrt(beta) from
0.00085 to 0.0120 (the Stable Diffusion schedule), epsilon prediction, latents multiplied by
1 / std of the training latents ("scale_by_std"). v prediction (Salimans & Ho) is an option.

Notation: a_t = alphas_cumprod[t]; x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps;
v = sqrt(a_t) eps - sqrt(1 - a_t) x0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from maa.core.config import ConfigMixin, OneOf, Range
from maa.core.errors import MaaError
from maa.core.progress import staged


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
INPAINT_KIND = "inpaint-ldm"  # ldm/config.json "kind" of a native inpainting model folder (maa.models.inpaint_unet)

# -- samplers ------------------------------------------------------------------------------------
#
# Samplers as small functions over one denoiser.
#
# A denoiser is `eps_fn(x, t) -> eps`: the noise predicted in x at integer timestep t (0..T-1).
# `model_denoiser` turns a UNet (eps or v prediction) into `(x, t, cond) -> eps`; `guided` adds
# classifier-free guidance and binds the condition. Every sampler walks a descending list of
# timesteps (`timesteps(n)`) and, after the last one, returns the clean prediction (a = 1), or
# the point at `final_alpha` (a_0 on the official grid of a converted Make-An-Audio model;
# `schedule` gives a model config's grid).
#
#   * ddim:     Song et al. 2021; eta = 0 is the deterministic probability-flow solver.
#   * plms:     pseudo linear multistep (Liu et al. 2022, the sampler Make-An-Audio ships): DDIM
#               steps driven by an Adams-Bashforth combination of past eps, with a 2nd-order
#               (Heun-like) first step.
#   * dpmpp_2m: DPM-Solver++ 2M (Lu et al. 2022): multistep 2nd order in the data prediction, in
#               log-SNR time; the last step is 1st order.
#
# Wrappers over these: `hold_known` turns any sampler into an inpainting one (the known region of
# the latent is replaced after every step by the known latent noised to the next timestep, as in
# Make-An-Audio's and RePaint's masked sampling without resampling), and `regional` mixes several
# denoisers by masks over time (one prompt per stretch of one latent).

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None] | None


def timesteps(n: int, ac: torch.Tensor, spacing: str = "uniform") -> list[int]:
    """n integer timesteps from T-1 down to 0, evenly spaced in t ("uniform") or in log-SNR ("logsnr").

    DPM-Solver++ wants log-SNR spacing: uniform t leaves one huge log-SNR jump at the end of the
    schedule, where its 2nd-order extrapolation overshoots (3-8x the error on a Gaussian toy).
    """
    if n < 1:
        raise ValueError("at least one step")
    num_train = len(ac)
    if spacing == "uniform":
        ts = np.round(np.linspace(num_train - 1, 0, n)).astype(int).tolist()
    elif spacing == "logsnr":
        lam = 0.5 * torch.log(ac / (1 - ac))
        targets = torch.linspace(float(lam[-1]), float(lam[0]), n, dtype=lam.dtype)
        ts = torch.argmin((lam[None, :] - targets[:, None]).abs(), dim=1).tolist()
    else:
        raise ValueError(f"spacing {spacing!r}")
    return list(dict.fromkeys(ts))  # more steps than timesteps would repeat some


SPACING = {"ddim": "uniform", "plms": "uniform", "dpm++": "logsnr"}
GRIDS = ("maa", "official")


def official_timesteps(n: int, num_train: int) -> list[int]:
    """Make-An-Audio's (latent diffusion's) DDIM grid, descending: range(0, T, T // n) + 1.
    n steps when n divides T, else up to one more, as in the official code; a T that grid would
    reach (past the schedule, where the official code fails) is left out."""
    if not 1 <= n <= num_train:
        raise ValueError(f"between 1 and {num_train} steps")
    return [t + 1 for t in reversed(range(0, num_train, num_train // n)) if t + 1 < num_train]


def schedule(n: int, ac: torch.Tensor, sampler: str, grid: str = "maa") -> list[int]:
    """The timesteps of an n-step run on a model config's grid: "maa" is `timesteps` with the
    sampler's spacing, "official" is `official_timesteps` for every sampler."""
    if grid == "maa":
        return timesteps(n, ac, SPACING.get(sampler, "uniform"))
    if grid == "official":
        return official_timesteps(n, len(ac))
    raise MaaError(f"diffusion config: timestep_grid {grid!r}; choose one of {', '.join(GRIDS)}")


def end_alpha(ac: torch.Tensor, grid: str = "maa") -> float:
    """The alpha the last step goes to: 1 (the clean point) on maa's grid, a_0 on the official one."""
    return float(ac[0]) if grid == "official" else 1.0


def sdedit_timesteps(ts: list[int], strength: float) -> list[int]:
    """The last round(len(ts) * strength) steps: where an audio-to-audio edit starts denoising."""
    k = int(round(len(ts) * strength))
    return ts[len(ts) - k:] if k > 0 else []


def _alpha(ac: torch.Tensor, t: int | None, end: float = 1.0) -> float:
    """a_t; t None is the end point, alpha `end` (1: clean; the official grid ends at a_0)."""
    return end if t is None else float(ac[t])


def _ddim_step(x, eps, a_t: float, a_prev: float, eta: float = 0.0, generator=None):
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) if a_prev < 1 else 0.0
    x_prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        x_prev = x_prev + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x_prev


def _pairs(ts: list[int]):
    """(t, t_next) over the schedule; t_next None means the clean endpoint."""
    return zip(ts, ts[1:] + [None])


@staged("sampling")
def ddim(eps_fn: EpsFn, x: torch.Tensor, ts: list[int], ac: torch.Tensor, eta: float = 0.0,
         generator: torch.Generator | None = None, callback: Callback = None, final_alpha: float = 1.0) -> torch.Tensor:
    """DDIM (eta = 0: deterministic) over the timesteps `ts`."""
    for i, (t, t_next) in enumerate(_pairs(ts)):
        x = _ddim_step(x, eps_fn(x, t), _alpha(ac, t), _alpha(ac, t_next, final_alpha), eta, generator)
        if callback:
            callback(i, x)
    return x


@staged("sampling")
def plms(eps_fn: EpsFn, x: torch.Tensor, ts: list[int], ac: torch.Tensor, callback: Callback = None,
         final_alpha: float = 1.0, **_) -> torch.Tensor:
    """PLMS (pseudo linear multistep, as in latent diffusion's reference sampler)."""
    history: list[torch.Tensor] = []
    for i, (t, t_next) in enumerate(_pairs(ts)):
        a_t, a_next = _alpha(ac, t), _alpha(ac, t_next, final_alpha)
        e = eps_fn(x, t)
        if not history:
            if t_next is None:
                e_prime = e
            else:  # 2nd-order start: average eps here and at the Euler-predicted next point
                e_prime = (e + eps_fn(_ddim_step(x, e, a_t, a_next), t_next)) / 2
        elif len(history) == 1:
            e_prime = (3 * e - history[-1]) / 2
        elif len(history) == 2:
            e_prime = (23 * e - 16 * history[-1] + 5 * history[-2]) / 12
        else:
            e_prime = (55 * e - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
        history = (history + [e])[-3:]
        x = _ddim_step(x, e_prime, a_t, a_next)
        if callback:
            callback(i, x)
    return x


@staged("sampling")
def dpmpp_2m(eps_fn: EpsFn, x: torch.Tensor, ts: list[int], ac: torch.Tensor, callback: Callback = None,
             final_alpha: float = 1.0, **_) -> torch.Tensor:
    """DPM-Solver++(2M): second-order multistep on x0 predictions."""
    x0_prev, h_prev = None, None
    for i, (t, t_next) in enumerate(_pairs(ts)):
        a_t = _alpha(ac, t)
        x0 = (x - math.sqrt(1 - a_t) * eps_fn(x, t)) / math.sqrt(a_t)
        if t_next is None and final_alpha >= 1.0:  # to sigma = 0: the data prediction itself (1st order)
            x = x0
        else:
            a_n = _alpha(ac, t_next, final_alpha)
            lam_t = 0.5 * math.log(a_t / (1 - a_t))
            lam_n = 0.5 * math.log(a_n / (1 - a_n))
            h = lam_n - lam_t
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = math.sqrt((1 - a_n) / (1 - a_t)) * x - math.sqrt(a_n) * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback:
            callback(i, x)
    return x


SAMPLERS = {"ddim": ddim, "plms": plms, "dpm++": dpmpp_2m}


def hold_known(sampler, z_known: torch.Tensor, keep: torch.Tensor, noise: torch.Tensor, ac: torch.Tensor):
    """`sampler` that holds the region `keep` (1 known, 0 free, fractions crossfade) at z_known.

    x starts as z_known noised to the first timestep there, and after each step the known region
    is replaced by z_known noised to the step's next timestep with the same `noise` (the clean
    z_known after the last), so the free region is denoised next to a consistent known one and
    the result equals z_known wherever keep is 1 (on a grid ending at final_alpha < 1, z_known
    noised to it). The replacement is written into the sampler's state in place through its
    callback: every sampler above reads x only from that state.
    """
    def run(eps_fn: EpsFn, x: torch.Tensor, ts: list[int], ac_: torch.Tensor, callback: Callback = None,
            final_alpha: float = 1.0, **kw):
        def noised(t):
            a = _alpha(ac, t, final_alpha)
            return math.sqrt(a) * z_known + math.sqrt(1 - a) * noise

        if not ts:
            return keep * z_known + (1 - keep) * x
        after = ts[1:] + [None]
        x = keep * noised(ts[0]) + (1 - keep) * x

        def cb(i, xi):
            xi.copy_(keep * noised(after[i]) + (1 - keep) * xi)
            if callback:
                callback(i, xi)

        return sampler(eps_fn, x, ts, ac_, callback=cb, final_alpha=final_alpha, **kw)

    return run


def regional(eps_fns: list[EpsFn], weights: torch.Tensor) -> EpsFn:
    """Denoisers mixed by weights over the latent's last (time) axis: (K, T) -> sum_k w_k eps_k,
    the weights normalised to sum 1 per column (a column no denoiser covers gets the first)."""
    w = weights.clamp(min=0).float()
    w[0] = torch.where(w.sum(0) > 0, w[0], torch.ones_like(w[0]))
    w = w / w.sum(0, keepdim=True)

    def fn(x, t):
        return sum(wk.to(x.device, x.dtype) * f(x, t) for wk, f in zip(w, eps_fns))

    return fn


def model_denoiser(model, prediction: str, ac: torch.Tensor):
    """UNet -> `(x, t, (tokens, mask)) -> eps`, converting a v prediction to eps."""

    on_device: dict = {}  # the schedule copied to the GPU once, not one host-to-device copy per step

    def fn(x: torch.Tensor, t: int, cond) -> torch.Tensor:
        tokens, mask = cond
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        out = model(x, tt, tokens, mask).to(x.dtype)
        if prediction == "v":
            if x.device not in on_device:
                on_device[x.device] = ac.to(x.device)
            out = eps_from_v(x, out, on_device[x.device][t])
        return out

    return fn


def cat_cond(a, b):
    """Concatenate two (tokens, mask) batches along the batch axis, padding the shorter token length."""
    (ta, ma), (tb, mb) = a, b
    n = max(ta.shape[1], tb.shape[1])
    pad = lambda t, m: (torch.nn.functional.pad(t, (0, 0, 0, n - t.shape[1])),
                        torch.nn.functional.pad(m, (0, n - m.shape[1]), value=False))
    (ta, ma), (tb, mb) = pad(ta, ma), pad(tb, mb)
    return torch.cat([ta, tb]), torch.cat([ma, mb])


def guided(denoiser, cond, uncond, scale: float) -> EpsFn:
    """Classifier-free guidance: uncond + scale * (cond - uncond), both in one batch.

    scale 1 is exactly the conditional prediction (the unconditional branch is not run).
    """
    if scale == 1.0 or uncond is None:
        return lambda x, t: denoiser(x, t, cond)
    both = cat_cond(cond, uncond)

    def fn(x, t):
        e_c, e_u = denoiser(torch.cat([x, x]), t, both).chunk(2)
        return e_u + scale * (e_c - e_u)

    return fn
