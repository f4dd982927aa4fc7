"""Audio I/O: load anything soundfile reads (wav, flac, ogg, mp3), mono, 16 kHz; write wav atomically.

Decoding goes through libsndfile (the soundfile wheel bundles one with mp3 support);
resampling uses soxr's high-quality mode, the same engine librosa uses by default.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from maa.core.errors import MaaError, warn
from maa.core.io import atomic_path
import struct

SAMPLE_RATE = 16000
# Above this a whole-file read is refused: a 1-hour 96 kHz 6-channel file is 8 GB as float32.
MAX_FULL_SECONDS = 1800.0


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header of an audio file, or MaaError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise MaaError(f"{path}: file not found; check the path (relative paths in a manifest are relative to the manifest's folder)")
    if path.stat().st_size == 0:
        raise MaaError(f"{path}: empty file (0 bytes); re-export or remove it")
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile's messages are long and vary by version
        raise MaaError(f"{path}: not a readable audio file ({_short(e)}); convert it to wav/flac/ogg/mp3") from None
    if info.format == "WAV":
        promised = _wav_data_bytes(path)
        frame_bytes = info.channels * _SAMPLE_BYTES.get(info.subtype, 0)
        if promised and frame_bytes and promised // frame_bytes > info.frames and info.samplerate > 0:
            warn(f"{path}: truncated: its header promises {promised // frame_bytes / info.samplerate:.2f} s, "
                 f"the file holds {info.duration:.2f} s; using what is there (re-export it to get the rest)")
    return info


_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _wav_data_bytes(path: Path) -> int | None:
    """The size a RIFF/WAVE file's header gives its `data` chunk (None when unknown or a streaming 0/~0)."""

    try:
        with open(path, "rb") as f:
            if f.read(12)[8:12] != b"WAVE":
                return None
            for _ in range(64):  # fmt, fact, LIST, ... then data
                head = f.read(8)
                if len(head) < 8:
                    return None
                cid, size = head[:4], struct.unpack("<I", head[4:])[0]
                if cid == b"data":
                    return size if 0 < size < 0xFFFFFFFF else None
                f.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def load_audio(
    path: str | os.PathLike,
    sr: int = SAMPLE_RATE,
    max_seconds: float | None = None,
    offset_seconds: float = 0.0,
    info: sf._SoundFileInfo | None = None,
) -> np.ndarray:
    """Decode `path` to a float32 mono signal at `sr` Hz, in [-1, 1].

    Only the first `max_seconds` (after `offset_seconds`) are decoded, so a long file costs
    no more than the part that is used. Without `max_seconds`, files longer than
    MAX_FULL_SECONDS are refused with a clear error instead of exhausting memory.
    """
    path = Path(path)
    info = info or audio_info(path)  # callers that already read the header pass it in
    if info.frames == 0 or info.samplerate <= 0:
        raise MaaError(f"{path}: zero-length audio (no samples); remove it from the data set")
    start = int(round(offset_seconds * info.samplerate))
    if max_seconds is None:
        if info.duration > MAX_FULL_SECONDS:
            raise MaaError(
                f"{path}: {info.duration / 60:.1f} min is too long to load whole (limit {MAX_FULL_SECONDS / 60:.0f} min); "
                "use --duration to take a fixed-length excerpt, or split the file"
            )
        frames = -1
    else:
        frames = int(np.ceil(max_seconds * info.samplerate))
    try:
        x, file_sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:
        raise MaaError(f"{path}: decoding failed ({_short(e)}); the file may be truncated or corrupt") from None
    if x.shape[0] == 0:
        raise MaaError(f"{path}: zero-length audio (no samples); remove it from the data set")
    if not np.isfinite(x).all():
        raise MaaError(f"{path}: contains NaN or infinite samples; the file is corrupt, re-export it")
    over = int(np.count_nonzero(np.abs(x) > 1.0))  # only float files can hold these
    if over:
        warn(f"{path}: {over} sample(s) beyond +-1 (peak {float(np.abs(x).max()):.2f}) clipped to +-1; "
             "normalise the file to keep its waveform")
    x = x.mean(axis=1)  # downmix: averaging keeps the level of correlated channels
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(np.clip(x, -1.0, 1.0), dtype=np.float32)


def save_wav(path: str | os.PathLike, audio, sr: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM wav atomically (temp file + rename). Accepts numpy or torch, 1-D."""
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise MaaError(f"{path}: refusing to write audio with NaN/inf samples (model output is broken)")
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    return path


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad a 1-D signal to exactly n samples."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def _short(e: Exception) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return s[:160]

