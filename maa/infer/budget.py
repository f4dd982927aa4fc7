"""What a generation will cost, known before anything is loaded: memory and time from the model's
configs and the latent size, checked against the free memory and an hour (`preflight`)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from maa.core.checkpoint import read_config
from maa.core.device import pick_device
from maa.core.errors import MaaError
from maa.core.audio import frames_for_duration
from maa.infer.accel import FastPath
from maa.infer.options import GenerateOptions
from maa.infer.pipeline import resolve_model_dir
from maa.infer.sampling import WINDOW
from maa.models.unet import UNetConfig
from maa.models.vae import VAEConfig

MAX_SECONDS = 3600.0  # above this (or above the free memory) a generation is refused unless forced


@dataclass
class Estimate:
    """What a generation will cost: seconds, bytes and the latent's shape (C, H, W)."""

    seconds: float
    bytes: float
    latent: tuple[int, int, int]

    def __str__(self) -> str:
        t = self.seconds
        when = f"{t:.0f} s" if t < 120 else f"{t / 60:.0f} min" if t < 7200 else f"{t / 3600:.1f} h"
        return f"about {self.bytes / 2**30:.1f} GB and {when} (latent {'x'.join(map(str, self.latent))})"


def estimate(root: Path, duration: float, steps: int, samples: int, batch_size: int, device: str = "cpu") -> Estimate:
    """Memory and time of a generation from the model's configs alone (nothing is loaded): the
    UNet's multiply-adds per step at the latent size (convolutions, attention and its T x T scores),
    twice for guidance, at a throughput measured here on CPU (a fixed 20 TFLOP/s on CUDA). Memory:
    weights, the skip activations and one attention score matrix of a batch. Order of magnitude,
    not a promise: it catches the 1000 s clip that would run for hours."""
    u = UNetConfig.from_dict(read_config(root / "ldm")["unet"])  # checked against sane ranges here
    v = VAEConfig.from_dict(read_config(root / "vae")["vae"])
    frames = frames_for_duration(duration, v.factor)
    c0, h, w = v.z_channels, v.n_mels // v.factor, frames // v.factor
    flops = act = scores = 0.0
    for lvl, mult in enumerate(u.channel_mult):
        c, t = u.channels * mult, h * w / 4 ** lvl
        blocks = 2 * u.num_res_blocks + 1 + (2 if lvl == len(u.channel_mult) - 1 else 0)  # down, up, middle
        flops += blocks * 36 * c * c * t  # two 3x3 convolutions per ResNet block, 2 flops per multiply-add
        act += blocks * c * t * 4
        if lvl in u.attn_levels or lvl == len(u.channel_mult) - 1:
            flops += blocks * u.transformer_depth * (40 * c * c * t + 4 * t * t * c)  # projections, GEGLU, scores
            scores = max(scores, u.num_heads * t * t * 4)
    b = 2 * min(batch_size, samples)
    params = sum(4 * u.channels ** 2 * m * m * 30 for m in u.channel_mult)  # rough weight count
    mem = 4 * params + b * (act + scores) + b * v.n_mels * frames * v.ch * 4 * 3  # + the VAE decoder's widest map
    rate = 20e12 if str(device).startswith("cuda") else _cpu_flops()
    # per sample (window) once, whatever the steps: the VAE decoder and, for held-known windows, its
    # encoder (at few steps they outweigh the UNet: -d 60 --steps 2 ran 1.7x its UNet-only estimate)
    vae = 2 * sum((v.num_res_blocks + 1) * 36 * (v.ch * m) ** 2 * v.n_mels * frames / 4 ** lvl
                  for lvl, m in enumerate(v.ch_mult))
    return Estimate((steps * 2 * flops + vae) * samples / rate, mem, (c0, h, w))


@functools.cache  # once per process: estimates then compare exactly
def _cpu_flops() -> float:
    """Rough useful FLOP/s of this CPU: half a matrix product's rate (measured: the bundled model's
    10 s clip within a factor of 1.5 on one busy thread)."""

    a = torch.randn(256, 256)
    a @ a
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.02:
        a @ a
        n += 1
    return n * 2 * 256 ** 3 / (time.perf_counter() - t0) / 2


def preflight(opts: GenerateOptions, model_dir=None, device: str = "auto", samples: int = 1,
              force: bool = False) -> tuple[Path, str, Estimate]:
    """Everything about a generation that can be checked before the model is loaded: the model
    folder, the device, and the memory and time it will need (refused above the free memory or
    MAX_SECONDS unless `force`); `opts` checked (GenerateOptions.check) already. Returns (model
    folder, device, estimate)."""

    root = resolve_model_dir(model_dir)
    dev = str(pick_device(device))
    FastPath.parse(opts.fast, dev)  # a bad --fast fails here, before the model loads
    secs = opts.seconds()
    if opts.mode in ("long", "timeline"):  # one window at a time (maa.infer.longform)
        samples, secs = samples * opts.steps_per_output(1), min(secs, WINDOW)
    est = estimate(root, secs, opts.steps, samples, opts.batch_size, dev)
    why = check_estimate(est, dev)
    if why and not force:
        raise MaaError(f"generate: {est} is {why}; shorten --duration or --steps, or pass --force to run anyway")
    return root, dev, est


def check_estimate(est: Estimate, device: str = "cpu") -> str | None:
    """Why a generation of this size is refused (None: it fits): above MAX_SECONDS or the free memory."""
    free = _free_memory(device)
    if free and est.bytes > free:
        return f"more than the {free / 2**30:.1f} GB free on {device}"
    if est.seconds > MAX_SECONDS:
        return f"more than the {MAX_SECONDS / 3600:g} h bound"
    return None


def _free_memory(device: str) -> float | None:
    if str(device).startswith("cuda"):
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None
