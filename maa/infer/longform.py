"""Audio of any length by windowed continuation.

The model samples windows of WINDOW seconds (its usual clip length). Window 0 is an ordinary
sample; each next one is sampled with OVERLAP seconds of the previous one's latent held as known
(maa.infer.inpaint's held-known sampling, the hold ramping off over the overlap's last
LATENT_FADE seconds), so texture and level carry over and only the rest is new. The held
stretch ends TAIL seconds before the previous window does: the bundled model often lets the last
second of a clip fade to silence (2 of 6 seeds at 10 s), and holding that would carry the
silence on. For the same reason the clip is sampled TAIL seconds longer than asked and cut.
Each window is decoded and vocoded on its own and the windows are crossfaded (linearly: both
sides come from the same latent there) over JOIN_FADE seconds in the middle of the held
stretch, away from either window's edge (and from the louder first half second of a clip).
Model memory is one window's whatever the duration; only the output audio (and mel) grow.

    long = generate_long(model, "rain falls", 120.0, opts, seed=0)       # 15 windows of 10 s
    long = generate_long(model, lambda t0, t1: "rain" if t0 < 60 else "wind", 120.0, opts)

A prompt given as a function of the window's new stretch (t0, t1 seconds) changes along the way;
the held overlap makes each change a continuation rather than a cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import frames_for_duration, samples_for_frames
from maa.infer import sampling
from maa.infer.inpaint import LATENT_FADE
from maa.infer.sampling import WINDOW

OVERLAP = 2.0  # s held from the previous window
TAIL = 1.25  # s at the end of each window that the next one samples again
JOIN_FADE = 0.5  # s of audio crossfade, centred in the overlap
WINDOW_SEED = 1_000_003  # window k samples with seed + k * WINDOW_SEED

Prompt = str | Callable[[float, float], str]


def window_starts(total: int, window: int, overlap: int) -> list[int]:
    """Start (latent frames) of each window of `window` frames over `total`: a hop of
    window - overlap, the last window flush with the end (its overlap may be longer)."""
    if total <= window:
        return [0]
    if not 0 < overlap < window:
        raise ValueError("window_starts: need 0 < overlap < window")
    return list(range(0, total - window, window - overlap)) + [total - window]


@dataclass
class Long:
    """A clip made window by window: the audio, its mel, and what the record says of the windows."""

    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames)
    windows: list[tuple[float, float]]  # each window's [start, end) in seconds (the last reaches TAIL past the end)
    joins: list[float] = field(default_factory=list)  # centre of each crossfade, seconds
    prompts: list[str] = field(default_factory=list)  # each window's prompt


def _fade_in(n: int, centre: int, width: int) -> np.ndarray:
    """0 before centre - width/2, 1 after centre + width/2, linear between (n points)."""
    return np.clip((np.arange(n) - centre) / max(width, 1) + 0.5, 0.0, 1.0).astype(np.float32)


def _paste(buf: np.ndarray, piece: np.ndarray, at: int, fade_centre: int | None, fade: int) -> None:
    """Add `piece` into buf[..., at:] crossfading from what is there around fade_centre (relative to at)."""
    n = min(piece.shape[-1], buf.shape[-1] - at)
    piece = piece[..., :n]
    if fade_centre is None:
        buf[..., at:at + n] = piece
        return
    w = _fade_in(n, fade_centre, fade)
    buf[..., at:at + n] = buf[..., at:at + n] * (1 - w) + piece * w


@torch.no_grad()
def generate_long(model, prompt: Prompt, seconds: float, opts, seed: int = 0, window: float = WINDOW,
                  overlap: float = OVERLAP, tail: float = TAIL, on_window: Callable[[int, int], None] | None = None,
                  on_step: Callable[[], None] | None = None) -> Long:
    """`seconds` of audio (rounded to latent frames) for `prompt`, window by window.

    opts: anything with steps, sampler, guidance, negative and eta. on_window(k, n) after window k
    of n; on_step after each sampler step."""
    factor = model.vae.factor
    hop = MEL.hop_length * factor  # samples per latent frame
    total, win, ov, cut = _layout(seconds, factor, window, overlap, tail)
    canvas = total + (cut if total > win else 0)
    starts = window_starts(canvas, win, ov + cut)
    c, h, _ = model.vae.latent_shape(factor)
    fade_lat = LATENT_FADE * MEL.sample_rate / hop
    fade = int(JOIN_FADE * MEL.sample_rate)
    audio = np.zeros(samples_for_frames(canvas * factor), np.float32)
    mel = np.zeros((MEL.n_mels, canvas * factor), np.float32)
    out = Long(audio, mel, [])
    prev, prev_start = None, 0
    for k, s in enumerate(starts):
        held = 0 if prev is None else prev_start + win - cut - s  # frames held from the previous window
        t_new = (s + held) * hop / MEL.sample_rate, (s + win) * hop / MEL.sample_rate
        text = prompt(*t_new) if callable(prompt) else prompt
        noise = sampling.seeded_noise((c, h, win), seed + k * WINDOW_SEED)[None].to(model.device)
        held_known = None
        if prev is not None:
            known = torch.zeros_like(noise)
            known[..., :held] = prev[..., s - prev_start:s - prev_start + held]
            # hold the shared frames, ramping off over the overlap's last LATENT_FADE seconds
            held_known = sampling.Known(known, torch.from_numpy(1 - _fade_in(win, held - fade_lat / 2, fade_lat)))
        z = sampling.sample(model, [text], noise, opts, held_known, on_step, seed=seed + k * WINDOW_SEED)
        mels, wavs = sampling.decode(model, z, win * factor)
        centre = None if prev is None else held * hop // 2
        _paste(audio, wavs[0], s * hop, centre, fade)
        _paste(mel, mels[0], s * factor, None if centre is None else centre // MEL.hop_length, fade // MEL.hop_length)
        if centre is not None:
            out.joins.append((s * hop + centre) / MEL.sample_rate)
        out.windows.append((s * hop / MEL.sample_rate, (s + win) * hop / MEL.sample_rate))
        out.prompts.append(text)
        prev, prev_start = z, s
        if on_window:
            on_window(k, len(starts))
    out.audio, out.mel = audio[:samples_for_frames(total * factor)], mel[:, :total * factor]
    return out


def _layout(seconds: float, factor: int, window: float, overlap: float, tail: float) -> tuple[int, int, int, int]:
    """Latent frames of the clip, of a window, of the held overlap and of the re-sampled tail."""
    per = MEL.sample_rate / (MEL.hop_length * factor)  # latent frames per second
    total = frames_for_duration(seconds, factor) // factor
    win = min(total, frames_for_duration(window, factor) // factor)
    cut = min(round(tail * per), max(0, win // 3))
    ov = max(1, min(win - cut - 1, round(overlap * per)))
    return total, win, ov, cut


def windows_for(seconds: float, factor: int = 8, window: float = WINDOW, overlap: float = OVERLAP,
                tail: float = TAIL) -> int:
    """How many windows generate_long samples for `seconds` (progress-bar totals)."""
    total, win, ov, cut = _layout(seconds, factor, window, overlap, tail)
    return len(window_starts(total + (cut if total > win else 0), win, ov + cut))


def _schedule(prompt: str, seconds: float, parts: list[str]) -> Prompt:
    """A split prompt over a long clip: part k over the k-th equal share (by each window's new middle)."""
    if len(parts) < 2:
        return prompt
    return lambda t0, t1: parts[min(len(parts) - 1, int((t0 + t1) / 2 / seconds * len(parts)))]


@torch.no_grad()
def generate_one(model, prompt: str, seed: int, opts, parts: list[str] | None = None,
                 on_step: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, None, dict]:
    """One output of the "long" mode (maa.infer.options): audio, mel, no latent (one per window),
    and what the record adds (the windows, and their prompts when they change)."""
    long = generate_long(model, _schedule(prompt, opts.duration, parts or [prompt]), opts.duration, opts, seed,
                         on_step=on_step)
    extra = {"windows": len(long.windows)}
    if len(set(long.prompts)) > 1:
        extra["window_prompts"] = long.prompts
    return long.audio, long.mel, None, extra


def window_stretches(seconds: float, factor: int = 8, window: float = WINDOW, overlap: float = OVERLAP,
                     tail: float = TAIL) -> list[tuple[float, float]]:
    """Each window's new stretch (t0, t1) s, as generate_long computes it (what a prompt function
    is called with): for planning per-window conditions ahead (maa.infer.visual)."""
    total, win, ov, cut = _layout(seconds, factor, window, overlap, tail)
    starts = window_starts(total + (cut if total > win else 0), win, ov + cut)
    per = MEL.sample_rate / (MEL.hop_length * factor)
    out, prev = [], None
    for s in starts:
        held = 0 if prev is None else prev + win - cut - s
        out.append(((s + held) / per, (s + win) / per))
        prev = s
    return out
