"""Temporal composition at sampling time: "A, then B" as A over the first half, B over the second.

A UNet trained on a few hundred clips does not learn word order from the caption (measured:
swapping A and B leaves the halves of the bundled model's output unchanged). The order is in the
words, though, so generation can honour it directly: split the prompt at its sequential
connectives (maa.infer.options.split_sequence, the inverse of `maa reprogram`'s templates), generate each part as a clip of its own
(its equal share of the duration plus a short overlap), and join the clips end to end with
equal-power crossfades. That is how `maa reprogram` builds its "A, then B" training clips from real
events, and it measured better than guiding each stretch of one shared latent by its own part
(regional prompting): the VAE decoder's and the UNet's attention mix the stretches, so each half
came out a blend (benchmarks/bench_quality.py, "A then B" 30 % -> 60 %, at no extra cost).

    join([a, b], 160000, overlap=4000)                  # a, then b, crossfaded over 0.25 s
"""

from __future__ import annotations

import math

import numpy as np
import torch


def time_masks(n: int, width: int, crossfade: float = 0.08) -> torch.Tensor:
    """(n, width) weights of n consecutive equal parts along time, linear crossfades of about
    `crossfade` x width columns at each join; every column sums to 1."""
    if n < 1 or width < 1:
        raise ValueError("time_masks: need n >= 1 and width >= 1")
    centre = (torch.arange(width, dtype=torch.float32) + 0.5) / width * n  # column position in parts
    ramp = max(crossfade * n, 1e-6)  # in parts
    # soft step at each join k (1..n-1): 0 before, 1 after
    steps = [((centre - k) / ramp + 0.5).clamp(0.0, 1.0) for k in range(1, n)]
    edges = [torch.ones(width)] + steps + [torch.zeros(width)]
    return torch.stack([edges[k] - edges[k + 1] for k in range(n)])


def part_span(k: int, n: int, length: int, overlap: int) -> tuple[int, int]:
    """[start, end) of the samples that part k of n contributes to a joined clip of `length`:
    its equal share widened by half the overlap on each inner side."""
    start = max(0, math.floor(k * length / n - overlap / 2))
    end = min(length, math.ceil((k + 1) * length / n + overlap / 2))
    return start, end


def join(clips: list[np.ndarray], length: int, overlap: int, equal_power: bool = True) -> np.ndarray:
    """Consecutive clips (..., T_k) end to end into (..., length): clip k fills its equal share of
    the time (`part_span`) from its own start, with crossfades of `overlap` samples centred on the
    joins. Equal-power fades (for unrelated sounds, as the parts are); linear ones (for log-mels)
    keep a constant signal constant. Each clip must be at least as long as its span."""
    n = len(clips)
    w = time_masks(n, length, crossfade=overlap / length).numpy() if n > 1 else np.ones((1, length), np.float32)
    if equal_power:
        w = np.sqrt(w)
    out = np.zeros(clips[0].shape[:-1] + (length,), np.float32)
    for k, clip in enumerate(clips):
        start, end = part_span(k, n, length, overlap)
        if clip.shape[-1] < end - start:
            raise ValueError(f"join: part {k} has {clip.shape[-1]} samples, its span needs {end - start}")
        out[..., start:end] += clip[..., :end - start] * w[k, start:end]
    return out

