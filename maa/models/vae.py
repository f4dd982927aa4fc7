"""Spectrogram VAE (Make-An-Audio's first stage): a log-mel (1 x 80 x T) <-> a latent z (C x 10 x T/8).

Shape: latent-diffusion's KL autoencoder applied to the mel as a one-channel image. The encoder
is conv_in, then per level `num_res_blocks` ResNet blocks (plus self-attention on the levels in
`attn_levels`) and a stride-2 conv (not after the last level), then a middle ResNet-attention-
ResNet, GroupNorm, SiLU and a conv to 2*C channels (mean and log-variance of a diagonal Gaussian).
The decoder mirrors it with nearest-neighbour upsampling. Four levels give 8x downsampling in
both axes: 80 x 624 -> 4 x 10 x 78 (base, as in the paper).

Input scaling: mels (log10 magnitude, about [-5, 1.5]) are mapped to about [-1, 1] by a fixed
affine map before the encoder and back after the decoder, so losses are in log-mel units.

The official Make-An-Audio VAE (`maa convert`) differs in three config fields: no affine
(mel_center 0, mel_scale 1: it takes raw log10 mels), right/bottom-only padding before each
stride-2 conv (down_pad "right"), and 1x1 `quant_conv`/`post_quant_conv` around the latent.

Length rules: the frame count must be a multiple of 8 for `encode`/`decode`; `encode_mel`
right-pads any other length with silence (-5, the log floor) up to the next multiple of 8, and
`reconstruct` crops the decoded mel back to the input's length. The 80 bins are fixed by the
config (n_mels must be divisible by 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.audio import MEL_MIN
from maa.core.checkpoint import load_weights, read_config, uninitialized
from maa.core.config import ConfigMixin, OneOf, Range
from maa.core.errors import MaaError
from maa.core.progress import staged

MEL_CENTER, MEL_SCALE = -1.75, 3.25  # [-5, 1.5] -> [-1, 1]


@dataclass
class VAEConfig(ConfigMixin):
    """The spectrogram VAE's sizes: channels, multipliers, residual blocks, latent channels."""
    n_mels: int = 80
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 4)  # len - 1 downsamplings: 4 levels -> 8x
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)  # levels with self-attention (the middle block always has one)
    z_channels: int = 4
    norm_groups: int = 32
    dropout: float = 0.0
    # Options for the official Make-An-Audio VAE (maa convert); the defaults are maa's own VAE.
    mel_center: float = MEL_CENTER  # encoder input (mel - center) / scale, decoder output inverted; official 0, 1
    mel_scale: float = MEL_SCALE
    down_pad: str = "same"  # stride-2 convs: "same" pads 1 on every side, "right" pads right/bottom only (official)
    quant_conv: bool = False  # 1x1 convs after the encoder and before the decoder (official)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    # Checked before anything is built; the ranges hold the paper's / official VAE (ch 128, mult
    # 1-2-2-4, 2 blocks, 512 channels at the widest) with room to spare.
    limits: ClassVar[dict] = {
        "n_mels": Range(8, 512), "ch": Range(4, 512), "ch_mult": Range(1, 8, count=(1, 6)),
        "num_res_blocks": Range(1, 8), "attn_levels": Range(0, 5, count=(0, 6)), "z_channels": Range(1, 64),
        "norm_groups": Range(1, 128), "dropout": Range(0.0, 1.0), "mel_center": Range(-100.0, 100.0),
        "mel_scale": Range(1e-3, 1e3), "down_pad": OneOf("same", "right"),
    }
    max_width: ClassVar[int] = 2048  # ch x the largest mult (official: 512)

    def check_relations(self) -> None:
        widest = self.ch * max(self.ch_mult)
        if widest > self.max_width:
            self.fail("ch_mult", f"{list(self.ch_mult)} x ch {self.ch} gives {widest} channels at the widest level; "
                                 f"at most {self.max_width}")
        if self.n_mels % self.factor:
            self.fail("n_mels", f"{self.n_mels} is not divisible by the downsampling factor {self.factor} "
                                f"({len(self.ch_mult)} levels)")


PRESETS: dict[str, VAEConfig] = {
    # CPU tests: 0.25 M parameters
    "tiny": VAEConfig(ch=8, ch_mult=(1, 2, 4, 4), num_res_blocks=1, attn_levels=(), norm_groups=8),
    # the bundled model: 2.9 M parameters (5.8 MB in fp16). Narrow at full resolution, where CPU
    # time goes, and wide at 1/8, where parameters are cheap to run.
    "small": VAEConfig(ch=16, ch_mult=(1, 2, 4, 8), num_res_blocks=1, attn_levels=(3,), norm_groups=8),
    # the paper's autoencoder: ch 128, mult 1-2-2-4, 2 blocks, attention at widths 156 and 78 (69 M)
    "base": VAEConfig(),
}


def preset(name: str) -> VAEConfig:
    """The VAE config of a named preset."""
    if name not in PRESETS:
        raise MaaError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    c = PRESETS[name]
    return VAEConfig.from_dict(c.to_dict())


# ----------------------------------------------------------------------------- blocks


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c, eps=1e-6)


class ResBlock(nn.Module):
    """A residual block: GroupNorm, SiLU, conv, twice, with a 1x1 shortcut when widths differ."""
    def __init__(self, cin: int, cout: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over all (freq, time) positions."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = _norm(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        if q.is_cuda:  # the fused (flash / memory-efficient) kernels take only (b, heads, L, d); 3-D runs the O(L^2) math one
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        else:  # on the CPU the 3-D call, so CPU results stay bit-identical to earlier versions
            out = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Down(nn.Module):
    """Halve the mel/latent grid with a strided conv."""
    def __init__(self, c: int, pad: str = "same"):
        super().__init__()
        self.right = pad == "right"
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0 if self.right else 1)

    def forward(self, x):
        # "right": the sampling grid starts at the first pixel, one pixel left of "same"'s
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.right else x)


class Up(nn.Module):
    """Double the grid: nearest-neighbour upsampling and a conv."""
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(c: int, cfg: VAEConfig) -> nn.Sequential:
    return nn.Sequential(ResBlock(c, c, cfg.norm_groups, cfg.dropout), Attention(c, cfg.norm_groups),
                         ResBlock(c, c, cfg.norm_groups, cfg.dropout))


class Encoder(nn.Module):
    """Mel (B, 1, 80, T) -> the posterior's moments (mean and log-variance channels) on the latent grid."""
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        chans = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(1, cfg.ch, 3, padding=1)
        layers, c = [], cfg.ch
        for level, cout in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, cout, g, cfg.dropout))
                c = cout
                if level in cfg.attn_levels:
                    layers.append(Attention(c, g))
            if level < len(chans) - 1:
                layers.append(Down(c, cfg.down_pad))
        self.down = nn.Sequential(*layers)
        self.mid = _mid(c, cfg)
        self.norm_out = _norm(c, g)
        self.conv_out = nn.Conv2d(c, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x):
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, C, 10, T / 8) -> mel (B, 1, 80, T)."""
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        chans = [cfg.ch * m for m in cfg.ch_mult]
        c = chans[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = _mid(c, cfg)
        layers = []
        for level in reversed(range(len(chans))):
            cout = chans[level]
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(c, cout, g, cfg.dropout))
                c = cout
                if level in cfg.attn_levels:
                    layers.append(Attention(c, g))
            if level > 0:
                layers.append(Up(c))
        self.up = nn.Sequential(*layers)
        self.norm_out = _norm(c, g)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, z):
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass
class Posterior:
    """Diagonal Gaussian over z."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) summed over latent elements: (B,)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)


# ----------------------------------------------------------------------------- the VAE


class SpecVAE(nn.Module):
    """The spectrogram VAE: encoder, posterior, decoder."""
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        cfg.check()  # again: a dataclass field may have been set after construction
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg.quant_conv:
            self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, 1)
            self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)

    @property
    def factor(self) -> int:
        return self.cfg.factor

    def _check(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        if mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[2] != self.cfg.n_mels:
            raise MaaError(f"mel of shape {tuple(mel.shape)}: want (B, {self.cfg.n_mels}, T) or (B, 1, {self.cfg.n_mels}, T)")
        if mel.shape[-1] % self.factor:
            raise MaaError(f"mel with {mel.shape[-1]} frames: the VAE needs a multiple of {self.factor} "
                           f"(use encode_mel, which pads with silence)")
        return mel

    def encode(self, mel: torch.Tensor) -> Posterior:
        """(B, 80, T) or (B, 1, 80, T) log-mel, T % 8 == 0 -> posterior over (B, C, 80/8, T/8)."""
        x = (self._check(mel) - self.cfg.mel_center) / self.cfg.mel_scale
        moments = self.encoder(x)
        if self.cfg.quant_conv:
            moments = self.quant_conv(moments)
        mean, logvar = moments.chunk(2, dim=1)
        return Posterior(mean, logvar.clamp(-30.0, 20.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, 10, T/8) -> (B, 1, 80, T) log-mel."""
        if self.cfg.quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z) * self.cfg.mel_scale + self.cfg.mel_center

    def forward(self, mel: torch.Tensor, sample: bool = True):
        post = self.encode(mel)
        z = post.sample() if sample else post.mode()
        return self.decode(z), post

    def latent_shape(self, frames: int) -> tuple[int, int, int]:
        """Latent shape for a mel of `frames` frames (after padding to a multiple of 8)."""
        t = -(-frames // self.factor)
        return (self.cfg.z_channels, self.cfg.n_mels // self.factor, t)

    @torch.no_grad()
    def encode_mel(self, mel: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Any-length mel -> latent (the posterior mean unless sample): right-pads with silence to a multiple of 8."""
        mel = mel.unsqueeze(1) if mel.dim() == 3 else mel
        mel = mel.to(next(self.parameters()).dtype)
        pad = (-mel.shape[-1]) % self.factor
        if pad:
            mel = F.pad(mel, (0, pad), value=MEL_MIN)
        post = self.encode(mel)
        return post.sample() if sample else post.mode()

    @staged("vae decode")
    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Latent -> (B, 80, T) log-mel, cropped to `frames` when given."""
        mel = self.decode(z.to(next(self.parameters()).dtype))[:, 0]
        return mel[..., :frames] if frames is not None else mel

    @torch.no_grad()
    def reconstruct(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 80, T) -> (B, 80, T) through the posterior mean; any T."""
        return self.decode_latent(self.encode_mel(mel), frames=mel.shape[-1])


def load_vae(dir: str | Path, device: str | torch.device = "cpu") -> SpecVAE:
    """Load the VAE from a model folder written by `maa train-vae` (RUN/vae/: config.json + vae.safetensors)."""

    cfg = read_config(dir)
    if "vae" not in cfg:
        raise MaaError(f"{Path(dir) / 'config.json'}: not a VAE config (no 'vae' section); pass the vae/ folder of a run")
    with uninitialized():  # loaded strictly below: no random init to draw
        model = SpecVAE(VAEConfig.from_dict(cfg["vae"])).to(device)
    load_weights(dir, {"vae": model}, mmap=True)
    return model.eval()

