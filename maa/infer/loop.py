"""Seamless loops (`maa generate --loop`): a clip whose end runs into its start without a click
or a level step, so it can repeat forever (ambiences, engine hums, game audio).

Two pieces, both on the circle of latent frames:

* while sampling, `circular(eps, width)` wraps the denoiser: each call sees the latent with PAD
  latent frames (1 s) of its other end pasted before and after it (wrap padding), and its prediction
  is cut back to the middle, so the first frame is denoised next to the last, as if the clip
  went on. (Rolling the latent by a different offset every step as well, `roll=True`, was
  measured worse: flux ratio up to 3.7 at the wrap, against at most 1.16 without it.)
* at the end, `decode(model, z, frames)` decodes the latent padded the same way (VAE decoder and
  vocoder are convolutions: they need context on both sides of the wrap) and cuts exactly one
  period: frames * hop samples, so the file played twice in a row has no seam.

The method was chosen by `benchmarks/bench_loop.py` (spectral flux and level step at the wrap of
the file played twice, against the same measures inside the clip, vs a plain clip made into a
loop by a crossfade). `maa.infer.loop_figures.wrap_figures` is that measure.

Hooked in at two places when `opts.loop`: `maa.infer.sampling.sample` wraps its denoiser with
`circular`, and `maa.infer.pipeline.Pipeline._sample_batch` decodes with `decode`. The option's
checks (one window, not with inpaint/timeline) are in `GenerateOptions.check`.
"""

from __future__ import annotations

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL

PAD = 8  # latent frames (1 s) of the other end on each side while denoising (4 measured worse: bench_loop)
DECODE_PAD = 8  # latent frames (1 s) of wrap context on each side for the VAE decoder and vocoder


def wrap_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """(..., W) -> (..., W + 2 pad): the last `pad` frames before, the first `pad` after (tiled
    when the clip is shorter than the pad)."""
    w = x.shape[-1]
    if pad <= 0:
        return x
    reps = -(-pad // w)  # ceil: a clip shorter than the pad wraps around several times
    ring = torch.cat([x] * reps, dim=-1) if reps > 1 else x
    return torch.cat([ring[..., ring.shape[-1] - pad:], x, ring[..., :pad]], dim=-1)


def roll_offset(step: int, width: int) -> int:
    """The roll of step `step`: golden-ratio spaced, so successive steps put the UNet's edge at
    well-spread places of the loop."""
    return int(round(step * 0.6180339887 * width)) % width if width > 1 else 0


def circular(eps, width: int, pad: int = PAD, roll: bool = False):
    """The denoiser `eps(x, t)` seen on a circle of `width` latent frames (see the module doc)."""
    calls = {"n": 0}

    def fn(x: torch.Tensor, t):
        k = roll_offset(calls["n"], width) if roll else 0
        calls["n"] += 1
        xr = torch.roll(x, -k, dims=-1) if k else x
        out = eps(wrap_pad(xr, pad), t)[..., pad:pad + width]
        return torch.roll(out, k, dims=-1) if k else out

    return fn


@torch.no_grad()
def decode(model, z: torch.Tensor, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Scaled latent (B, C, H, W) -> log-mels (B, 80, frames) and audio of exactly one period,
    frames * hop samples (B, n), decoded with wrap context on both sides."""
    factor = model.vae.factor
    w = z.shape[-1]
    pad = DECODE_PAD
    zp = wrap_pad(z, pad)
    mels = model.vae.decode_latent(zp / model.dcfg.scale_factor, frames=(w + 2 * pad) * factor).float()
    wavs = model.vocoder(mels).float().cpu().numpy()
    a = pad * factor * MEL.hop_length
    n = frames * MEL.hop_length
    return mels[..., pad * factor:pad * factor + frames].cpu().numpy(), np.ascontiguousarray(wavs[:, a:a + n])
