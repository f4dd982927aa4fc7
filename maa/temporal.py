"""Temporal composition at sampling time: "A, then B" as A over the first half, B over the second.

A UNet trained on a few hundred clips does not learn word order from the caption (measured:
swapping A and B leaves the halves of the bundled model's output unchanged). The order is in the
words, though, so generation can honour it directly: split the prompt at its sequential
connectives (the inverse of `maa reprogram`'s templates), give each part an equal share of the
time axis with a short crossfade, and blend the guided noise predictions of the parts by those
shares at every step (regional prompting along time, as in MultiDiffusion). Every part is
denoised on the whole latent, so the joins stay smooth.

    split_sequence("a dog barks, then a siren wails")   # ["a dog barks", "a siren wails"]
    split_sequence("a bell rings after a door slams")   # ["a door slams", "a bell rings"]
    time_masks(2, 31)                                   # (2, 31) weights, summing to 1 per column
"""

from __future__ import annotations

import re

import torch

# "A then B", "A, then B", "A and then B", "A before B", "A followed by B"; "while" and "with" mean
# at the same time and stay inside one part.
_SEQUENTIAL = re.compile(r"\s*,?\s+(?:and\s+)?then\s+|\s*,?\s+(?:before|followed\s+by)\s+", re.IGNORECASE)
_AFTER = re.compile(r"\s+after\s+", re.IGNORECASE)
_FIRST = re.compile(r"^\s*(?:first(?:ly)?|at first)\s*,?\s+", re.IGNORECASE)


def _clean(part: str) -> str:
    return part.strip(" ,.;")


def split_sequence(prompt: str, max_parts: int = 4) -> list[str]:
    """The parts of a prompt in time order; [prompt] when it names no order (or a part is empty)."""
    text = prompt.strip()
    parts = [_clean(p) for p in _SEQUENTIAL.split(_FIRST.sub("", text))]
    if len(parts) == 1:
        after = [_clean(p) for p in _AFTER.split(text)]
        parts = after[::-1] if len(after) == 2 else [text]  # "B after A": A comes first
    if len(parts) < 2 or len(parts) > max_parts or any(len(p) < 2 for p in parts):
        return [prompt]
    return parts


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
