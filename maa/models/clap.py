"""maa-clap, the small contrastive audio-text model: a CNN over log-mels and an MLP over MiniLM states."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.config import ConfigMixin, Range
from maa.core.errors import MaaError

# log10-mel values lie in about [-5, 1.5]; this maps them to about [-1.2, 1.5] before the CNN.
MEL_CENTER, MEL_SCALE = -2.0, 2.5


# ----------------------------------------------------------------------------- maa-clap model


@dataclass
class ClapConfig(ConfigMixin):
    """maa-clap's sizes: mel CNN channels, projection width, embedding size, crop length, text encoder."""
    n_mels: int = 80
    channels: tuple[int, ...] = (32, 64, 128, 256)  # one 3x3 conv + BN + ReLU + 2x2 pool per entry
    hidden: int = 512  # width of both projection MLPs
    embed_dim: int = 256  # the joint audio-text space
    text_encoder: str = "minilm"  # spec for maa.parts.text.load_text_encoder
    text_dim: int = 384  # MiniLM's sentence-embedding width
    crop_frames: int = 192  # training crop (~3 s); shorter clips are tiled up to it at inference too
    time_pool: int = 2  # average pairs of frames first: 31 frames/s is plenty for "what sound is this"
    init_temperature: float = 0.07  # CLIP's starting temperature

    limits: ClassVar[dict] = {
        "n_mels": Range(8, 512), "channels": Range(1, 2048, count=(1, 8)), "hidden": Range(1, 8192),
        "embed_dim": Range(1, 4096), "text_dim": Range(1, 8192), "crop_frames": Range(8, 100_000),
        "time_pool": Range(1, 16), "init_temperature": Range(1e-4, 1.0),
    }

    def check_relations(self) -> None:
        if self.n_mels < 2 ** len(self.channels):  # each stage halves the bins too
            self.fail("channels", f"{len(self.channels)} stages halve {self.n_mels} mel bins below one")
        shortest = self.time_pool * 2 ** len(self.channels)  # the input pool and one 2x pool per stage
        if self.crop_frames < shortest:
            self.fail("crop_frames", f"{self.crop_frames} is too short for {len(self.channels)} pooling stages; "
                                     f"at least {shortest}")


class AudioEncoder(nn.Module):
    """(B, 80, T) log10-mel -> (B, embed_dim). Fully convolutional: any T >= time_pool * 2**len(channels) works."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        blocks, c_in = [], 1
        for c in cfg.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2)]
            c_in = c
        self.pool = nn.AvgPool2d((1, cfg.time_pool)) if cfg.time_pool > 1 else nn.Identity()
        self.cnn = nn.Sequential(*blocks)
        self.proj = nn.Sequential(nn.Linear(c_in, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.cnn(self.pool(((mel - MEL_CENTER) / MEL_SCALE).unsqueeze(1)))  # (B, C, F', T')
        x = x.mean(dim=2)  # over frequency
        x = x.mean(dim=-1) + x.amax(dim=-1)  # mean keeps textures, max keeps short events
        return self.proj(x)


class TextHead(nn.Module):
    """Trainable projection of the frozen sentence embedding into the joint space."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.text_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.mlp(pooled)


class MaaClap(nn.Module):
    """Audio encoder + text head + the learned temperature (as log of the logit scale)."""

    def __init__(self, cfg: ClapConfig):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioEncoder(cfg)
        self.text = TextHead(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(mel), dim=-1)

    def embed_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(pooled), dim=-1)


def info_nce(audio: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised (B, E) audio and text embeddings.

    Row i's positive is column i; with `groups` (B,) every pair sharing a group id is a
    positive, with the target probability spread evenly over them. The scale is exp(logit_scale)
    clamped at 100, as in CLIP, so the temperature cannot collapse.
    """
    logits = logit_scale.exp().clamp(max=100.0) * audio @ text.T
    if groups is None:
        target = torch.arange(len(audio), device=audio.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    same = (groups[:, None] == groups[None, :]).to(logits.dtype)
    target = same / same.sum(dim=1, keepdim=True)  # `same` is symmetric: one target serves both ways
    loss_a = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_a + loss_t)


def fit_mel(mel: torch.Tensor, frames: int) -> torch.Tensor:
    """Tile a (80, T) mel end to end until it has at least `frames` frames (short clips fill the crop)."""
    t = mel.shape[-1]
    if t >= frames:
        return mel
    return mel.repeat(1, -(-frames // t))[:, :frames]


class TextCache:
    """Embeddings of strings already seen: caption candidates and class prompts repeat a lot."""

    def __init__(self, embed, limit: int = 100_000):
        self.embed, self.limit, self.store = embed, limit, {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = [str(t) for t in texts]
        new = list(dict.fromkeys(t for t in texts if t not in self.store))
        if new:
            if len(self.store) + len(new) > self.limit:
                self.store.clear()
            for t, e in zip(new, self.embed(new)):
                self.store[t] = e
        if not texts:
            return torch.zeros(0, 0)
        return torch.stack([self.store[t] for t in texts])


def check_pairs(wavs, texts) -> None:
    """Refuse a (clips, texts) pair list whose lengths differ."""
    if len(wavs) != len(texts):
        raise MaaError(f"similarity: {len(wavs)} clips but {len(texts)} texts; pass one text per clip")
