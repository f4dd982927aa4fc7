"""A training run's text cache: each caption's token states, computed once and kept in RUN/cache."""

from __future__ import annotations

import os

import torch

from maa.parts.text import (
    HFTextEncoder,
    TextEmbedding,
    load_text_encoder,
    pad_embeddings,
)
from maa.core.io import save_tensor_table
from maa.core.io import load_tensor_table


def save_text_cache(path: str | os.PathLike, spec: str, table: dict[str, torch.Tensor]) -> None:
    """Write caption -> token states (L_i, D) to a safetensors file (float16: a third of a kB per token)."""

    save_tensor_table(path, table, {"encoder": spec}, dtype=torch.float16)


def load_text_cache(path: str | os.PathLike, spec: str) -> dict[str, torch.Tensor]:
    """The table save_text_cache wrote for encoder `spec`; {} when the file is missing, unreadable or of another encoder."""

    return {c: t.float() for c, t in load_tensor_table(path, {"encoder": spec}).items()}


class CachedTextEncoder:
    """A text encoder whose captions known in advance come from a table; the real encoder
    (`load_text_encoder(spec)`) is loaded only for the first caption the table lacks.

    A training run keeps its captions' token states in RUN/cache/text.safetensors, so a resumed run
    or a machine without the encoder's weights (an offline GPU node) trains without loading it.
    """

    def __init__(self, spec: str, table: dict[str, torch.Tensor], device: str = "cpu", max_length: int = 77):
        self.spec, self.name, self.max_length = spec, spec, max_length
        self.table = dict(table)
        self.device = torch.device(device)
        self._encoder: HFTextEncoder | None = None
        self.dim = next(iter(self.table.values())).shape[-1] if self.table else self.encoder.dim

    @property
    def encoder(self) -> HFTextEncoder:
        if self._encoder is None:
            self._encoder = load_text_encoder(self.spec, device=str(self.device), max_length=self.max_length)
        return self._encoder

    def to(self, device) -> "CachedTextEncoder":
        self.device = torch.device(device)
        if self._encoder is not None:
            self._encoder.to(device)
        return self

    def _states(self, texts: list[str]) -> dict[str, torch.Tensor]:
        out = {}
        for i in range(0, len(texts), 256):
            emb = self.encoder.encode(texts[i : i + 256])
            for j, t in enumerate(texts[i : i + 256]):
                out[t] = emb.tokens[j, emb.mask[j]].float().cpu()
        return out

    def add(self, texts: list[str]) -> int:
        """Encode the captions the table lacks and keep them; returns how many were added."""
        todo = list(dict.fromkeys(str(t) for t in texts if str(t) not in self.table))
        # kept at the precision the cache file holds, so a resumed run (which reads the file) sees the
        # same numbers as the run that wrote it: resuming stays bit-exact (issue 23)
        self.table.update({t: s.half().float() for t, s in self._states(todo).items()})
        return len(todo)

    def encode(self, texts: list[str]) -> TextEmbedding:
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        # captions outside the table (fresh compositions) go through the encoder's own bounded cache
        other = self._states(list(dict.fromkeys(t for t in texts if t not in self.table)))
        return pad_embeddings([self.table[t] if t in self.table else other[t] for t in texts]).to(self.device)

