"""Latent diffusion UNet: ResNet blocks with a timestep embedding, cross-attention transformer
blocks (self-attention, cross-attention to the text tokens, GEGLU feed-forward) at chosen levels.

Shape of the paper's model (`base`): 4-channel latents, 320 channels, channel multipliers (1, 2)
(one downsampling), 2 ResNet blocks per level, a transformer of depth 1 with 8 heads at both
levels and in the middle. The text context width (`context_dim`) comes from the text encoder.

The official Make-An-Audio UNet (`maa convert`) is this one with coords off, context_dim 1024,
GroupNorm eps 1e-5 in the ResNet blocks and the output norm (norm_eps), and no cross-attention
mask (context_mask False: every context token, padding included, is attended to).

Any latent size works: odd sizes are handled by resizing the upsampled map to its skip's size,
so every duration rounded to whole latent frames can be generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from maa.core.config import ConfigMixin, Range
from maa.core.errors import MaaError


@dataclass
class UNetConfig(ConfigMixin):
    """The UNet's sizes: channels and multipliers, residual blocks, attention levels, heads, context size."""
    in_channels: int = 4
    out_channels: int = 4
    channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (0, 1)  # levels with a cross-attention transformer (the middle always has one)
    num_heads: int = 8
    transformer_depth: int = 1
    context_dim: int = 384
    norm_groups: int = 32
    dropout: float = 0.0
    grad_checkpoint: bool = False
    # Two extra input maps, relative time and frequency position in [-1, 1]. Convolutions and
    # attention are shift-invariant, so without them the middle of a latent cannot tell the start
    # of a clip from its end and "A, then B" cannot be learned. False: configs saved before them.
    coords: bool = False
    # GroupNorm eps of the ResNet blocks and the output norm (the transformers' norm keeps 1e-6).
    # The official Make-An-Audio weights were trained with 1e-5 there.
    norm_eps: float = 1e-6
    # False: cross-attention sees every context token, padding included, as the official model does.
    context_mask: bool = True
    # > 0: each transformer gets width // head_channels heads (the official `num_head_channels`,
    # 32 in the image-to-audio UNet) and num_heads is unused. 0: num_heads everywhere.
    head_channels: int = 0
    # True: the first context token is also added to the timestep embedding (the official
    # image-to-audio UNet, whose one-token OpenCLIP condition is 4 x channels wide). Off for every
    # other model.
    context_in_time: bool = False

    # Checked before anything is built (a config asking for 2048 channels took 9.4 GB before
    # failing). The ranges hold the paper's `base` and the official Make-An-Audio v1 UNet (320
    # channels, mult up to 1-2-4-4, 8 heads, depth 1, context 1024) with room to spare.
    optional: ClassVar[tuple[str, ...]] = ("head_channels", "context_in_time")  # the image-to-audio UNet's
    limits: ClassVar[dict] = {
        "in_channels": Range(1, 64), "out_channels": Range(1, 64), "channels": Range(8, 1024),
        "channel_mult": Range(1, 8, count=(1, 6)), "num_res_blocks": Range(1, 8),
        "attn_levels": Range(0, 5, count=(0, 6)), "num_heads": Range(1, 64), "transformer_depth": Range(1, 16),
        "context_dim": Range(1, 8192), "norm_groups": Range(1, 128), "dropout": Range(0.0, 1.0),
        "norm_eps": Range(1e-12, 0.1), "head_channels": Range(0, 1024),
    }
    max_width: ClassVar[int] = 4096  # channels x the largest mult (official: 1280)

    def check_relations(self) -> None:
        widths = [self.channels * m for m in self.channel_mult]
        if max(widths) > self.max_width:
            self.fail("channel_mult", f"{list(self.channel_mult)} x {self.channels} channels gives {max(widths)} "
                                      f"channels at the widest level; at most {self.max_width}")
        # every level with a transformer, and the middle (always one, at the last level's width)
        for lvl in sorted({*(a for a in self.attn_levels if a < len(widths)), len(widths) - 1}):
            if self.head_channels and widths[lvl] % self.head_channels:
                self.fail("head_channels", f"{self.head_channels} does not divide the {widths[lvl]} channels of level {lvl}")
            if not self.head_channels and widths[lvl] % self.num_heads:
                self.fail("num_heads", f"{self.num_heads} does not divide the {widths[lvl]} channels of level {lvl}")
        if self.context_in_time and self.context_dim != 4 * self.channels:
            self.fail("context_in_time", f"needs context_dim == 4 x channels ({4 * self.channels}), "
                                         f"not {self.context_dim}: the token is added to the time embedding")

    def heads(self, width: int) -> int:
        """Attention heads of a transformer `width` channels wide."""
        return width // self.head_channels if self.head_channels else self.num_heads


PRESETS: dict[str, UNetConfig] = {
    # CPU tests: ~0.3 M parameters
    "tiny": UNetConfig(channels=32, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), num_heads=2, norm_groups=8,
                       coords=True),
    # CPU-trainable on a small corpus: ~13 M parameters
    "small": UNetConfig(channels=96, channel_mult=(1, 2), num_res_blocks=2, attn_levels=(0, 1), num_heads=4,
                        norm_groups=16, coords=True),
    # the paper's configuration (model_channels 320, mult 1-2, 2 blocks, attention at both levels, 8 heads, depth 1)
    "base": UNetConfig(coords=True),
}


def preset(name: str, **overrides) -> UNetConfig:
    """The UNet config of a named preset (tiny, small, base, ...), with `overrides`."""
    if name not in PRESETS:
        raise MaaError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    return UNetConfig.from_dict({**PRESETS[name].to_dict(), **overrides})


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _norm(c: int, groups: int, eps: float = 1e-6) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, c), c, eps=eps)


def _zero(m: nn.Module) -> nn.Module:
    """Zero-initialised output layers: every block starts as the identity, which keeps early training stable."""
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    """A residual block: GroupNorm, SiLU, conv, plus the timestep embedding."""
    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float, eps: float = 1e-6):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups, eps), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.drop = _norm(cout, groups, eps), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention; `mask` (B, L) marks the keys that may be attended to."""

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(kv_dim or dim, dim, bias=False)
        self.v = nn.Linear(kv_dim or dim, dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context=None, mask=None):
        context = x if context is None else context
        b, n, d = x.shape
        q, k, v = (t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)
                   for t in (self.q(x), self.k(context), self.v(context)))
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    """A GEGLU feed-forward (GELU-gated linear unit, `mult` times wider inside)."""
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, dim * mult * 2)
        self.out = nn.Linear(dim * mult, dim)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text tokens, and a GEGLU feed-forward, each pre-normed."""
    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), Attention(dim, heads, context_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), GEGLU(dim)

    def forward(self, x, context, mask):
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Flattens the (H, W) map to tokens, runs transformer blocks conditioned on the text, and adds back."""

    def __init__(self, c: int, heads: int, depth: int, context_dim: int, groups: int):
        super().__init__()
        if c % heads:
            raise MaaError(f"UNet config: {c} channels are not divisible by {heads} heads")
        self.norm = _norm(c, groups)
        self.proj_in = nn.Linear(c, c)
        self.blocks = nn.ModuleList(TransformerBlock(c, heads, context_dim) for _ in range(depth))
        self.proj_out = _zero(nn.Linear(c, c))

    def forward(self, x, context, mask):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for blk in self.blocks:
            t = blk(t, context, mask)
        return x + self.proj_out(t).transpose(1, 2).reshape(b, c, h, w)


class Level(nn.Module):
    """A ResNet block optionally followed by a transformer: one step of the UNet's ladder."""

    def __init__(self, cin: int, cout: int, cfg: UNetConfig, temb: int, attn: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, temb, cfg.norm_groups, cfg.dropout, cfg.norm_eps)
        self.attn = (SpatialTransformer(cout, cfg.heads(cout), cfg.transformer_depth, cfg.context_dim, cfg.norm_groups)
                     if attn else None)

    def forward(self, x, temb, context, mask):
        x = self.res(x, temb)
        return self.attn(x, context, mask) if self.attn is not None else x


class UNet(nn.Module):
    """The latent diffusion UNet: (noisy latent, timestep, text tokens, mask) -> the prediction."""
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        cfg.check()  # again: a dataclass field may have been set after construction
        self.cfg = cfg
        ch, temb = cfg.channels, cfg.channels * 4
        self.time_mlp = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cfg.in_channels + (2 if cfg.coords else 0), ch, 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c = [ch], ch
        for lvl, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(Level(c, ch * mult, cfg, temb, lvl in cfg.attn_levels))
                c = ch * mult
                skips.append(c)
            last = lvl == len(cfg.channel_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)

        self.mid1 = Level(c, c, cfg, temb, attn=True)
        self.mid2 = ResBlock(c, c, temb, cfg.norm_groups, cfg.dropout, cfg.norm_eps)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(Level(c + skips.pop(), ch * mult, cfg, temb, lvl in cfg.attn_levels))
                c = ch * mult
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if lvl > 0 else nn.Identity())

        self.norm_out = _norm(c, cfg.norm_groups, cfg.norm_eps)
        self.conv_out = _zero(nn.Conv2d(c, cfg.out_channels, 3, padding=1))

    def _run(self, block, *args):
        if self.cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None):
        """x (B, C, H, W) noisy latents, t (B,) timesteps, context (B, L, D) text tokens, mask (B, L) bool."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if not self.cfg.context_mask:
            mask = None
        temb = self.time_mlp(timestep_embedding(t, self.cfg.channels).to(x.dtype))
        if self.cfg.context_in_time:
            temb = temb + context[:, 0].to(temb.dtype)
        h = self.conv_in(torch.cat([x, position_maps(x)], dim=1) if self.cfg.coords else x)
        skips = [h]
        nb, i = self.cfg.num_res_blocks, 0
        for lvl, down in enumerate(self.downsample):
            for _ in range(nb):
                h = self._run(self.down[i], h, temb, context, mask)
                skips.append(h)
                i += 1
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.mid2(self._run(self.mid1, h, temb, context, mask), temb)
        i = 0
        for up in self.upsample:
            for _ in range(nb + 1):
                s = skips.pop()
                if h.shape[-2:] != s.shape[-2:]:  # odd sizes: match the skip after upsampling
                    h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
                h = self._run(self.up[i], torch.cat([h, s], dim=1), temb, context, mask)
                i += 1
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def position_maps(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W): relative time (along W) and frequency (along H) position, each in [-1, 1].
    Relative, so a model trained on 4 s crops places "first" and "then" the same way in 10 s."""
    b, _, h, w = x.shape
    t = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    f = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    return torch.cat([t, f], dim=1)

