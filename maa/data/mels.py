"""Mel data sets read from the manifest `maa mel` writes (rows with `mel` = path of an 80 x T .npy),
and the one row -> mel loader every trainer uses (`row_mel`, cached by `RowMels`, cut by `random_crop`).

A row's mel is its `mel` .npy when it has one, else computed from its `audio`; NaN or infinite
values are refused. Training items are fixed-length crops (1, 80, frames) at a random start. A mel shorter than the
crop is tiled (repeated end to end) up to the crop length first, as Make-An-Audio's data loader
does, so short clips still fill a batch without silence padding. Randomness comes from the
`rng` the training loop passes to `get`, which keeps crops reproducible across resumes.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from maa.core.audio import load_audio, mel_spectrogram
from maa.core.errors import MaaError
from maa.data.formats import read_manifest


def mel_rows(src: str | os.PathLike) -> list[dict]:
    """Rows of a manifest that have a `mel` field; a clear error when none do."""

    rows = read_manifest(src)
    with_mel = [r for r in rows if r.get("mel")]
    if not with_mel:
        raise MaaError(f"{src}: no row has a 'mel' field; run `maa mel {src} -o MELDIR` and pass MELDIR/manifest.jsonl")
    return with_mel


def load_mel(path: str | os.PathLike, n_mels: int = 80) -> np.ndarray:
    """A `(n_mels, T)` mel `.npy` (memory-mapped), checked; a bad file is a MaaError naming it."""
    try:
        m = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise MaaError(f"{path}: cannot read the mel ({e}); rerun `maa mel`") from None
    if m.ndim != 2 or m.shape[0] != n_mels:
        raise MaaError(f"{path}: mel of shape {m.shape}, want ({n_mels}, frames); was it made by `maa mel`?")
    return m


def row_mel(row: dict, n_mels: int = 80, max_seconds: float = 60.0) -> np.ndarray:
    """The (n_mels, T) log-mel of a manifest row: its `mel` .npy (memory-mapped) or, without one,
    the mel of its audio (the first `max_seconds`)."""
    if row.get("mel"):
        m, src = load_mel(row["mel"], n_mels), row["mel"]
    elif row.get("audio"):
        m, src = mel_spectrogram(load_audio(row["audio"], max_seconds=max_seconds)).numpy(), row["audio"]
    else:
        raise MaaError(f"row {row.get('id', '?')!r}: neither 'mel' nor 'audio'; every manifest row needs one")
    if not np.isfinite(m).all():
        raise MaaError(f"{src}: the mel has NaN or infinite values; recompute it with `maa mel`")
    return m


class RowMels:
    """rows[i]'s mel on demand. cache=True keeps each in memory as float16 after its first read:
    corpora here are small, and re-reading thousands of small files each epoch would dominate a
    CPU run (the models see float32 crops)."""

    def __init__(self, rows: list[dict], n_mels: int = 80, max_seconds: float = 60.0, cache: bool = True):
        self.rows, self.n_mels, self.max_seconds, self.cache = rows, n_mels, max_seconds, cache
        self._kept: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        if i in self._kept:
            return self._kept[i]
        m = row_mel(self.rows[i], self.n_mels, self.max_seconds)
        if self.cache:
            m = self._kept[i] = np.asarray(m, dtype=np.float16)
        return m

    def clear(self) -> None:
        self._kept.clear()


def random_crop(mel: np.ndarray, frames: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A (1, n_mels, frames) float32 crop at a random start (0 without rng), tiled when the mel is short."""
    t = mel.shape[1]
    # short mels are tiled, so any start within one period gives a distinct crop
    start = int(rng.integers(0, max(t - frames, 0) + 1 if t >= frames else t)) if rng is not None else 0
    return torch.from_numpy(tile_crop(mel, frames, start).astype(np.float32)).unsqueeze(0)


def tile_crop(mel: np.ndarray, frames: int, start: int) -> np.ndarray:
    """Frames [start, start + frames) of the mel tiled end to end (a plain crop when it is long enough)."""
    t = mel.shape[1]
    if t >= frames:
        return np.asarray(mel[:, start:start + frames])
    reps = -(-(start + frames) // t)
    return np.tile(np.asarray(mel), (1, reps))[:, start:start + frames]


class MelCrops(torch.utils.data.Dataset):
    """Random fixed-length crops of the mels in a manifest, as float32 tensors (1, 80, frames);
    mels kept in memory as float16 after the first read unless cache=False (see RowMels)."""

    def __init__(self, rows: list[dict], frames: int = 624, n_mels: int = 80, cache: bool = True):
        if frames <= 0:
            raise MaaError(f"crop length {frames}: must be positive")
        self.rows, self.frames, self.n_mels, self.cache = rows, frames, n_mels, cache
        self._mels = RowMels(rows, n_mels, cache=cache)

    @classmethod
    def from_manifest(cls, src, frames: int = 624, **kw) -> "MelCrops":
        return cls(mel_rows(src), frames, **kw)

    def __len__(self):
        return len(self.rows)

    def mel(self, i: int) -> np.ndarray:
        return self._mels[i]

    def get(self, i: int, rng: np.random.Generator | None) -> torch.Tensor:
        return random_crop(self.mel(i), self.frames, rng)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.get(i, None)


class FullMels(torch.utils.data.Dataset):
    """Whole mels (80, T) with their ids, for evaluation."""

    def __init__(self, rows: list[dict], n_mels: int = 80):
        self.rows, self.n_mels = rows, n_mels

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        m = load_mel(self.rows[i]["mel"], self.n_mels)
        return self.rows[i]["id"], torch.from_numpy(np.asarray(m, dtype=np.float32))


def band_means(ds: MelCrops) -> np.ndarray:
    """Per-bin mean over every frame of every mel: the trivial baseline reconstruction."""
    total, count = np.zeros(ds.n_mels, np.float64), 0
    for i in range(len(ds)):
        m = np.asarray(ds.mel(i), np.float64)
        total += m.sum(1)
        count += m.shape[1]
    return (total / max(count, 1)).astype(np.float32)

