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
loop by a crossfade). `wrap_figures` is that measure.

The pipeline hooks this in at one place (`maa.infer.pipeline._sample`): `eps = circular(eps, w)`
before the sampler and `decode` instead of the plain one when `opts.loop`.
"""

from __future__ import annotations

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.core.mel import DEFAULT as MEL
from maa.infer.inpaint import join_flux_ratio, level_jump_db
from maa.infer.longform import WINDOW

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
def decode(model, z: torch.Tensor, frames: int) -> tuple[torch.Tensor, np.ndarray]:
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
    return mels[..., pad * factor:pad * factor + frames], np.ascontiguousarray(wavs[:, a:a + n])


def check(opts) -> None:
    """The one-line errors of --loop with options it does not combine with."""
    if not getattr(opts, "loop", False):
        return
    if getattr(opts, "inpaint", None) or getattr(opts, "timeline", None):
        raise MaaError("--loop with --inpaint or --timeline: not supported; make the loop from a prompt (or --init-audio)")
    if opts.duration > WINDOW + 1e-9:
        raise MaaError(f"--loop with --duration {opts.duration:g}: a loop is one window, at most {WINDOW:g} s; "
                       "repeat it to fill longer")


def crossfade_loop(audio: np.ndarray, fade: float = 0.5) -> np.ndarray:
    """The usual way to make a plain clip loop (the baseline of benchmarks/bench_loop.py): its last
    `fade` s crossfaded (equal power) into its first, the result `fade` s shorter."""
    n = int(fade * SAMPLE_RATE)
    x = np.asarray(audio, np.float64)
    t = np.linspace(0, np.pi / 2, n)
    head = x[:n] * np.sin(t) + x[len(x) - n:] * np.cos(t)
    return np.concatenate([head, x[n:len(x) - n]]).astype(np.float32)


def wrap_figures(loop: np.ndarray, span: float = 0.5) -> dict:
    """How the loop's wrap sounds, played twice in a row, against the clip's own inside:
    flux_ratio: peak spectral flux at the wrap over that elsewhere (maa.infer.inpaint.join_flux_ratio;
    ~1 when the wrap is as smooth as the audio), inside_flux_ratio: the same at 1/4, 1/2 and 3/4
    of the clip (mean); level_step_db at the wrap and, for the clip's own
    spread, the level steps at points inside it (every `span` s, away from the wrap): their
    median and 90th percentile."""
    x = np.asarray(loop, np.float32)
    twice = np.concatenate([x, x])
    wrap = len(x) / SAMPLE_RATE
    seconds = len(x) / SAMPLE_RATE
    inside = [t for t in np.arange(span, seconds - span + 1e-9, span / 2) if abs(t - wrap) > span]
    steps = np.array([level_jump_db(twice, t, span) for t in inside])
    marks = [seconds * q for q in (0.25, 0.5, 0.75)]  # the same measure at points inside the clip
    return {"flux_ratio": join_flux_ratio(twice, [wrap]),
            "inside_flux_ratio": float(np.mean([join_flux_ratio(twice, [t]) for t in marks])),
            "level_step_db": level_jump_db(twice, wrap, span),
            "inside_level_step_db_median": float(np.median(steps)),
            "inside_level_step_db_p90": float(np.percentile(steps, 90))}
