"""Log-mel -> waveform: one callable interface, two implementations; and the mel domain a model
folder decodes to, which decides what its vocoder is fed (`for_domain`, `to_model_domain`, below).

    voc = load_vocoder(model_dir, device)   # neural vocoder in model_dir/vocoder/ if there, else Griffin-Lim
    wav = voc(mel)                          # (B, 80, F) log10-mels -> (B, F * 256) samples at 16 kHz

Griffin-Lim (fast variant, Perraudin et al. 2013, momentum 0.99) in torch, so it runs batched
on the GPU: the magnitude comes from the mel's least-squares inverse (maa.core.audio.mel_to_linear),
the phase from alternating projections. Framing matches maa.core.audio: mel frame i is the window
[i*256 - 384, i*256 + 640), centred on sample i*256 + 128, and F frames give F * 256 samples
(like the neural vocoder in maa.models.vocos, so the two are interchangeable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import LOG_FLOOR, MelConfig, as_mel_batch, mel_basis, mel_to_linear
from maa.core.checkpoint import load_weights, mmap_safetensors, parse_config, uninitialized
from maa.core.errors import MaaError, warn
from maa.core.progress import staged
from maa.models.vocos import (
    VOCOS_KIND,
    WEIGHTS,
    VocoderConfig,
    VocosGenerator,
    istft_same,
    stft_same,
)
from maa.parts.registry import Registry


def load_bigvgan(path: str | Path, device: str | torch.device = "cpu", refine: int | None = None):
    """Build BigVGAN from `path`/args.yml and load `path`/best_netG.pt -> a NeuralVocoder (`refine` mel_refine passes)."""
    from maa.models.bigvgan import WEIGHT_NAMES, bigvgan_from_state, read_bigvgan_config  # noqa: PLC0415  BigVGAN's module only for BigVGAN folders: a Vocos or Griffin-Lim model never enters it

    path = Path(path)
    cfg = read_bigvgan_config(path)
    weights = next((path / n for n in WEIGHT_NAMES if (path / n).exists()), None)
    if weights is None:
        raise MaaError(f"{path}: no generator weights ({' or '.join(WEIGHT_NAMES)})")
    try:
        if weights.suffix == ".safetensors":
            ckpt = mmap_safetensors(weights)
        else:
            ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MaaError(f"{weights}: cannot read ({str(e).splitlines()[0][:160]}); "
                       "want a state dict saved with torch.save") from None
    state = ckpt.get("generator", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MaaError(f"{weights}: no generator state dict (expected a dict with key 'generator')")
    model = bigvgan_from_state(cfg, state, weights).to(device)
    return NeuralVocoder(model, "bigvgan", {"kind": "bigvgan", "bigvgan": cfg.to_dict(), "weights": str(weights)},
                         torch.device(device), hop=256, sample_rate=cfg.sampling_rate, refine=refine or 0)


def mel_refine(wav: torch.Tensor, log_mel_target: torch.Tensor, iters: int, cfg: MelConfig = MEL) -> torch.Tensor:
    """Pull a waveform's mel onto the target mel, keeping its phase and fine spectral structure.

    Each iteration measures the mel of `wav` in maa.core.audio's framing, turns the per-band ratio
    target / measured into per-bin gains (the filterbank-weighted mean of the band ratios),
    scales the STFT and inverts it. A Griffin-Lim-like projection, but started from the
    neural vocoder's coherent phase and harmonic detail rather than from noise and the
    pseudo-inverse magnitude.
    """
    basis = mel_basis(cfg, wav.device, wav.dtype)  # (80, bins)
    weight = basis.sum(0)  # bins no band covers keep their gain of 1
    target = torch.pow(10.0, log_mel_target.to(wav.dtype))
    window = torch.hann_window(cfg.n_fft, device=wav.device, dtype=wav.dtype)
    for _ in range(iters):
        spec = stft_same(wav, cfg.n_fft, cfg.hop_length, window)
        measured = torch.matmul(basis, spec.abs()).clamp(min=LOG_FLOOR)
        ratio = target[..., :spec.shape[-1]] / measured
        gain = torch.matmul(basis.T, ratio) / weight.clamp(min=1e-12)[:, None]
        gain = torch.where(weight[:, None] > 1e-12, gain, torch.ones_like(gain))
        wav = istft_same(spec * gain, cfg.n_fft, cfg.hop_length, window)
    return wav


class NeuralVocoder:
    """Callable: log-mel (B, 80, F) or (80, F) -> waveform (B, F*256) or (F*256,), float32 in [-1, 1].

    `refine` > 0 runs that many mel_refine iterations on the output (off by default).
    """

    def __init__(self, model: nn.Module, kind: str, config: dict, device: torch.device, hop: int = 256,
                 sample_rate: int = 16000, refine: int = 0):
        self.model, self.kind, self.config, self.device = model.eval(), kind, config, device
        self.hop, self.sample_rate, self.refine = hop, sample_rate, refine

    @staged("vocoder")
    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        mel, squeeze = as_mel_batch(mel, self.device)
        wav = self.model(mel).float().reshape(mel.shape[0], -1)
        if self.refine > 0:
            wav = mel_refine(wav, mel, self.refine)
        wav = wav.clamp(-1.0, 1.0)
        return wav[0] if squeeze else wav


def resolve_vocoder_dir(path: str | Path) -> Path:
    """A vocoder folder itself, or a model/run folder that holds vocoder/."""
    path = Path(path)
    if (path / "vocoder" / "config.json").exists():
        return path / "vocoder"
    return path


def load_neural_vocoder(path: str | Path, device: str | torch.device = "cpu", refine: int | None = None) -> NeuralVocoder:
    """Load a vocoder folder written by `maa train-vocoder` (RUN/vocoder/ or RUN), or an official
    BigVGAN folder (best_netG.pt + args.yml / config.json). Weights may be float16 or float32.

    Returns a NeuralVocoder: call it with log-mels (B, 80, F) to get (B, F*256) audio;
    `.kind` ("vocos" or "bigvgan"), `.config`, `.sample_rate`, `.hop` describe it.
    `refine`: mel_refine iterations on the output; None takes the folder's config value.
    """
    d = resolve_vocoder_dir(path)
    if not d.is_dir():
        raise MaaError(f"{d}: no such vocoder folder; pass RUN/vocoder (from `maa train-vocoder`) or a BigVGAN folder")
    entry = VOCODERS.claimant(str(d))
    if entry is None:
        raise MaaError(f"{d}: no config.json; pass a folder written by `maa train-vocoder` or a BigVGAN folder "
                       "(best_netG.pt + args.yml)")
    return entry.load(str(d), device=torch.device(device), refine=refine)


def load_vocos(path: str | Path, device: str | torch.device = "cpu", refine: int | None = None) -> NeuralVocoder:
    """A folder `maa train-vocoder` wrote (config.json of kind vocos + weights); `refine` None: the config's."""
    device = torch.device(device)
    cfg_path = Path(path) / "config.json"
    meta = parse_config(cfg_path)
    if meta.get("kind") != VOCOS_KIND:
        raise MaaError(f"{cfg_path}: kind {meta.get('kind')!r} is not a vocoder; pass the vocoder/ folder of a run")
    cfg = VocoderConfig.from_dict(meta["vocoder"])
    mel_cfg = meta.get("mel", MEL.to_dict())
    if MelConfig.from_dict(mel_cfg) != MEL:
        raise MaaError(f"{cfg_path}: trained on a different mel ({mel_cfg}); maa uses {MEL.to_dict()}")
    with uninitialized():  # loaded strictly below: no random init to draw
        gen = VocosGenerator(cfg).to(device)
    load_weights(Path(path), {WEIGHTS: gen}, mmap=True)
    return NeuralVocoder(gen, VOCOS_KIND, meta, device, cfg.hop, cfg.sample_rate, cfg.refine if refine is None else refine)


class GriffinLim:
    """Callable: log-mel (B, 80, F) -> waveform by fast Griffin-Lim (no weights; the fallback vocoder)."""

    kind = "griffin-lim"

    def __init__(self, n_iter: int = 32, momentum: float = 0.99, device: str | torch.device = "cpu",
                 cfg: MelConfig = MEL, seed: int = 0):
        self.n_iter, self.momentum, self.cfg, self.seed = n_iter, momentum, cfg, seed
        self.device = torch.device(device)
        self.sample_rate, self.hop = cfg.sample_rate, cfg.hop_length

    def _stft(self, x, window):
        c = self.cfg
        return torch.stft(x, c.n_fft, c.hop_length, c.win_length, window, center=True, return_complex=True)

    def _istft(self, spec, window, length):
        c = self.cfg
        return torch.istft(spec, c.n_fft, c.hop_length, c.win_length, window, center=True, length=length)

    @staged("vocoder")
    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        mel, squeeze = as_mel_batch(mel, self.device)
        c, frames = self.cfg, mel.shape[-1]
        mag = mel_to_linear(mel, c)  # (B, n_fft/2 + 1, F)
        window = torch.hann_window(c.win_length, device=self.device)
        length = frames * c.hop_length
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        angles = torch.polar(torch.ones(mag.shape), 2 * np.pi * torch.rand(mag.shape, generator=g)).to(self.device)
        prev = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            rebuilt = self._stft(self._istft(mag * angles, window, length), window)[..., :frames]
            t = rebuilt - (self.momentum / (1 + self.momentum)) * prev  # fast GLA, as parametrised in torchaudio
            angles = t / t.abs().clamp(min=1e-16)
            prev = rebuilt
        wav = self._istft(mag * angles, window, length)
        # centre of frame i: i*hop here, i*hop + (win - 2*pad)/2 = i*hop + 128 in maa.core.audio's framing
        shift = c.win_length // 2 - c.pad
        wav = F.pad(wav, (shift, 0))[..., :length].clamp(-1.0, 1.0)
        return wav[0] if squeeze else wav


def _config_kind(folder: str | Path) -> str | None:
    """The "kind" of folder/config.json, or None when there is none (or it is not a JSON object)."""
    try:
        meta = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


def _is_bigvgan_dir(folder: str | Path) -> bool:
    """Whether `folder` holds official BigVGAN weights and config (maa.models.bigvgan.is_bigvgan_dir)."""
    if not Path(folder).is_dir():
        return False
    from maa.models.bigvgan import is_bigvgan_dir  # noqa: PLC0415  BigVGAN's module only for BigVGAN folders: a Vocos or Griffin-Lim model never enters it

    return is_bigvgan_dir(Path(folder))


# The kinds of vocoder: spec prefix -> loader (maa.parts.registry). A folder is claimed by the
# first kind that recognises it: vocos by its config.json's kind (an official BigVGAN folder may hold a
# config.json of its own), then BigVGAN by its file names.
VOCODERS = Registry("vocoder")
VOCODERS.register("vocos", load_vocos, arg="DIR",  # another config.json: load_vocos names its wrong kind
                  claims=lambda t: _config_kind(t) == VOCOS_KIND or (Path(t, "config.json").exists() and not _is_bigvgan_dir(t)),
                  help="a folder `maa train-vocoder` wrote")
VOCODERS.register("bigvgan", load_bigvgan, arg="DIR", claims=lambda t: _is_bigvgan_dir(t),
                  help="an official BigVGAN folder (best_netG.pt + args.yml / config.json)")
VOCODERS.register("griffin-lim", lambda device="cpu", refine=None: GriffinLim(device=device), arg=None,
                  help="fast Griffin-Lim, no weights")


def has_neural_vocoder(model_dir: str | Path | None) -> bool:
    """Whether model_dir/vocoder/ is a vocoder folder: `maa train-vocoder`'s or an official BigVGAN's."""
    if model_dir is None:
        return False
    return VOCODERS.claimant(str(Path(model_dir) / "vocoder")) is not None


def unused_vocoder_reason(model_dir: str | Path | None) -> str | None:
    """Why a model_dir/vocoder/ that exists is no vocoder (None when there is none, or it is one)."""
    if model_dir is None or not (Path(model_dir) / "vocoder").is_dir() or has_neural_vocoder(model_dir):
        return None
    d = Path(model_dir) / "vocoder"
    held = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    from maa.models.bigvgan import CONFIG_NAMES, WEIGHT_NAMES  # noqa: PLC0415  BigVGAN's module only for BigVGAN folders: a Vocos or Griffin-Lim model never enters it

    if any((d / n).exists() for n in CONFIG_NAMES):
        lacks = f"no generator weights ({', '.join(WEIGHT_NAMES)})"
    else:
        lacks = "no config.json (from `maa train-vocoder`) and no BigVGAN args.yml"
    return (f"{d}: not used as the vocoder, Griffin-Lim instead (lower quality): it holds "
            f"{', '.join(held[:5]) or 'nothing'}{' ...' if len(held) > 5 else ''} but {lacks}")


def load_vocoder(model_dir: str | Path | None = None, device: str | torch.device = "cpu", gl_iters: int = 32):
    """The neural vocoder stored in model_dir/vocoder/ if there is one, else Griffin-Lim (with a
    warning saying why when vocoder/ exists but holds no usable vocoder).

    Both are callables mapping log-mels (B, 80, F) to (B, F * 256) waveforms with `.kind`,
    `.sample_rate` and `.hop`.
    """
    if has_neural_vocoder(model_dir):
        return load_neural_vocoder(Path(model_dir) / "vocoder", device)
    reason = unused_vocoder_reason(model_dir)
    if reason:
        warn(reason)
    return GriffinLim(n_iter=gl_iters, device=device)


# -- mel domains: what a model folder decodes to, and what its vocoder is fed ----------------------
#
# Mel domains of model folders, and the vocoder each one needs.
#
# maa's own models and the official v1 release decode to log10 mels (maa.core.audio). AudioGPT's
# Make-An-Audio models (ta40multi text-to-audio, image-to-audio, inpaint7) decode to the
# normalised-dB mel mapped to [-1, 1]: mel01 = clip((20 log10(max(mag, 1e-5)) - 20 + 100) / 100, 0, 1),
# x = 2 mel01 - 1 (AudioGPT's TRANSFORMS_16000), and hand the vocoder clamp((x + 1) / 2, 0, 1).
# ldm/config.json's "mel_domain" says which ("log10" when absent).
#
# Between the two: log10(mag) = 5 mel01 - 4 = 2.5 x - 1.5 (inside the clip range), which is what
# Griffin-Lim (it inverts log10 mels) gets for a normalised-dB model.

LOG10, NORMDB = "log10", "normdb"


def _check(domain: str | None) -> None:
    if domain not in (None, LOG10, NORMDB):
        raise MaaError(f"ldm/config.json: mel_domain {domain!r} is unknown; want {LOG10!r} or {NORMDB!r}")


def normdb_to_log10(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] normalised-dB mel -> log10 magnitude mel (clipped like the official vocoder input)."""
    return 2.5 * x.clamp(-1.0, 1.0) - 1.5


def log10_to_normdb(mel: torch.Tensor) -> torch.Tensor:
    """log10 magnitude mel -> the [-1, 1] normalised-dB mel (the clip of TRANSFORMS_16000 included)."""
    return ((mel + 4.0) / 2.5 - 1.0).clamp(-1.0, 1.0)


class DomainVocoder:
    """A vocoder fed from a normalised-dB model: the neural vocoder gets clamp((x+1)/2, 0, 1) (what
    the official BigVGAN takes), Griffin-Lim the equivalent log10 mel. Attributes pass through."""

    def __init__(self, inner, domain: str):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "domain", domain)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)

    def __call__(self, mel):
        mel = torch.as_tensor(mel)
        if getattr(self._inner, "kind", None) == "griffin-lim":
            return self._inner(normdb_to_log10(mel))
        return self._inner(((mel + 1.0) / 2.0).clamp(0.0, 1.0))


def for_domain(vocoder, domain: str | None):
    """The vocoder as a model of `domain` needs it (unchanged for log10)."""
    _check(domain)
    return vocoder if domain in (None, LOG10) else DomainVocoder(vocoder, domain)


def to_model_domain(log10_mel: torch.Tensor, domain: str | None) -> torch.Tensor:
    """maa's log10 mel of an input clip (audio-to-audio, inpainting) in the domain the model's VAE takes."""
    _check(domain)
    return log10_mel if domain in (None, LOG10) else log10_to_normdb(log10_mel)
