"""What every condition encoder returns (maa.parts.text, maa.parts.openclip): token states,
their mask and a pooled vector, one row per caption (or picture)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

CACHE_SIZE = 50_000  # captions kept per encoder (a 77 x 384 float32 entry is ~120 kB at most)


@dataclass
class TextEmbedding:
    """A batch of encoded captions (or pictures): token states, their mask, and the pooled embedding."""

    tokens: torch.Tensor  # (B, L, D) float32, token-level states for cross-attention
    mask: torch.Tensor  # (B, L) bool, True for real tokens
    pooled: torch.Tensor  # (B, D) float32, masked mean of tokens (sentence embedding)

    def to(self, device) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def __len__(self) -> int:
        return self.tokens.shape[0]
