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

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DiscConfig:
    windows: tuple[int, ...] = (32, 64, 128)
    channels: int = 128
    layers: int = 3
    dropout: float = 0.25
    spectral_norm: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DiscConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class WindowDiscriminator(nn.Module):
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
