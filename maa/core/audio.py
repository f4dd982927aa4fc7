"""Audio I/O: load anything soundfile reads (wav, flac, ogg, mp3), mono, 16 kHz; write wav atomically;
and the log-mel features every model reads (`mel_spectrogram`, MelConfig: see the section below).

Decoding goes through libsndfile (the soundfile wheel bundles one with mp3 support);
resampling uses soxr's high-quality mode, the same engine librosa uses by default.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
import soxr
import torch

from maa.core.config import ConfigMixin, Range
from maa.core.errors import MaaError, warn
from maa.core.io import atomic_path

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


# -- log-mel features ------------------------------------------------------------------------------
#
# Log-mel front end with Make-An-Audio's numbers, on torch.stft (batched, GPU-capable).
#
# Framing (the HiFi-GAN convention Make-An-Audio uses):
#   * 16 kHz mono, clamped to [-1, 1];
#   * reflect-pad (n_fft - hop) / 2 = 384 samples on each side, STFT with center=False,
#     n_fft 1024, Hann window 1024, hop 256 -> N // 256 frames for N samples;
#   * magnitude (not power), Slaney-normalised 80-band filterbank 0-8000 Hz (librosa.filters.mel);
#   * log10(clamp(x, min=1e-5)): values lie roughly in [-5, 1.5].
# The last frame is dropped, so a 10 s clip (160,000 samples) gives the 80 x 624 mel the
# models train on (624 = 8 x 78, divisible by the VAE's 8x downsampling).

LOG_FLOOR = 1e-5
MEL_MIN = float(np.log10(LOG_FLOOR))  # -5: the value of silence


@dataclass(frozen=True)
class MelConfig(ConfigMixin):
    """The log-mel transform's settings (Make-An-Audio's: 16 kHz, 1024-point STFT, hop 256, 80 bands)."""
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop_length) // 2

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    limits: ClassVar[dict] = {
        "sample_rate": Range(1000, 192_000), "n_fft": Range(16, 16384), "win_length": Range(16, 16384),
        "hop_length": Range(1, 4096), "n_mels": Range(1, 512), "fmin": Range(0.0, 96_000.0), "fmax": Range(0.0, 96_000.0),
    }

    def check_relations(self) -> None:
        if self.win_length > self.n_fft:
            self.fail("win_length", f"{self.win_length} is longer than n_fft {self.n_fft}")
        if self.hop_length > self.n_fft:
            self.fail("hop_length", f"{self.hop_length} is longer than n_fft {self.n_fft}")
        if not self.fmin < self.fmax <= self.sample_rate / 2:
            self.fail("fmax", f"{self.fmax:g} must lie above fmin {self.fmin:g} and at most at the Nyquist "
                              f"frequency {self.sample_rate / 2:g}")


DEFAULT = MelConfig()


def num_frames(num_samples: int, cfg: MelConfig = DEFAULT) -> int:
    """Frames of the mel of `num_samples` samples (the last STFT frame dropped)."""
    return max(num_samples // cfg.hop_length - 1, 1)


def samples_for_frames(frames: int, cfg: MelConfig = DEFAULT) -> int:
    """Samples that give exactly `frames` mel frames: (frames + 1) * hop."""
    return (frames + 1) * cfg.hop_length


@lru_cache(maxsize=8)
def _mel_basis_np(cfg: MelConfig) -> np.ndarray:
    # librosa.filters.mel(norm="slaney", htk=False), equal to 1e-7 (tests/core/test_mel.py checks
    # against librosa); torchaudio imports in 0.2 s where librosa (numba, scipy) takes ~1.5 s
    from torchaudio.functional import melscale_fbanks  # noqa: PLC0415  torchaudio: slow import, kept off this module's import

    return melscale_fbanks(cfg.n_fft // 2 + 1, cfg.fmin, cfg.fmax, cfg.n_mels, cfg.sample_rate, norm="slaney",
                           mel_scale="slaney").T.numpy().astype(np.float32)


def mel_basis(cfg: MelConfig = DEFAULT, device=None, dtype=torch.float32) -> torch.Tensor:
    """The (n_mels, n_fft // 2 + 1) mel filterbank as a tensor."""
    return torch.from_numpy(_mel_basis_np(cfg)).to(device=device, dtype=dtype)


def mel_spectrogram(wav: torch.Tensor | np.ndarray, cfg: MelConfig = DEFAULT) -> torch.Tensor:
    """Log-mel of (T,) or (B, T) audio -> (80, F) or (B, 80, F), F = T // hop - 1.

    Signals shorter than n_fft are zero-padded to n_fft first (reflect padding needs
    more samples than the pad width).
    """
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    squeeze = wav.dim() == 1
    x = wav.float().reshape(-1, wav.shape[-1]).clamp(-1.0, 1.0)
    n = x.shape[-1]
    if n < cfg.n_fft:
        x = torch.nn.functional.pad(x, (0, cfg.n_fft - n))
    frames = num_frames(n, cfg)
    x = torch.nn.functional.pad(x.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
    window = torch.hann_window(cfg.win_length, device=x.device, dtype=x.dtype)
    spec = torch.stft(
        x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
        center=False, return_complex=True,
    ).abs()
    mel = torch.matmul(mel_basis(cfg, x.device, x.dtype), spec)
    mel = torch.log10(mel.clamp(min=LOG_FLOOR))[..., :frames]
    if mel.shape[-1] < frames:  # only for signals shorter than n_fft
        mel = torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]), value=MEL_MIN)
    return mel[0] if squeeze else mel


def as_mel_batch(mel, device) -> tuple[torch.Tensor, bool]:
    """(80, F) or (B, 80, F), numpy or torch -> float32 (B, 80, F) on `device`, and whether it was 2-D."""
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(mel)
    return mel.reshape(-1, *mel.shape[-2:]).to(device, torch.float32), mel.dim() == 2


def mel_to_linear(log_mel: torch.Tensor, cfg: MelConfig = DEFAULT) -> torch.Tensor:
    """Inverse helper for Griffin-Lim: log10-mel (..., 80, F) -> linear magnitude (..., n_fft/2+1, F).

    Uses the pseudo-inverse of the filterbank, clamped at zero: the least-squares
    magnitude whose mel projection matches.
    """
    mel = torch.pow(10.0, log_mel.float())
    basis = mel_basis(cfg, mel.device, mel.dtype)
    inv = torch.linalg.pinv(basis)
    return torch.matmul(inv, mel).clamp(min=0.0)


def frames_for_duration(seconds: float, factor: int = 8) -> int:
    """Mel frames for `seconds`, rounded to a whole number of latent frames (a multiple of 8).

    10 s -> 624 frames (the paper's crop); output audio has (frames + 1) * 256 samples.
    """
    if not seconds > 0:
        raise MaaError(f"--duration {seconds}: must be positive")
    exact = num_frames(int(round(seconds * SAMPLE_RATE)))
    return max(factor, int(round(exact / factor)) * factor)


def seconds_for_frames(frames: int) -> float:
    """The seconds of audio that `frames` mel frames cover."""
    return samples_for_frames(frames) / SAMPLE_RATE
