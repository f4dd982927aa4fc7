"""Multi-window discriminator (Make-An-Audio's adversarial critic for the spectrogram VAE).

Several small 2-D conv discriminators, each looking at a random crop of a different number of
frames (32, 64 and 128 by default) over all mel bins, so together they judge texture at several
time scales. Each is three stride-2 3x3 conv blocks (LeakyReLU 0.2, dropout, optional spectral
norm) and a 3x3 conv head that gives a logit per patch; losses average over patches, which lets
one discriminator accept any crop width (the paper's linear head fixes the width). A window
longer than the mel is cut to the mel's length.

Real and fake mels are cropped at the same positions in one call, so feature matching compares
like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from maa.core.config import ConfigMixin, Range
from maa.models.vocos import VocoderConfig


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's sub-discriminator: the waveform folded into (T/p, p), convs along time only.

    A (k, 1) Conv2d over (B, C, T/p, p) is a Conv1d over (B*p, C, T/p); the Conv1d form is
    the same function and several times faster on CPU.
    """

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv1d(chans[i], chans[i + 1], 5, 3, padding=2)) for i in range(len(channels))]
            + [weight_norm(nn.Conv1d(chans[-1], chans[-1], 5, 1, padding=2))])
        self.post = weight_norm(nn.Conv1d(chans[-1], 1, 3, 1, padding=1))

    def forward(self, x):  # (B, T)
        b, t = x.shape
        p = self.period
        if t % p:
            x = F.pad(x, (0, p - t % p), mode="reflect")
        x = x.reshape(b, -1, p).transpose(1, 2).reshape(b * p, 1, -1)  # one sequence per phase
        x, fmap = _conv_stack(self.convs, self.post, x)
        return x.reshape(b, -1), fmap


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """LeakyReLU conv stack + output conv; every activation is kept for feature matching."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        fmap.append(x)
    x = post(x)
    return x, fmap + [x]


class ResolutionDiscriminator(nn.Module):
    """UnivNet/BigVGAN's sub-discriminator: 2-D convs over one STFT magnitude."""

    def __init__(self, resolution: tuple[int, int, int], channels: int):
        super().__init__()
        self.resolution = tuple(resolution)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x):  # (B, T)
        n_fft, hop, win = self.resolution
        x = stft_mag(x, n_fft, hop, win).transpose(1, 2).unsqueeze(1)  # (B, 1, frames, bins)
        x, fmap = _conv_stack(self.convs, self.post, x)
        return x.flatten(1), fmap


class MultiDiscriminator(nn.Module):
    """Several discriminators run on the same audio; returns each one's (score, features)."""
    def __init__(self, subs: list[nn.Module]):
        super().__init__()
        self.subs = nn.ModuleList(subs)

    def forward(self, x):
        return [d(x) for d in self.subs]


def multi_period(cfg: VocoderConfig) -> MultiDiscriminator:
    """The multi-period discriminator of the vocoder config."""
    return MultiDiscriminator([PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.mpd_periods])


def multi_resolution(cfg: VocoderConfig) -> MultiDiscriminator:
    """The multi-resolution (STFT) discriminator of the vocoder config."""
    return MultiDiscriminator([ResolutionDiscriminator(r, cfg.mrd_channels) for r in cfg.mrd_resolutions])


@dataclass
class DiscConfig(ConfigMixin):
    """The VAE's multi-window mel discriminator: window lengths, width, depth, spectral norm."""
    windows: tuple[int, ...] = (32, 64, 128)
    channels: int = 128
    layers: int = 3
    dropout: float = 0.25
    spectral_norm: bool = False

    limits: ClassVar[dict] = {"windows": Range(1, 4096, count=(1, 8)), "channels": Range(1, 1024),
                              "layers": Range(1, 16), "dropout": Range(0.0, 1.0)}


class WindowDiscriminator(nn.Module):
    """A conv discriminator over random time windows of one length."""
    def __init__(self, cfg: DiscConfig):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        blocks, c = [], 1
        for _ in range(cfg.layers):
            blocks.append(nn.Sequential(wrap(nn.Conv2d(c, cfg.channels, 3, stride=2, padding=1)),
                                        nn.LeakyReLU(0.2), nn.Dropout2d(cfg.dropout)))
            c = cfg.channels
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.head(x).flatten(1), feats


class MultiWindowDiscriminator(nn.Module):
    """One WindowDiscriminator per window length."""
    def __init__(self, cfg: DiscConfig = DiscConfig()):
        super().__init__()
        self.cfg = cfg
        self.discs = nn.ModuleList(WindowDiscriminator(cfg) for _ in cfg.windows)

    def starts(self, frames: int, device=None) -> list[int]:
        """A random start per window (from the global torch RNG, so training stays reproducible)."""
        out = []
        for w in self.cfg.windows:
            w = min(w, frames)
            out.append(int(torch.randint(0, frames - w + 1, (1,)).item()))
        return out

    def forward(self, *mels: torch.Tensor, starts: list[int] | None = None):
        """Score each of `mels` (B, 1, F, T): per mel, a list (one per window) of (logits, features).

        All mels are cropped at the same `starts` (drawn once per call when None).
        """
        frames = mels[0].shape[-1]
        starts = self.starts(frames) if starts is None else starts
        out = [[] for _ in mels]
        for d, w, s in zip(self.discs, self.cfg.windows, starts):
            w = min(w, frames)
            for i, m in enumerate(mels):
                out[i].append(d(m[..., s:s + w]))
        return out


def hinge_d_loss(real: list, fake: list) -> torch.Tensor:
    """Discriminator hinge loss summed over windows: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))."""
    return sum(F.relu(1.0 - lr).mean() + F.relu(1.0 + lf).mean() for (lr, _), (lf, _) in zip(real, fake))


def hinge_g_loss(fake: list) -> torch.Tensor:
    """Generator side of the hinge loss: -mean(D(G(z))) summed over windows."""
    return sum(-lf.mean() for lf, _ in fake)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between discriminator features of real (detached) and fake crops, averaged over layers."""
    terms = [F.l1_loss(ff, fr.detach()) for (_, fr_list), (_, ff_list) in zip(real, fake)
             for fr, ff in zip(fr_list, ff_list)]
    return sum(terms) / max(len(terms), 1)


def stft_mag(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| of (B, T) audio (centred, Hann) -> (B, n_fft/2+1, frames)."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)
