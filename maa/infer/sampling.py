"""The one sampler entry point of generation, the one VAE encode and decode, and the CUDA fast
path those calls run through (`FastPath`, `accelerate`: see the section below).

Every mode samples through `sample(model, conditions, noise, opts, known=None, on_step=None)`:
plain clips and the parts of an "A, then B" prompt (a batch of rows), audio-to-audio (`known` =
the init latent, no mask: the SDEdit start), inpainting and long form (`known` with a `keep`
mask over time: the held-known region), and a joint timeline (`Regions`: one prompt per stretch
of one latent). The denoiser it runs is built here only (`denoiser`), in the style of
k-diffusion's model wrappers: the UNet as an eps predictor (maa.models.diffusion.model_denoiser),
classifier-free guidance against opts.negative (`guided`), masks over time (`regional`), and
the known-region hold around the sampler (`hold_known`).

    z = sample(model, ["a dog barks"], seeded_noise(shape, 0)[None], opts, seed=0)
    mels, wavs = decode(model, z, frames)

`model` is anything with unet, vae, text, vocoder, dcfg, ac and device (maa.infer.pipeline.Pipeline).
`opts` is anything with steps, sampler, guidance, negative and eta (and strength, for audio-to-audio).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from maa.core.audio import fit_length, mel_spectrogram, samples_for_frames
from maa.core.errors import MaaError
from maa.infer.loop import circular
from maa.models.diffusion import (
    SAMPLERS,
    end_alpha,
    guided,
    hold_known,
    model_denoiser,
    regional,
    schedule,
    sdedit_timesteps,
)
from maa.parts.vocoders import to_model_domain

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
    the latent's time axis (maa.models.diffusion.regional)."""
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


# -- the CUDA fast path ---------------------------------------------------------------------------
#
# The CUDA fast path of generation: bf16 autocast, torch.compile (CUDA graphs for the UNet), static
# shapes, channels-last. On by default on CUDA, off on the CPU, where generation stays bit-identical
# to the plain modules (`accelerate` then changes nothing).
#
#     fp = FastPath.for_device(device, compile=False)     # flags left None take the device default
#     accelerate(model, fp)                               # wraps model.unet, model.vae.decoder, vocoder
#     ... generate ...; fp.report()                       # first-call (compile) seconds per module
#
# Why each piece (a 10 s clip at the paper's size is ~12 TFLOP for 25 guided steps, ~16 ms of
# H100 math, so at batch 1 launches and Python dominate):
#   * bf16 autocast: tensor-core matmuls/convs and flash attention; the sampler state stays fp32
#     (the wrapper returns fp32), so the ODE solver's arithmetic is not rounded to bf16.
#   * torch.compile: fused kernels; mode "reduce-overhead" records the UNet into CUDA graphs,
#     replayed every step with one launch. The graphs need static shapes, so the text tokens are
#     padded to the encoder's max_length (mask False: the attention is unchanged) and one graph
#     exists per (batch, latent) shape. Compiled kernels are cached on disk
#     (TORCHINDUCTOR_CACHE_DIR, default ~/.cache/maa/torchinductor) so later calls skip most of
#     the compile time; the first call's time per shape is recorded separately (`report`).
#   * channels-last: NHWC convolutions (cuDNN's fast layout); opt-in, bench_gpu.py measures it.
#   * no host-device syncs per step: the wrapper reads nothing back; the samplers take their
#     alphas from the CPU schedule as Python floats.

@dataclass
class FastPath:
    """Which GPU fast paths are on: bf16 autocast, torch.compile, CUDA graphs."""
    bf16: bool = False
    compile: bool = False
    cuda_graphs: bool = False  # with compile: the UNet as CUDA graphs (static shapes)
    channels_last: bool = False
    max_length: int = 77  # text tokens padded to this many for static shapes (with compile)
    first_call_s: dict[str, float] = field(default_factory=dict)  # module -> first-call seconds (compile + run)

    @classmethod
    def for_device(cls, device: str | torch.device, bf16: bool | None = None, compile: bool | None = None,
                   cuda_graphs: bool | None = None, channels_last: bool | None = None, max_length: int = 77) -> "FastPath":
        """Flags left None: on for CUDA (channels-last: off), off elsewhere."""
        cuda = torch.device(device).type == "cuda"
        pick = lambda v, default: default if v is None else bool(v)
        c = pick(compile, cuda)
        return cls(bf16=pick(bf16, cuda) and cuda, compile=c, cuda_graphs=pick(cuda_graphs, cuda) and c and cuda,
                   channels_last=pick(channels_last, False), max_length=max_length)

    @classmethod
    def parse(cls, spec: str | None, device: str | torch.device, max_length: int = 77) -> "FastPath":
        """`--fast`: "auto" (the device default), "off", names to turn on ("bf16,compile,graphs,channels-last")
        or names to turn off from the default ("no-graphs", "no-bf16,no-compile")."""
        spec = (spec or "auto").strip().lower()
        names = {"bf16": "bf16", "compile": "compile", "graphs": "cuda_graphs", "cuda-graphs": "cuda_graphs",
                 "channels-last": "channels_last"}
        tokens = [t.strip() for t in spec.replace("+", ",").split(",") if t.strip()]
        if tokens in (["auto"], []):
            return cls.for_device(device, max_length=max_length)
        if tokens in (["off"], ["none"]):
            return cls(max_length=max_length)
        negative = all(t.startswith("no-") for t in tokens)
        base = cls.for_device(device, max_length=max_length) if negative else cls(max_length=max_length)
        for t in tokens:
            key = names.get(t[3:] if negative else t)
            if key is None or (t.startswith("no-") != negative):
                raise MaaError(f"--fast {spec!r}: want auto, off, names from {', '.join(sorted(set(names) - {'cuda-graphs'}))} "
                               "or the same names with no- (e.g. --fast no-graphs)")
            setattr(base, key, not negative)
        if negative and not base.compile:
            base.cuda_graphs = False  # graphs come with compile
        cuda = torch.device(device).type == "cuda"
        if base.bf16 and not cuda:
            raise MaaError(f"--fast {spec}: bf16 autocast is for CUDA only (on the CPU it would change the audio)")
        if base.cuda_graphs and not (cuda and base.compile):
            raise MaaError(f"--fast {spec}: CUDA graphs need CUDA and compile")
        return base

    def flags(self) -> tuple:
        return self.bf16, self.compile, self.cuda_graphs, self.channels_last

    @property
    def active(self) -> bool:
        return self.bf16 or self.compile or self.channels_last

    def describe(self) -> str:
        on = [n for n, v in (("bf16", self.bf16), ("compile", self.compile), ("cuda-graphs", self.cuda_graphs),
                             ("channels-last", self.channels_last)) if v]
        return "+".join(on) or "eager fp32"

    def report(self) -> str:
        """`unet 41.2 s, vae-decoder 12.0 s`: the first call of each compiled module and shape."""
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.first_call_s.items())


def autocast(device: torch.device | str, enabled: bool):
    """bf16 autocast on CUDA when enabled; a null context otherwise (CPU autocast would change results)."""
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cache_dir() -> None:
    """Persistent inductor cache, unless the user chose one."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "maa" / "torchinductor"))


class Fast(nn.Module):
    """A module run through the fast path: autocast, compile, channels-last, fp32 out.

    `name` keys the first-call times in `fp.first_call_s` (one entry per input shape).
    `graphs`: CUDA graphs (torch.compile mode "reduce-overhead"); each output is cloned, since a
    graph's output buffer is overwritten by the next replay while a sampler may keep it.
    """

    def __init__(self, module: nn.Module, fp: FastPath, name: str, graphs: bool = False, bf16: bool | None = None):
        super().__init__()
        self.inner, self.fp, self.name = module, fp, name
        self.bf16 = fp.bf16 if bf16 is None else bf16
        self.graphs = graphs and fp.cuda_graphs
        if fp.channels_last:
            module.to(memory_format=torch.channels_last)
        run = module
        if fp.compile:
            _cache_dir()
            run = torch.compile(module, mode="reduce-overhead" if self.graphs else None, dynamic=False)
        object.__setattr__(self, "run", run)  # not a submodule: the parameters stay listed once, under inner
        self._seen: set = set()

    def __getattr__(self, name):  # cfg, factor, ... of the wrapped module
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, x, *args):
        if self.fp.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        key = (tuple(x.shape), *(tuple(a.shape) for a in args if isinstance(a, torch.Tensor)))
        first = self.fp.compile and key not in self._seen
        if first:
            torch.cuda.synchronize() if x.is_cuda else None
            t0 = time.perf_counter()
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(x.device, self.bf16):
            out = self.run(x, *args)
        out = out.float() if out.dtype != torch.float32 else (out.clone() if self.graphs else out)
        if first:
            torch.cuda.synchronize() if x.is_cuda else None
            self._seen.add(key)
            label = self.name if len(self._seen) == 1 else f"{self.name} {list(key[0])}"
            self.fp.first_call_s[label] = time.perf_counter() - t0
        return out


class FastUNet(Fast):
    """The UNet through the fast path, with the text tokens padded to fp.max_length when compiled
    (static shapes: one graph for every prompt length; padded keys are masked, so equal results)."""

    def __init__(self, module: nn.Module, fp: FastPath, name: str = "unet", graphs: bool = True):
        super().__init__(module, fp, name, graphs=graphs)
        self.pad_tokens = fp.compile  # only compiled graphs need one token length

    def forward(self, x, t, context, mask=None):
        if self.pad_tokens and context.shape[1] < self.fp.max_length:
            pad = self.fp.max_length - context.shape[1]
            context = torch.nn.functional.pad(context, (0, 0, 0, pad))
            if mask is None:
                mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
                mask[:, -pad:] = False
            else:
                mask = torch.nn.functional.pad(mask, (0, pad), value=False)
        return super().forward(x, t.expand(x.shape[0]) if t.dim() == 0 else t, context, mask)


def accelerate(model, fp: FastPath):
    """Wrap a loaded maa.infer.pipeline.Pipeline's UNet, VAE decoder and neural vocoder in place.
    A no-op when no flag is on (the CPU default). Returns the model."""
    if not fp.active or getattr(model, "fast", None) is not None:
        return model
    if torch.device(getattr(model, "device", "cpu")).type == "cuda":
        torch.backends.cudnn.benchmark = True  # static shapes: each conv's fastest kernel is chosen once
    model.unet = FastUNet(model.unet, fp, "unet", graphs=True)
    model.vae.decoder = Fast(model.vae.decoder, fp, "vae-decoder")
    voc = getattr(model.vocoder, "model", None)
    if isinstance(voc, nn.Module):
        # Vocos ends in an inverse STFT, which cuFFT cannot run in bf16: only BigVGAN gets autocast
        model.vocoder.model = Fast(voc, fp, "vocoder", bf16=fp.bf16 and model.vocoder.kind == "bigvgan")
    model.fast = fp
    return model


def ensure(model, fp: FastPath):
    """`accelerate` unless the model already runs exactly these flags (then its compiled graphs are kept)."""
    cur = getattr(model, "fast", None)
    if cur is not None and cur.flags() == fp.flags():
        return model
    restore(model)
    return accelerate(model, fp)


def restore(model):
    """Undo `accelerate`: the plain modules back in place (benchmarks compare paths on one model)."""
    if getattr(model, "fast", None) is None:
        return model
    for m in (model.unet, model.vae.decoder, getattr(model.vocoder, "model", None)):
        if isinstance(m, Fast) and m.fp.channels_last:
            m.inner.to(memory_format=torch.contiguous_format)
    model.unet = model.unet.inner
    model.vae.decoder = model.vae.decoder.inner
    if isinstance(getattr(model.vocoder, "model", None), Fast):
        model.vocoder.model = model.vocoder.model.inner
    model.fast = None
    return model
