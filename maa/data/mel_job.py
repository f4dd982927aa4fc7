"""`maa mel` as a library function: manifest rows in, one .npy log-mel per clip out.

Decoding and resampling run in DataLoader workers (CPU parallel); the STFT runs batched on
the chosen device. Every output is written atomically, so a rerun skips any .npy that
exists and recomputes nothing. Bad clips are reported, never fatal.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from maa.core.audio import (
    DEFAULT,
    SAMPLE_RATE,
    audio_info,
    fit_length,
    load_audio,
    mel_spectrogram,
    num_frames,
    samples_for_frames,
)
from maa.core.errors import MaaError, MaaWarning
from maa.core.io import safe_stem, save_npy_atomic, write_json_atomic


@dataclass
class MelJob:
    """The settings of a `maa mel` run: output folder, crop length, dtype, workers."""
    out_dir: Path
    duration: float | None = 10.0  # None: the whole clip (--full)
    dtype: str = "float16"
    device: str = "cpu"
    batch_size: int = 16
    workers: int = 2
    shard: tuple[int, int] = (0, 1)

    @property
    def frames(self) -> int | None:
        """Fixed frame count for --duration (10 s -> 624), None for --full."""
        if self.duration is None:
            return None
        return num_frames(int(round(self.duration * SAMPLE_RATE)))

    def settings(self) -> dict:
        return {"mel": DEFAULT.to_dict(), "duration": self.duration, "frames": self.frames, "dtype": self.dtype}


@dataclass
class MelSummary:
    """Counts of a `maa mel` run: done, skipped (already there), failed."""
    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    rows: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        speed = self.audio_seconds / max(self.wall_seconds, 1e-9)
        return (f"done {self.done}, skipped {self.skipped}, failed {self.failed}; "
                f"{self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s ({speed:.0f} audio-s/s)")


def shard_rows(rows: list[dict], shard: tuple[int, int]) -> list[dict]:
    """The rows of shard I of N (every N-th row from I), `--shard I/N` checked."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise MaaError(f"--shard {i}/{n}: want I/N with 0 <= I < N")
    return rows[i::n]


def mel_path(out_dir: Path, clip_id: str) -> Path:
    """Where the mel of clip `clip_id` goes: always a file directly in OUTDIR/mels, whatever the id holds."""
    return out_dir / "mels" / f"{safe_stem(clip_id)}.npy"


class _Decode(Dataset):
    """Decodes one clip in a worker (and, on CPU, computes its mel there too, so decoding and
    STFT run in parallel across workers). Returns the error message instead of raising."""

    def __init__(self, rows: list[dict], n_samples: int | None, mel_in_worker: bool = False):
        self.rows, self.n_samples, self.mel_in_worker = rows, n_samples, mel_in_worker

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        # the decoder's warnings (truncated file, clipped samples) travel back with the item,
        # since a worker process has no console of its own
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MaaWarning)
            try:
                info = audio_info(row["audio"])
                seconds = None if self.n_samples is None else self.n_samples / SAMPLE_RATE
                wav = load_audio(row["audio"], max_seconds=seconds, info=info)
            except MaaError as e:
                return _Item(i, err=str(e))
            except Exception as e:  # a bug in a decoder must not stop a long job
                return _Item(i, err=f"{row['audio']}: unexpected {type(e).__name__}: {e}")
        silent = float(np.abs(wav).max(initial=0.0)) < 1e-6
        item = _Item(i, wav=wav, seconds=len(wav) / SAMPLE_RATE, duration=float(info.duration), silent=silent,
                     warnings=[str(w.message) for w in caught if issubclass(w.category, MaaWarning)])
        if self.mel_in_worker:
            x = fit_length(wav, self.n_samples) if self.n_samples else wav
            item.mel, item.wav = mel_spectrogram(torch.from_numpy(x)).numpy(), None
        return item


@dataclass
class _Item:
    index: int
    wav: np.ndarray | None = None
    mel: np.ndarray | None = None
    seconds: float = 0.0
    duration: float = 0.0
    silent: bool = False
    err: str | None = None
    warnings: list[str] = field(default_factory=list)


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers already use every core between them


def _collate(items):
    return items


def check_settings(job: MelJob) -> None:
    """Refuse to mix mels made with other settings in one folder."""
    cfg_path = job.out_dir / "mel_config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (ValueError, RecursionError) as e:
            raise MaaError(f"{cfg_path}: damaged ({str(e)[:120]}); delete it to rebuild the settings from this run, "
                           "or use a new output folder") from None
        if old != json.loads(json.dumps(job.settings())):
            raise MaaError(
                f"{job.out_dir}: holds mels made with other settings ({cfg_path}); use a new output folder"
            )
    else:
        write_json_atomic(cfg_path, job.settings())


def compute_mels(rows: list[dict], job: MelJob, progress: Callable[[int], None] | None = None) -> MelSummary:
    """Compute the mel of every row; return what was done, skipped and failed."""
    job.out_dir = Path(job.out_dir)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    check_settings(job)
    rows = shard_rows(rows, job.shard)
    summary = MelSummary()
    t0 = time.perf_counter()
    todo = []
    out: dict[int, dict] = {}  # by input position, so a rerun lists the rows in the same order
    for n, row in enumerate(rows):
        p = mel_path(job.out_dir, row["id"])
        if p.exists():
            try:
                m = np.load(p, mmap_mode="r")
                # a leftover with a valid header can still hold NaN (a damaged disk, another tool): redo it
                frames = int(m.shape[-1]) if m.ndim == 2 and np.isfinite(m).all() else None
            except (ValueError, OSError):
                frames = None  # unreadable leftover: recompute
            if frames is not None:
                out[n] = _out_row(row, p, frames, _header_duration(row["audio"]))
                summary.skipped += 1
                if progress:
                    progress(1)
                continue
        todo.append((n, row))

    n_samples = samples_for_frames(job.frames) if job.frames else None
    device = torch.device(job.device)
    out_dtype = np.float16 if job.dtype == "float16" else np.float32
    workers = job.workers if len(todo) > job.batch_size else 0
    loader = DataLoader(
        _Decode([row for _, row in todo], n_samples, mel_in_worker=workers > 0 and device.type == "cpu"), batch_size=job.batch_size,
        num_workers=workers, collate_fn=_collate, shuffle=False, worker_init_fn=_one_thread,
    )
    for items in loader:
        good = []
        for it in items:
            row = todo[it.index][1]
            summary.warnings.extend(it.warnings)
            if it.err is not None:
                summary.failed += 1
                summary.failures.append({"id": row["id"], "audio": row["audio"], "reason": it.err})
                continue
            if it.silent:
                summary.warnings.append(f"{row['audio']}: silent (all samples ~0); kept, its mel is the floor value")
            good.append((todo[it.index][0], row, it))
        pending = [it for _, _, it in good if it.mel is None]
        if pending and n_samples is not None:  # batched STFT on the device
            batch = torch.from_numpy(np.stack([fit_length(it.wav, n_samples) for it in pending])).to(device)
            for it, mel in zip(pending, mel_spectrogram(batch).cpu().numpy()):
                it.mel = mel
        for it in pending:
            if it.mel is None:
                it.mel = mel_spectrogram(torch.from_numpy(it.wav).to(device)).cpu().numpy()
        for n, row, it in good:
            p = mel_path(job.out_dir, row["id"])
            save_npy_atomic(p, it.mel.astype(out_dtype))
            out[n] = _out_row(row, p, int(it.mel.shape[-1]), it.duration)
            summary.done += 1
            summary.audio_seconds += it.seconds
        if progress:
            progress(len(items))
    summary.rows = [out[n] for n in sorted(out)]
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _out_row(row: dict, mel: Path, frames: int, duration: float | None) -> dict:
    """The output manifest row: the same fields whether the mel was made now or by an earlier run."""
    extra = {} if duration is None else {"sr": SAMPLE_RATE, "duration": round(duration, 4)}
    return {**row, "mel": str(mel.resolve()), "frames": frames, **extra}


def _header_duration(audio: str) -> float | None:
    """A finished clip's duration from its header (cheap: no decoding), as the first run recorded it."""
    try:
        with warnings.catch_warnings():  # the first run already warned about this file
            warnings.simplefilter("ignore", MaaWarning)
            return float(audio_info(audio).duration)
    except MaaError:
        return None

