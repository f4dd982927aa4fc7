"""Generation from a model folder: load it, lay out the clips, sample, decode, vocode.

A generation model folder holds vae/ (maa train-vae), ldm/ (config.json + unet.safetensors,
the EMA weights when training used EMA) and optionally vocoder/ and clap/. `maa train-ldm`
copies the VAE into RUN/vae/, so RUN is such a folder.

Generation (`generate`): per sample a seeded Gaussian latent (or, for audio-to-audio, the init
audio's latent noised to the strength's timestep), a sampler over the guided denoiser, the VAE
decoder, then the vocoder (Griffin-Lim unless the folder has a neural vocoder). A prompt with
order words ("A, then B") is sampled part by part, each part a shorter clip of its own, and the
parts are joined end to end (maa.infer.temporal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, fit_length
from maa.core.errors import MaaError
from maa.core.mel import DEFAULT as MEL
from maa.core.mel import frames_for_duration, mel_spectrogram, samples_for_frames
from maa.infer.temporal import join, part_span, split_sequence
from maa.models.diffusion import LDM_KIND, DiffusionConfig, alphas_cumprod
from maa.models.samplers import (
    SAMPLERS,
    SPACING,
    guided,
    model_denoiser,
    sdedit_timesteps,
    timesteps,
)
from maa.models.unet import UNet, UNetConfig

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model"


@dataclass
class LDMModel:
    unet: UNet
    vae: object
    text: object
    vocoder: object
    dcfg: DiffusionConfig
    ac: torch.Tensor
    config: dict
    root: Path
    device: torch.device


def resolve_model_dir(path: str | Path | None) -> Path:
    """The folder given (or RUN for RUN/ldm), or the bundled model; a clear error when there is none."""
    if path is None:
        if (BUNDLED_MODEL / "ldm" / "config.json").exists():
            return BUNDLED_MODEL
        raise MaaError("no bundled model yet; train one with `maa train-vae MELS -o RUN` then "
                       "`maa train-ldm MELS --vae RUN/vae -o RUN`, or pass --model DIR")
    p = Path(path).expanduser()
    if (p / "config.json").exists() and not (p / "ldm").exists() and (p.parent / "vae").exists():
        p = p.parent  # RUN/ldm given
    if not (p / "ldm" / "config.json").exists():
        raise MaaError(f"{p}: not a generation model folder (no ldm/config.json); pass the -o folder of `maa train-ldm`")
    if not (p / "vae" / "config.json").exists():
        raise MaaError(f"{p}: has ldm/ but no vae/; copy the VAE folder (from `maa train-vae`) to {p / 'vae'}")
    return p


def load_model(path: str | Path | None = None, device: str = "cpu", text_encoder: str | None = None,
               gl_iters: int = 32) -> LDMModel:
    from maa.core.checkpoint import load_weights, read_config
    from maa.infer.vocoders import load_vocoder
    from maa.models.text import load_text_encoder
    from maa.models.vae import load_vae

    root = resolve_model_dir(path)
    dev = torch.device(device)
    cfg = read_config(root / "ldm")
    if cfg.get("kind") != LDM_KIND:
        raise MaaError(f"{root / 'ldm' / 'config.json'}: kind {cfg.get('kind')!r} is not an LDM config")
    unet = UNet(UNetConfig.from_dict(cfg["unet"])).to(dev)
    load_weights(root / "ldm", {"unet": unet})
    text = load_text_encoder(text_encoder or cfg["text_encoder"], device=device, max_length=cfg.get("max_length", 77))
    if text.dim != unet.cfg.context_dim:
        raise MaaError(f"text encoder {text.name}: width {text.dim}, but the UNet was trained with {unet.cfg.context_dim}")
    dcfg = DiffusionConfig.from_dict(cfg["diffusion"])
    return LDMModel(unet.eval(), load_vae(root / "vae", dev), text, load_vocoder(root, dev, gl_iters), dcfg,
                    alphas_cumprod(dcfg), cfg, root, dev)


@dataclass
class GenerateOptions:
    steps: int = 25
    sampler: str = "dpm++"
    guidance: float = 3.0
    negative: str = ""  # the unconditional prompt; "" is the paper's
    duration: float = 10.0
    batch_size: int = 4
    eta: float = 0.0  # DDIM only
    init_audio: np.ndarray | None = None  # audio-to-audio (SDEdit): 16 kHz mono
    strength: float = 0.5
    compose: bool = True  # "A, then B": A over the first half, B over the second (maa.infer.temporal)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise MaaError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise MaaError(f"--steps {self.steps}: must be at least 1")
        if not 0.0 <= self.strength <= 1.0:
            raise MaaError(f"--strength {self.strength}: must lie in [0, 1]")
        if self.batch_size < 1:
            raise MaaError(f"--batch-size {self.batch_size}: must be at least 1")


@dataclass
class Generated:
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor  # scaled latent the sampler returned (a split prompt: its parts' latents end to end)
    prompt: str
    seed: int
    parts: list[str] | None = None  # the prompt's parts in time order, when it was split


def _noise(shape, seed: int) -> torch.Tensor:
    """Per-sample noise from its own seeded CPU generator: the same seed gives the same sample
    whatever the batch size or device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))


JOIN_SECONDS = 0.25  # crossfade between the parts of an "A, then B" prompt


@dataclass
class _Job:
    """One clip to sample: a whole prompt, or part k of a prompt split in time (maa.infer.temporal)."""
    index: int  # which prompt
    part: int
    text: str
    seed: int
    frames: int
    init: np.ndarray | None  # audio-to-audio: the init audio under this clip


def _layout(prompts: list[str], seeds: list[int], opts: GenerateOptions, factor: int) -> tuple[list[list[str]], list[_Job], list[int]]:
    """Each prompt's parts, the clips to sample (sorted by length, so equal lengths batch together)
    and each prompt's crossfade in samples. A part's clip covers its equal share of the duration
    plus the crossfade, in samples and in mel frames; part k > 0 gets its own seed, derived from
    the prompt's."""
    frames = frames_for_duration(opts.duration, factor)
    length = samples_for_frames(frames)
    init = None if opts.init_audio is None else np.asarray(opts.init_audio, np.float32)
    parts = [split_sequence(p) if opts.compose else [p] for p in prompts]
    jobs, overlaps = [], []
    for i, (q, seed) in enumerate(zip(parts, seeds)):
        n = len(q)
        ov = min(int(JOIN_SECONDS * SAMPLE_RATE), length // (2 * n)) if n > 1 else 0
        overlaps.append(ov)
        f = frames
        if n > 1:
            span = max(e - s for s, e in (part_span(k, n, length, ov) for k in range(n)))
            span_f = max(e - s for s, e in (part_span(k, n, frames, _frames_of(ov)) for k in range(n)))
            need = max(math.ceil(span / MEL.hop_length) - 1, span_f)  # samples_for_frames(f) >= span
            f = math.ceil(need / factor) * factor
        for k, text in enumerate(q):
            s0 = part_span(k, n, length, ov)[0]
            piece = None if init is None else fit_length(init[s0:], samples_for_frames(f))
            jobs.append(_Job(i, k, text, int(seed) + 1_000_003 * k, f, piece))
    jobs.sort(key=lambda j: j.frames)  # stable: prompt order within a length
    return parts, jobs, overlaps


def _frames_of(samples: int) -> int:
    """A crossfade of `samples` in mel frames (at least one)."""
    return max(1, samples // MEL.hop_length)


def _timesteps(opts: GenerateOptions, ac: torch.Tensor) -> list[int]:
    """The sampler's timesteps; for audio-to-audio only the last `strength` share of them."""
    ts = timesteps(opts.steps, ac, SPACING.get(opts.sampler, "uniform"))
    return sdedit_timesteps(ts, opts.strength) if opts.init_audio is not None else ts


def _batches(jobs: list[_Job], size: int) -> list[list[_Job]]:
    """Consecutive jobs of one length, at most `size` at a time."""
    out: list[list[_Job]] = []
    for j in jobs:
        if out and len(out[-1]) < size and out[-1][0].frames == j.frames:
            out[-1].append(j)
        else:
            out.append([j])
    return out


@torch.no_grad()
def _sample(model: LDMModel, jobs: list[_Job], opts: GenerateOptions, on_step) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Audio, mels and latents of a batch of clips of one length."""
    frames = jobs[0].frames
    c, h, w = model.vae.latent_shape(frames)
    ts = _timesteps(opts, model.ac)
    noise = torch.stack([_noise((c, h, w), j.seed) for j in jobs]).to(model.device)
    x = noise
    if opts.init_audio is not None:  # SDEdit: the init latent, noised to the first timestep
        mel = torch.stack([mel_spectrogram(torch.from_numpy(j.init)) for j in jobs]).to(model.device)
        z_init = model.vae.encode_mel(mel).float() * model.dcfg.scale_factor
        a = float(model.ac[ts[0]]) if ts else 1.0
        x = math.sqrt(a) * z_init + math.sqrt(1 - a) * noise
    if ts:
        den = model_denoiser(model.unet, model.dcfg.prediction, model.ac)
        cond, uncond = model.text.encode([j.text for j in jobs]), model.text.encode([opts.negative] * len(jobs))
        eps = guided(den, (cond.tokens, cond.mask), (uncond.tokens, uncond.mask), opts.guidance)
        x = SAMPLERS[opts.sampler](eps, x, ts, model.ac, eta=opts.eta, generator=torch.Generator().manual_seed(jobs[0].seed),
                                   callback=(lambda i, _x: on_step()) if on_step else None)
    mels = model.vae.decode_latent(x / model.dcfg.scale_factor, frames=frames).float()
    wavs = model.vocoder(mels).float().cpu().numpy()
    n = samples_for_frames(frames)
    return np.stack([fit_length(wv, n) for wv in wavs]), mels.cpu().numpy(), x.cpu()


@torch.no_grad()
def generate(model: LDMModel, prompts: list[str], seeds: list[int], opts: GenerateOptions,
             on_step: Callable[[], None] | None = None) -> list[Generated]:
    """One sample per (prompt, seed) pair, in batches of opts.batch_size. A prompt with order words
    ("A, then B") is sampled part by part and joined (maa.infer.temporal), unless opts.compose is off."""
    opts.check()
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    for p in prompts:
        if not str(p).strip():
            raise MaaError("empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
    frames = frames_for_duration(opts.duration, model.vae.factor)
    length = samples_for_frames(frames)
    parts, jobs, overlaps = _layout(prompts, seeds, opts, model.vae.factor)
    done: dict[tuple[int, int], tuple] = {}
    for batch in _batches(jobs, opts.batch_size):
        for j, *result in zip(batch, *_sample(model, batch, opts, on_step)):
            done[j.index, j.part] = result
    keep_input = opts.init_audio is not None and not _timesteps(opts, model.ac)  # strength ~0: nothing to change
    out = []
    for i, (prompt, seed, q) in enumerate(zip(prompts, seeds, parts)):
        got = [done[i, k] for k in range(len(q))]
        if len(q) == 1:
            audio, mel, z = got[0]
        else:  # the parts end to end; the mel (for --png) crossfaded the same way, linearly
            audio = join([g[0] for g in got], length, overlaps[i])
            mel = join([g[1] for g in got], frames, _frames_of(overlaps[i]), equal_power=False)
            z = torch.cat([g[2] for g in got], dim=-1)
        if keep_input:
            audio = fit_length(np.asarray(opts.init_audio, np.float32), length)
        out.append(Generated(audio.astype(np.float32), mel, z, prompt, int(seed), q if len(q) > 1 else None))
    return out


def sampler_calls(opts: GenerateOptions, prompts: list[str], factor: int = 8) -> int:
    """Progress-bar total: sampler steps over all batches (a split prompt samples each part)."""
    ts = _timesteps(opts, alphas_cumprod(DiffusionConfig()))
    _, jobs, _ = _layout(prompts, list(range(len(prompts))), opts, factor)
    return len(ts) * len(_batches(jobs, opts.batch_size))

