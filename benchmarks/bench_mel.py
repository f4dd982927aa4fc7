"""Throughput of `maa mel` (maa.data.mel_job.compute_mels) against a plain per-file librosa loop.

Both process the same generated clips (10 s, 44.1 kHz stereo wav, as downloaded data sets
usually are) to 16 kHz 80-bin log-mels. Prints clips/s and audio-seconds/s for each and the ratio.

    .venv/bin/python benchmarks/bench_mel.py [--clips 200] [--device cpu|cuda] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf


def make_clips(root: Path, n: int, seconds: float, sr: int) -> list[dict]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n):
        f0 = rng.uniform(100, 1000)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))
        p = root / f"clip{i:04d}.wav"
        sf.write(p, np.stack([y, y * 0.8], 1).astype(np.float32), sr, subtype="PCM_16")
        rows.append({"id": p.stem, "audio": str(p)})
    return rows


def librosa_loop(rows: list[dict], seconds: float) -> float:
    t0 = time.perf_counter()
    for r in rows:
        y, _ = librosa.load(r["audio"], sr=16000, mono=True, duration=seconds)
        m = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=256, n_mels=80, fmax=8000, power=1.0)
        np.log10(np.maximum(m, 1e-5)).astype(np.float16)
    return time.perf_counter() - t0


def maa_mel(rows: list[dict], out: Path, seconds: float, device: str, workers: int) -> float:
    from maa.data.mel_job import MelJob, compute_mels  # noqa: PLC0415  torch: slow import, after the arguments are parsed (--help stays fast)

    t0 = time.perf_counter()
    s = compute_mels(rows, MelJob(out_dir=out, duration=seconds, device=device, workers=workers, batch_size=16))
    assert s.done == len(rows), s.failures[:3]
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        rows = make_clips(tmp / "clips", a.clips, a.seconds, a.sr)
        audio_s = a.clips * a.seconds
        maa_mel(rows[:4], tmp / "warm", a.seconds, a.device, 0)  # warm-up: imports, filterbank
        t_ref = librosa_loop(rows, a.seconds)
        t_maa = maa_mel(rows, tmp / "out", a.seconds, a.device, a.workers)
    print(f"machine: {os.cpu_count()} cores, device {a.device}, {a.clips} clips x {a.seconds:g} s at {a.sr} Hz stereo")
    print(f"librosa per-file loop: {t_ref:7.2f} s  {a.clips / t_ref:7.1f} clips/s  {audio_s / t_ref:8.0f} audio-s/s")
    print(f"maa mel ({a.workers} workers): {t_maa:7.2f} s  {a.clips / t_maa:7.1f} clips/s  {audio_s / t_maa:8.0f} audio-s/s")
    print(f"speed-up: {t_ref / t_maa:.2f}x")


if __name__ == "__main__":
    main()
