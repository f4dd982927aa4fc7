"""Audio-text similarity: one Scorer interface, two backends.

    scorer = load_scorer("maa-clap:runs/clap/clap")        # ours, trained by `maa train-clap`
    scorer = load_scorer("laion-clap:630k-audioset-best.pt") # LAION-CLAP, for users who have it
    scorer.similarity(wavs, texts)                          # cosine of each (wav, text) pair

Every scorer takes 16 kHz mono float32 numpy clips and strings, and returns L2-normalised
embeddings, so `audio @ text.T` is a cosine-similarity matrix. `prompt enhancement`
(maa caption), best-of-K generation (maa generate -n K) and eval's CLAP score all go
through here.

maa-clap is a small contrastive model that trains on CPU in minutes:
  * audio: a CNN over our own log-mel (maa.core.audio, 80 bins, 62.5 frames/s), pooled over
    frequency, then mean + max over time (the max keeps short events such as a bark); it trains
    on fixed-length crops and scores a long clip as the mean of half-overlapping windows;
  * text: the frozen MiniLM sentence embedding (maa.parts.text) through a trainable 2-layer MLP;
  * symmetric InfoNCE (CLIP's loss) with a learned temperature. Clips of the same class in
    one batch are positives of each other (soft targets), so the loss does not push apart
    two dog barks only because they are different recordings.
Weights: DIR/config.json + DIR/model.safetensors (the trainer writes RUN/clap/).

laion-clap goes through the installed `laion_clap` package's model code with a checkpoint path
(no download): audio is resampled 16 -> 48 kHz, quantised to 16 bit and repeat-padded or cut to
the model's 10 s, as the package's own inference does, but cut deterministically (from the
start) so scores repeat exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from maa.core.audio import mel_spectrogram
from maa.core.checkpoint import load_weights, read_config, resolve_model
from maa.core.errors import MaaError
from maa.models.clap import ClapConfig, MaaClap, TextCache, check_pairs, fit_mel
from maa.parts.laion import LaionClapScorer
from maa.parts.registry import Registry
from maa.parts.text import load_text_encoder


class Scorer(Protocol):
    """What every scorer offers: L2-normalised audio and text embeddings, and paired similarities."""
    name: str

    def embed_audio(self, wavs: Sequence[np.ndarray]) -> torch.Tensor: ...  # 16 kHz mono -> (B, E), L2-normalised

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor: ...  # (B, E), L2-normalised

    def similarity(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor: ...  # (B,) cosine of pairs






class MaaClapScorer:
    """The model `maa train-clap` writes, behind the Scorer interface."""

    name = "maa-clap"

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu", batch_size: int = 32, text_encoder=None):
        self.dir = resolve_maa_clap_dir(model_dir)
        config = read_config(self.dir)
        if config.get("kind") != "maa-clap":
            raise MaaError(f"{self.dir / 'config.json'}: not a maa-clap model (kind={config.get('kind')!r}); "
                           "pass the clap/ folder `maa train-clap` wrote")
        self.cfg = ClapConfig.from_dict(config["model"])
        self.device = torch.device(device)
        self.model = MaaClap(self.cfg).to(self.device).eval()
        load_weights(self.dir, {"model": self.model})
        # text_encoder: an already loaded maa.parts.text encoder (tests pass a small stand-in)
        self.text_encoder = text_encoder or load_text_encoder(self.cfg.text_encoder, device=str(self.device), own_cache=True)
        self.batch_size = batch_size
        self.embed_text = TextCache(self._embed_text)

    @torch.no_grad()
    def embed_mels(self, mels: Sequence[torch.Tensor | np.ndarray]) -> torch.Tensor:
        """(80, T) log-mels -> (B, E): the mean embedding of windows of the training crop length.

        The encoder trained on crop_frames-long crops, so a long clip is seen the same way: as
        half-overlapping windows (the last one flush with the end), whose normalised embeddings
        are averaged. Short clips are tiled up to one window. All windows have one length, so
        they batch together and no padding ever changes a score.
        """
        n = self.cfg.crop_frames
        windows, owner = [], []
        for i, m in enumerate(mels):
            m = fit_mel(torch.as_tensor(np.asarray(m), dtype=torch.float32), n)
            t = m.shape[-1]
            starts = list(range(0, t - n + 1, max(n // 2, 1)))
            if starts[-1] != t - n:
                starts.append(t - n)
            windows += [m[:, s:s + n] for s in starts]
            owner += [i] * len(starts)
        out = torch.zeros(len(mels), self.cfg.embed_dim)
        owner_t = torch.tensor(owner, dtype=torch.long)
        for s in range(0, len(windows), self.batch_size):
            batch = torch.stack(windows[s:s + self.batch_size]).to(self.device)
            out.index_add_(0, owner_t[s:s + self.batch_size], self.model.embed_mel(batch).float().cpu())
        return F.normalize(out, dim=-1)

    def embed_audio(self, wavs: Sequence[np.ndarray]) -> torch.Tensor:
        mels = [mel_spectrogram(torch.as_tensor(np.asarray(w, dtype=np.float32)).to(self.device)) for w in wavs]
        return self.embed_mels(mels)

    @torch.no_grad()
    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        pooled = self.text_encoder.encode(texts).pooled.to(self.device)
        return self.model.embed_pooled(pooled).float().cpu()

    def similarity(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        check_pairs(wavs, texts)
        return (self.embed_audio(wavs) * self.embed_text(texts)).sum(dim=-1)


def resolve_maa_clap_dir(path: str | os.PathLike) -> Path:
    """Accept the model folder (RUN/clap) or the run folder above it (RUN)."""
    p = resolve_model(path, flag="--scorer")  # a path, or a pulled model name
    if not (p / "config.json").exists() and (p / "clap" / "config.json").exists():
        return p / "clap"
    return p


# The kinds of scorer: spec prefix -> loader (maa.parts.registry); a bare folder is taken as
# maa-clap, a bare file as laion-clap.
SCORERS = Registry("--scorer")
SCORERS.register("maa-clap", MaaClapScorer, arg="DIR", claims=lambda t: Path(t).is_dir(),
                 help="a folder `maa train-clap` wrote")
SCORERS.register("laion-clap", LaionClapScorer, arg="CKPT", claims=lambda t: Path(t).is_file(),
                 help="a LAION-CLAP .pt checkpoint")


def load_scorer(spec: str, device: str = "cpu") -> Scorer:
    """A scorer by spec: `maa-clap:DIR` or `laion-clap:CKPT`; a bare folder means maa-clap, a bare file laion-clap."""
    return SCORERS.load(str(spec), device=device)


def check_scorer(spec: str) -> str:
    """`spec` checked before anything loads: a known kind whose path exists (the spec is returned as given)."""
    _, parsed = SCORERS.parse(str(spec))
    if not Path(parsed.arg).exists():
        raise MaaError(f"--scorer {spec}: {parsed.arg} does not exist; want {SCORERS.usage()}")
    return str(spec)


def rank_candidates(scorer: Scorer, wavs: Sequence[np.ndarray], text: str,
                    parts: Sequence[str] | None = None) -> tuple[list[int], torch.Tensor]:
    """Best-of-K: indices of `wavs` sorted by similarity to `text` (best first), and the scores.

    With `parts` (a prompt split in time order, maa.infer.temporal) a candidate's score is the mean over
    parts of part k's similarity to the k-th equal stretch of its audio: the order counts."""
    if not len(wavs):
        return [], torch.zeros(0)
    if parts and len(parts) > 1:
        n = len(parts)
        spans = [w[len(w) * k // n: len(w) * (k + 1) // n] for w in wavs for k in range(n)]
        sims = scorer.similarity(spans, [p for _ in wavs for p in parts])
        scores = sims.view(len(wavs), n).mean(dim=1)
    else:
        scores = (scorer.embed_audio(wavs) @ scorer.embed_text([text]).T)[:, 0]
    return torch.argsort(scores, descending=True, stable=True).tolist(), scores

