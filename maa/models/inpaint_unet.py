"""The UNet of the official Make-An-Audio inpainting model (AudioGPT's inpaint7): openaimodel's
UNet without any text, module names as in the checkpoint so its weights load unchanged.

How it differs from maa's text UNet (maa.models.unet), point by point from the official code:
  * input = [x (4), masked-mel latent (4), mask (1)]: 9 channels, no cross-attention, no context;
  * plain attention blocks (GroupNorm, a 1x1 Conv1d `qkv`, `proj_out`) with the legacy head split:
    per head [q, k, v] contiguous (reshape to (B*heads, 3*C/heads, T), then split), a fixed head count;
  * down/up sampling by ResBlocks (`resblock_updown`): 2x2 average pooling / nearest x2 applied after
    the first norm+SiLU and to the skip path; no strided conv;
  * GroupNorm(32) with eps 1e-5, computed in float32, everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.config import ConfigMixin, Range
from maa.models.diffusion import INPAINT_KIND  # noqa: F401  (re-exported: the converter and loader import it from here)
from maa.models.unet import timestep_embedding



@dataclass
class InpaintUNetConfig(ConfigMixin):
    """The official inpainting UNet's structure (9 input channels, no cross-attention)."""

    in_channels: int = 9
    out_channels: int = 4
    channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (0, 1)  # levels with an attention block (the middle always has one)
    num_heads: int = 8

    limits: ClassVar[dict] = {
        "in_channels": Range(1, 64), "out_channels": Range(1, 64), "channels": Range(32, 1024),
        "channel_mult": Range(1, 8, count=(1, 6)), "num_res_blocks": Range(1, 8),
        "attn_levels": Range(0, 5, count=(0, 6)), "num_heads": Range(1, 64),
    }


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32, as the official code does."""

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def _norm(c: int) -> GroupNorm32:
    return GroupNorm32(32, c, eps=1e-5)


class ResBlock(nn.Module):
    """in_layers (norm, SiLU, conv), emb_layers (SiLU, linear) added, out_layers (norm, SiLU,
    dropout, conv); `down`/`up` resample after the first norm+SiLU and on the skip path."""

    def __init__(self, cin: int, temb: int, cout: int, down: bool = False, up: bool = False):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.out_layers = nn.Sequential(_norm(cout), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        self.resample = "down" if down else "up" if up else None

    def _resample(self, x):
        if self.resample == "down":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, x, emb):
        if self.resample:
            h = self._resample(self.in_layers[:-1](x))
            x = self._resample(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Self-attention over all positions with the legacy per-head [q, k, v] layout."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(c)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj_out = nn.Conv1d(c, c, 1)

    def forward(self, x, emb=None):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        length = qkv.shape[-1]
        ch = c // self.heads
        q, k, v = qkv.reshape(b * self.heads, 3 * ch, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        h = torch.einsum("bts,bcs->bct", w, v).reshape(b, -1, length)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class Step(nn.ModuleList):
    """One entry of input_blocks/output_blocks: layers run in order, each given the time embedding."""

    def forward(self, h, emb):
        for layer in self:
            h = layer(h, emb) if isinstance(layer, (ResBlock, AttentionBlock)) else layer(h)
        return h


class InpaintUNet(nn.Module):
    """The official inpainting UNet with its module names, so its weights load without a key map."""

    def __init__(self, cfg: InpaintUNetConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        mc, temb = cfg.channels, cfg.channels * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.input_blocks = nn.ModuleList([Step([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        chans, ch = [mc], mc
        last = len(cfg.channel_mult) - 1
        for lvl, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, temb, mult * mc)]
                ch = mult * mc
                if lvl in cfg.attn_levels:
                    layers.append(AttentionBlock(ch, cfg.num_heads))
                self.input_blocks.append(Step(layers))
                chans.append(ch)
            if lvl != last:
                self.input_blocks.append(Step([ResBlock(ch, temb, ch, down=True)]))
                chans.append(ch)
        self.middle_block = Step([ResBlock(ch, temb, ch), AttentionBlock(ch, cfg.num_heads), ResBlock(ch, temb, ch)])
        self.output_blocks = nn.ModuleList()
        for lvl, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), temb, mc * mult)]
                ch = mc * mult
                if lvl in cfg.attn_levels:
                    layers.append(AttentionBlock(ch, cfg.num_heads))
                if lvl and i == cfg.num_res_blocks:
                    layers.append(ResBlock(ch, temb, ch, up=True))
                self.output_blocks.append(Step(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, 9, H, W) = [noisy latent, masked-mel latent, mask], t (B,) timesteps -> eps (B, 4, H, W)."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.cfg.channels).to(x.dtype))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def inpaint_unet_config(sd: dict, num_heads: int = 8) -> InpaintUNetConfig:
    """The config of an official inpainting UNet state dict (prefix stripped), from its shapes: the
    first output block ending in an up-sampling ResBlock closes level L-1 after num_res_blocks + 1."""
    mc = sd["input_blocks.0.0.weight"].shape[0]
    outs = sorted({int(k.split(".")[1]) for k in sd if k.startswith("output_blocks.")})

    def ends_with_up(i: int) -> bool:
        last = max(int(k.split(".")[2]) for k in sd if k.startswith(f"output_blocks.{i}."))
        return last > 0 and f"output_blocks.{i}.{last}.in_layers.0.weight" in sd

    ups = [i for i in outs if ends_with_up(i)]
    nb = ups[0] if ups else len(outs) - 1
    starts = [1 + lvl * (nb + 1) for lvl in range(len(outs) // (nb + 1))]
    return InpaintUNetConfig(
        in_channels=sd["input_blocks.0.0.weight"].shape[1], out_channels=sd["out.2.weight"].shape[0], channels=mc,
        channel_mult=tuple(sd[f"input_blocks.{s}.0.out_layers.3.weight"].shape[0] // mc for s in starts),
        num_res_blocks=nb, attn_levels=tuple(n for n, s in enumerate(starts) if f"input_blocks.{s}.1.qkv.weight" in sd),
        num_heads=num_heads)
