"""The one sampler entry point of generation, and the one VAE encode and decode.

Every mode samples through `sample(model, conditions, noise, opts, known=None, on_step=None)`:
plain clips and the parts of an "A, then B" prompt (a batch of rows), audio-to-audio (`known` =
the init latent, no mask: the SDEdit start), inpainting and long form (`known` with a `keep`
mask over time: the held-known region), and a joint timeline (`Regions`: one prompt per stretch
of one latent). The denoiser it runs is built here only (`denoiser`), in the style of
k-diffusion's model wrappers: the UNet as an eps predictor (maa.models.samplers.model_denoiser),
classifier-free guidance against opts.negative (`guided`), masks over time (`regional`), and
the known-region hold around the sampler (`hold_known`).

    z = sample(model, ["a dog barks"], seeded_noise(shape, 0)[None], opts, seed=0)
    mels, wavs = decode(model, z, frames)

`model` is anything with unet, vae, text, vocoder, dcfg, ac and device (maa.infer.pipeline.Pipeline).
`opts` is anything with steps, sampler, guidance, negative and eta (and strength, for audio-to-audio).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from maa.core.audio import fit_length
from maa.core.audio import mel_spectrogram, samples_for_frames
from maa.infer.accel import FastPath, ensure
from maa.infer.mel_domain import to_model_domain
from maa.infer.loop import circular
from maa.models.samplers import (
    SAMPLERS,
    end_alpha,
    guided,
    hold_known,
    model_denoiser,
    regional,
    schedule,
    sdedit_timesteps,
)

WINDOW = 10.0  # s: the longest clip sampled at once (the model's usual clip); longer ones go window by window


@dataclass
class Known:
    """What the sampler starts from or holds. keep None: audio-to-audio (SDEdit), the whole latent
    noised to the timestep of opts.strength and only the last `strength` share of the steps run.
    keep (weights over the latent's time axis, 1 known): the region held at `latent` all along
    (inpainting, long form's overlap), every step run."""
    latent: torch.Tensor  # scaled latent (B, C, H, W)
    keep: torch.Tensor | None = None


@dataclass
class Regions:
    """One latent, each stretch denoised by its own prompt: texts[k] weighted by weights[k] over
    the latent's time axis (maa.models.samplers.regional)."""
    texts: list[str]
    weights: torch.Tensor  # (K, W)


def seeded_noise(shape, seed: int) -> torch.Tensor:
    """Per-sample noise from its own seeded CPU generator: the same seed gives the same sample
    whatever the batch size or device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))


def timesteps(model, opts, sdedit: bool = False) -> list[int]:
    """The sampler's timesteps on the model's grid; for audio-to-audio only the last `strength` share."""
    ts = schedule(opts.steps, model.ac, opts.sampler, getattr(model.dcfg, "timestep_grid", "maa"))
    return sdedit_timesteps(ts, opts.strength) if sdedit else ts


def denoiser(model, conditions: Sequence[str] | Regions, opts) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The guided denoiser `(x, t) -> eps` of one text per batch row (or of `Regions`) against
    opts.negative, at opts.guidance."""
    if isinstance(conditions, Regions):
        return regional([denoiser(model, [t], opts) for t in conditions.texts], conditions.weights)
    texts = list(conditions)
    for t in dict.fromkeys(texts + [opts.negative]):
        model.text.encode([t])  # each text alone (then cached): its embedding never depends on its batch
    den = model_denoiser(model.unet, model.dcfg.prediction, model.ac)
    cond, uncond = model.text.encode(texts), model.text.encode([opts.negative] * len(texts))
    return guided(den, (cond.tokens, cond.mask), (uncond.tokens, uncond.mask), opts.guidance)


@torch.no_grad()
def sample(model, conditions: Sequence[str] | Regions, noise: torch.Tensor, opts, known: Known | None = None,
           on_step: Callable[[], None] | None = None, seed: int = 0) -> torch.Tensor:
    """The scaled latent opts.sampler makes from `noise` (B, C, H, W) under `conditions`.

    `known`: see Known. `seed` seeds the sampler's own noise (DDIM's eta). on_step after each step."""
    sdedit = known is not None and known.keep is None
    ts = timesteps(model, opts, sdedit)
    x = noise
    if sdedit:  # the init latent, noised to the first timestep
        a = float(model.ac[ts[0]]) if ts else 1.0
        x = math.sqrt(a) * known.latent + math.sqrt(1 - a) * noise
    if not ts:
        return x
    ensure(model, FastPath.parse(getattr(opts, "fast", "auto"), model.device, model.text.max_length))  # CPU: a no-op
    run = SAMPLERS[opts.sampler]
    if known is not None and not sdedit:
        run = hold_known(run, known.latent, known.keep.to(noise.device, noise.dtype), noise, model.ac)
    eps = denoiser(model, conditions, opts)
    if getattr(opts, "loop", False):  # the latent on a circle: its end denoised next to its start (maa.infer.loop)
        eps = circular(eps, noise.shape[-1])
    return run(eps, x, ts, model.ac, eta=opts.eta,
               generator=torch.Generator().manual_seed(int(seed)),
               callback=(lambda i, _x: on_step()) if on_step else None,
               final_alpha=end_alpha(model.ac, getattr(model.dcfg, "timestep_grid", "maa")))


@torch.no_grad()
def encode(model, audios: Sequence[np.ndarray], frames: int) -> torch.Tensor:
    """16 kHz clips (each fitted to `frames` mel frames) -> their scaled latents (B, C, H, W), one batch."""
    n = samples_for_frames(frames)
    mel = torch.stack([mel_spectrogram(torch.from_numpy(fit_length(np.asarray(a, np.float32), n))) for a in audios])
    mel = to_model_domain(mel, model.config.get("mel_domain"))  # normalised-dB models (maa pull)
    return model.vae.encode_mel(mel.to(model.device)).float() * model.dcfg.scale_factor


@torch.no_grad()
def decode(model, z: torch.Tensor, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Scaled latents (B, C, H, W) -> log-mels (B, 80, frames) and audio (B, samples_for_frames(frames))."""
    mels = model.vae.decode_latent(z / model.dcfg.scale_factor, frames=frames).float()
    wavs = model.vocoder(mels).float().cpu().numpy()
    n = samples_for_frames(frames)
    return mels.cpu().numpy(), np.stack([fit_length(w, n) for w in wavs])
