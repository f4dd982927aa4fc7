"""A BERT encoder in plain torch, with the `tokenizers` tokenizer: the MiniLM text encoder without
importing transformers.

Importing transformers and building its BertModel costs 3-5 s of a one-off `maa generate` on
2 CPU cores (more than the sampling); this module needs only torch and the Rust `tokenizers`
library (milliseconds). The layers mirror transformers' BertModel (post-LayerNorm blocks, erf
GELU, absolute positions, token types) and keep its parameter names, so the safetensors file of
all-MiniLM-L6-v2 loads strictly; tests/models/test_bert.py checks the hidden states against
transformers' BertModel and the token ids against its tokenizer.

    tok, model = load_bert_folder(folder)          # config.json + model.safetensors + tokenizer.json
    batch = tok(["a dog barks"], padding=True, truncation=True, max_length=77, return_tensors="pt")
    states = model(**batch).last_hidden_state      # (B, L, hidden)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.errors import MaaError
from maa.core.checkpoint import load_safetensors, uninitialized
from tokenizers import Tokenizer


@dataclass
class BertConfig:
    """The BERT encoder's sizes (transformers' BertConfig fields that the plain-torch model uses)."""
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        d = json.loads(Path(path).read_text())
        if d.get("model_type", "bert") != "bert" or d.get("hidden_act", "gelu") != "gelu" or \
                d.get("position_embedding_type", "absolute") != "absolute":
            raise MaaError(f"{path}: not a plain BERT config (model_type bert, gelu, absolute positions)")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1], device=ids.device)[None]
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(types))


class _Dense(nn.Module):
    """transformers' `X.dense` (+ `X.LayerNorm` when `norm`): keeps the parameter names."""

    def __init__(self, cin: int, cout: int, eps: float | None = None):
        super().__init__()
        self.dense = nn.Linear(cin, cout)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(cout, eps=eps)


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(3))

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = (m(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for m in (self.query, self.key, self.value))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)


class _Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = _SelfAttention(c)
        self.attention.output = _Dense(c.hidden_size, c.hidden_size, c.layer_norm_eps)
        self.intermediate = _Dense(c.hidden_size, c.intermediate_size)
        self.output = _Dense(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x, mask):
        ao = self.attention.output
        x = ao.LayerNorm(x + ao.dense(self.attention.self(x, mask)))
        h = self.output.dense(F.gelu(self.intermediate.dense(x)))
        return self.output.LayerNorm(x + h)


class BertEncoder(nn.Module):
    """BertModel's forward for inference: last_hidden_state (and the pooler, kept for strict loading)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.config = c
        self.embeddings = _Embeddings(c)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        self.pooler = _Dense(c.hidden_size, c.hidden_size)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.embeddings(input_ids, types)
        # keys that may be attended to; padded queries get garbage that callers drop by length
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return SimpleNamespace(last_hidden_state=x)


class FastTokenizer:
    """The subset of a transformers tokenizer's __call__ that maa uses, over tokenizers.Tokenizer."""

    def __init__(self, path: Path):
        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.pad_id = self.tok.token_to_id("[PAD]") or 0

    def __call__(self, texts, padding: bool | str = False, truncation: bool = False, max_length: int | None = None,
                 return_tensors: str | None = None):
        """Token ids of `texts` (a list of lists, or one list for one string); with return_tensors="pt",
        padded to the longest, or to max_length with padding="max_length", plus the mask."""
        single = isinstance(texts, str)
        if truncation and max_length:
            self.tok.enable_truncation(max_length)
        else:
            self.tok.no_truncation()
        enc = self.tok.encode_batch([texts] if single else list(texts))
        ids = [e.ids for e in enc]
        if return_tensors != "pt":
            return {"input_ids": ids[0] if single else ids}
        n = max(len(i) for i in ids)
        if padding == "max_length" and max_length:
            n = max(n, max_length)
        input_ids = torch.full((len(ids), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), n), dtype=torch.long)
        for r, i in enumerate(ids):
            input_ids[r, :len(i)] = torch.tensor(i, dtype=torch.long)
            mask[r, :len(i)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}


def load_bert_folder(folder: str | Path) -> tuple[FastTokenizer, BertEncoder]:
    """Tokenizer and encoder of a BERT folder (config.json, model.safetensors, tokenizer.json)."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).exists():
            raise MaaError(f"{folder}: no {name}; want a BERT folder with config.json, model.safetensors, tokenizer.json")

    with uninitialized():  # every weight comes from the file (strict load below)
        model = BertEncoder(BertConfig.from_json(folder / "config.json"))
    state = load_safetensors(folder / "model.safetensors")
    state = {(k[5:] if k.startswith("bert.") else k): v for k, v in state.items() if not k.endswith("position_ids")}
    model.load_state_dict(state, strict=True)
    return FastTokenizer(folder / "tokenizer.json"), model.eval()
