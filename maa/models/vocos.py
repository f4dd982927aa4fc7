"""A small neural vocoder for maa's log-mels: a Vocos-style ConvNeXt backbone + iSTFT head.

Input: log10-mels of maa.core.audio (16 kHz, 80 bins, hop 256), shape (B, 80, F).
Output: (B, F * 256) samples at 16 kHz.

Why Vocos rather than HiFi-GAN: the generator runs at the frame rate (62.5 frames/s)
and leaves the upsampling to an inverse STFT, so it costs a few percent of a HiFi-GAN of
the same quality and trains in reasonable time on a CPU.

  mel -> Conv1d(k=7) -> LayerNorm -> N x ConvNeXt block -> LayerNorm
      -> Linear(dim, n_fft + 2) -> (log-magnitude, phase) per bin -> iSTFT (n_fft 1024, hop 256)

Framing: mel frame i of maa.core.audio covers samples [i*256 - 384, i*256 + 640) of the clip
(reflect padding of 384, no centring). The iSTFT places its frame i on the same window, so
output sample t lines up with input sample t: wav[:F*256] of a clip resynthesises to itself.

Training (`VocoderTask`, plugs into maa.train.loop): a multi-period discriminator (periods
2, 3, 5, 7, 11, HiFi-GAN) and a multi-resolution spectrogram discriminator (BigVGAN's
resolutions), least-squares GAN losses, feature matching, mel L1 (x45, HiFi-GAN's weight)
and an auxiliary multi-resolution STFT loss (Parallel WaveGAN) that makes the first few
thousand CPU steps count. The discriminators can start late (`disc_start`).

Inference (`load_neural_vocoder`) can finish with a few `mel_refine` iterations: per-band
gains that pull the output's mel onto the input mel while keeping the network's phase
(config `refine`; `maa train-vocoder` stores 8). On the demo test split this is what beats
Griffin-Lim; the raw network, trained for minutes on a CPU, does not (benchmarks/bench_vocoder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.config import ConfigMixin, Range
from maa.core.errors import MaaError

VOCOS_KIND = "vocos"
WEIGHTS = "generator"  # RUN/vocoder/generator.safetensors is all inference needs


@dataclass(frozen=True)
class VocoderConfig(ConfigMixin):
    """The Vocos-style vocoder's sizes and its training losses' weights and discriminators."""

    # generator
    n_mels: int = 80
    dim: int = 256
    intermediate: int = 768
    layers: int = 8
    kernel: int = 7
    n_fft: int = 1024
    hop: int = 256
    sample_rate: int = 16000
    refine: int = 0  # mel_refine iterations applied at inference (stored in config.json; 0: raw output)
    max_log_mag: float = 7.0  # exp(7) ~ 1100: a full-scale sine peaks at 256 with a 1024 Hann window
    # discriminators (training only)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (8, 32, 64, 128)  # HiFi-GAN's (32, 128, 512, 1024) / 4-8: CPU-sized
    mrd_resolutions: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    mrd_channels: int = 8  # BigVGAN's 32 / 4
    # losses
    lambda_mel: float = 45.0
    lambda_stft: float = 2.5
    lambda_fm: float = 2.0
    lambda_adv: float = 1.0
    stft_resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    disc_start: int = 0  # steps of reconstruction-only training before the GAN losses switch on
    lr_half_life: int = 0  # steps over which the learning rate halves (0: constant)
    # data
    segment_frames: int = 32  # mel frames per training crop (32 -> 0.51 s)

    # Vocos' own sizes (dim 512-768, 8-12 layers) and HiFi-GAN's discriminators fit with room to spare
    limits: ClassVar[dict] = {
        "n_mels": Range(8, 512), "dim": Range(8, 2048), "intermediate": Range(8, 8192), "layers": Range(1, 64),
        "kernel": Range(1, 63), "n_fft": Range(16, 16384), "hop": Range(1, 4096), "sample_rate": Range(1000, 192_000),
        "refine": Range(0, 1000), "max_log_mag": Range(0.0, 30.0), "mpd_periods": Range(1, 64, count=(0, 16)),
        "mpd_channels": Range(1, 2048, count=(1, 8)), "mrd_resolutions": Range(1, 16384, count=(0, 8)),
        "mrd_channels": Range(1, 1024), "lambda_mel": Range(0.0, 1e4), "lambda_stft": Range(0.0, 1e4),
        "lambda_fm": Range(0.0, 1e4), "lambda_adv": Range(0.0, 1e4), "stft_resolutions": Range(1, 16384, count=(0, 8)),
        "disc_start": Range(0, 10**12), "lr_half_life": Range(0, 10**12), "segment_frames": Range(1, 100_000),
    }

    def check_relations(self) -> None:
        if self.kernel % 2 == 0:
            self.fail("kernel", f"{self.kernel} is even; an odd kernel keeps the frame count")
        if self.hop > self.n_fft:
            self.fail("hop", f"{self.hop} is longer than n_fft {self.n_fft}")
        for name in ("mrd_resolutions", "stft_resolutions"):
            for n_fft, hop, win in getattr(self, name):
                if win > n_fft or hop > n_fft:
                    self.fail(name, f"[{n_fft}, {hop}, {win}]: hop and window must not exceed n_fft")


PRESETS: dict[str, VocoderConfig] = {
    # tests: a few thousand parameters, trains in seconds
    "tiny": VocoderConfig(dim=32, intermediate=64, layers=2, mpd_periods=(2, 3), mpd_channels=(4, 8, 16),
                          mrd_resolutions=((512, 128, 512),), mrd_channels=4, segment_frames=16),
    # the bundled model: ~3.6 M generator parameters, ~7 MB in fp16
    "small": VocoderConfig(),
}


def preset(name: str, **overrides) -> VocoderConfig:
    """The vocoder config of a named preset, with `overrides`."""
    if name not in PRESETS:
        raise MaaError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----------------------------------------------------------------------------- generator


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time mixing) -> LayerNorm -> MLP (channel mixing), scaled residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        # small residual scale: deep stacks start close to the identity and train stably
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):  # (B, C, T)
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse STFT whose frame i covers samples [i*hop - (n_fft-hop)/2, ...), as maa.core.audio frames do.

    spec: complex (B, n_fft/2+1, F) -> (B, F*hop). Overlap-add with squared-window
    normalisation; the edges, covered by fewer frames, are normalised by what covers them.
    """
    b, _, frames = spec.shape
    x = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, F)
    full = (frames - 1) * hop + n_fft
    y = F.fold(x, output_size=(1, full), kernel_size=(1, n_fft), stride=(1, hop)).reshape(b, full)
    env = F.fold((window ** 2)[None, :, None].expand(1, n_fft, frames), output_size=(1, full),
                 kernel_size=(1, n_fft), stride=(1, hop)).reshape(1, full)
    start = (n_fft - hop) // 2
    y, env = y[:, start:start + frames * hop], env[:, start:start + frames * hop]
    return y / env.clamp(min=1e-8)


def stft_same(wav: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """The STFT that istft_same inverts: maa.core.audio's framing, (B, F*hop) -> complex (B, n_fft/2+1, F)."""
    pad = (n_fft - hop) // 2
    x = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # F*hop + 768 samples: F frames
    return torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=False, return_complex=True)


class VocosGenerator(nn.Module):
    """log-mel (B, 80, F) -> waveform (B, F * hop)."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel, padding=cfg.kernel // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            [ConvNeXtBlock(cfg.dim, cfg.intermediate, cfg.kernel, 1.0 / cfg.layers) for _ in range(cfg.layers)])
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        h = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()  # (B, n_fft+2, F)
        log_mag, phase = h.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=self.cfg.max_log_mag))
        spec = torch.polar(mag, phase)  # mag * (cos + i sin): phase wraps for free
        return istft_same(spec, self.cfg.n_fft, self.cfg.hop, self.window)

