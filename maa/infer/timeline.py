"""A timeline of sound events: each event sounds in its own span, overlaps allowed.

    events = parse_timeline("0-3: a dog barks; 2-6: rain falls; 5-10: a car passes")
    t = render(model, events, 10.0, opts, seed=0, background="wind blows")

Two ways were built and measured (benchmarks/bench_timeline.py, bundled model, per-frame
audio-text score of each event inside its span):

  * "mix" (the default): each event is generated as a clip of its own span's length (any length:
    maa.infer.longform) and placed in its span with EVENT_FADE fades; the background, when given,
    is one continuous clip of the whole duration under them at BACKGROUND_GAIN. Nothing sounds
    outside an event's span but the background, and overlapping events simply add.
  * "joint": one latent, denoised by each event's prompt inside its span (latent masks with
    LATENT_FADE ramps, maa.models.diffusion.regional), the background (or the negative prompt)
    elsewhere. One clip of one texture, but the UNet's and decoder's attention blend the stretches
    and it cannot be silent between events; one window long at most.

The record of a render lists the spans it honoured (`Timed.record`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, fit_length, frames_for_duration, mel_spectrogram, samples_for_frames
from maa.core.errors import MaaError
from maa.infer import sampling
from maa.infer.inpaint import LATENT_FADE, latent_times, parse_span, sample_times, span_weight
from maa.infer.limits import check_timeline
from maa.infer.longform import generate_long, windows_for
from maa.infer.sampling import WINDOW

EVENT_FADE = 0.1  # s, in and out of each event's span
BACKGROUND_GAIN = 0.5  # the background sits 6 dB under the events
EVENT_SEED = 7_919  # event i samples with seed + (i + 1) * EVENT_SEED; the background with seed
MODES = ("mix", "joint")


@dataclass
class Event:
    """One timeline event: `prompt` sounds from `start` to `end` seconds."""

    start: float
    end: float
    prompt: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "prompt": self.prompt}


def _event(d, where: str) -> Event:
    try:
        ev = Event(float(d["start"]), float(d["end"]), str(d["prompt"]).strip())
    except (KeyError, TypeError, ValueError):
        raise MaaError(f"{where}: each event needs start, end (seconds) and prompt, e.g. "
                       '{"start": 0, "end": 3, "prompt": "a dog barks"}') from None
    return ev


def parse_timeline(spec: str) -> list[Event]:
    """Events from "0-3: a dog barks; 2-6: rain falls" or from a JSON file: a list of
    {start, end, prompt} (or {"events": [...]}), or JSON lines of them. Sorted by start."""
    spec = str(spec).strip()
    path = Path(spec)
    if spec.endswith((".json", ".jsonl")) or (path.suffix and path.exists()):
        if not path.is_file():
            raise MaaError(f"--timeline {spec}: no such file; give a JSON file of {{start, end, prompt}} "
                           "or inline events like \"0-3: a dog barks; 2-6: rain falls\"")
        text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            try:
                data = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                raise MaaError(f"{path}: not JSON or JSON lines ({e.msg}, line {e.lineno})") from None
        if isinstance(data, dict):
            data = data.get("events", [data])
        events = [_event(d, str(path)) for d in data]
    else:
        events = []
        for item in filter(None, (p.strip() for p in spec.split(";"))):
            span, sep, prompt = item.partition(":")
            if not sep or not prompt.strip():
                raise MaaError(f"--timeline {item!r}: want START-END: PROMPT, e.g. \"0-3: a dog barks; 2-6: rain falls\"")
            s, e = parse_span(span, "--timeline")
            events.append(Event(s, e, prompt.strip()))
    return check_events(events)


def check_events(events: list[Event]) -> list[Event]:
    """The events checked (at least one, each span inside the bounds), in start order."""
    if not events:
        raise MaaError("--timeline: no events; give e.g. \"0-3: a dog barks; 2-6: rain falls\"")
    check_timeline(events)  # maa.infer.limits: finite, bounded spans, at most MAX_EVENTS
    for ev in events:
        if not 0 <= ev.start < ev.end:
            raise MaaError(f"--timeline {ev.start:g}-{ev.end:g}: want 0 <= START < END seconds")
        if not ev.prompt:
            raise MaaError(f"--timeline {ev.start:g}-{ev.end:g}: empty prompt; describe the sound")
    return sorted(events, key=lambda ev: (ev.start, ev.end))


def timeline_seconds(events: list[Event]) -> float:
    """The length a timeline needs: its last event's end."""
    return max(ev.end for ev in events)


@dataclass
class Timed:
    """A timeline made: the audio, its mel and latent, and the events as the record lists them."""

    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames): joint: the decoded mel; mix: the mel of the sum
    events: list[Event]
    background: str | None
    mode: str
    stems: list[np.ndarray] = field(default_factory=list)  # mix: each event's placed audio (then the background)

    @property
    def record(self) -> dict:
        """What the JSON line records about the timeline."""
        return {"timeline": [ev.to_dict() for ev in self.events], "background": self.background,
                "timeline_mode": self.mode}


def _place(n: int, clip: np.ndarray, start: float, end: float) -> np.ndarray:
    """`clip` from `start` s, cut at `end`, with EVENT_FADE fades inside the span, in n samples."""
    out = np.zeros(n, np.float32)
    i0 = min(n, int(round(start * SAMPLE_RATE)))
    i1 = min(n, int(round(end * SAMPLE_RATE)), i0 + len(clip))
    out[i0:i1] = clip[:i1 - i0]
    span = ((start + EVENT_FADE / 2), (end - EVENT_FADE / 2)) if end - start > EVENT_FADE else (start, end)
    return out * span_weight(sample_times(n), [span], EVENT_FADE)


def steps_for(events: list[Event], seconds: float, mode: str, background: str | None, factor: int = 8) -> int:
    """Clips a render samples, each one run of the sampler (progress-bar totals)."""
    if mode == "joint":
        return 1
    clips = [ev.end - ev.start for ev in events] + ([seconds] if background else [])
    return sum(windows_for(c, factor) for c in clips)


@torch.no_grad()
def render(model, events: list[Event], seconds: float, opts, seed: int = 0, background: str | None = None,
           mode: str = "mix", on_step: Callable[[], None] | None = None) -> Timed:
    """`seconds` of audio (rounded to latent frames) with each event in its span."""
    events = check_events(events)
    if mode not in MODES:
        raise MaaError(f"--timeline-mode {mode!r}: choose {' or '.join(MODES)}")
    frames = frames_for_duration(seconds, model.vae.factor)
    n = samples_for_frames(frames)
    late = [ev for ev in events if ev.start >= n / SAMPLE_RATE]
    if late:
        raise MaaError(f"--timeline {late[0].start:g}-{late[0].end:g}: starts after the {n / SAMPLE_RATE:.2f} s clip; "
                       "raise --duration or move the event")
    if mode == "joint":
        return _joint(model, events, frames, opts, seed, background, on_step)
    stems = []
    for i, ev in enumerate(events):
        end = min(ev.end, n / SAMPLE_RATE)
        clip = generate_long(model, ev.prompt, end - ev.start, opts, seed + (i + 1) * EVENT_SEED, on_step=on_step)
        stems.append(_place(n, clip.audio, ev.start, end))
    if background:
        bg = generate_long(model, background, n / SAMPLE_RATE, opts, seed, on_step=on_step).audio
        stems.append(BACKGROUND_GAIN * fit_length(bg, n))
    audio = np.sum(stems, axis=0)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0.99:  # overlapping events add up; scale the sum rather than clip it
        audio, stems = audio * (0.99 / peak), [s * (0.99 / peak) for s in stems]
    audio = audio.astype(np.float32)
    return Timed(audio, mel_spectrogram(torch.from_numpy(audio)).numpy(), events, background, mode, stems)


def _joint(model, events, frames, opts, seed, background, on_step) -> Timed:
    if frames > frames_for_duration(WINDOW, model.vae.factor):
        raise MaaError(f"--timeline-mode joint: at most {WINDOW:g} s; use the default mix mode for longer timelines")
    c, h, w = model.vae.latent_shape(frames)
    t = latent_times(w, model.vae.factor)
    weights = [span_weight(t, [(ev.start, ev.end)], LATENT_FADE) for ev in events]
    weights.insert(0, np.clip(1 - np.sum(weights, axis=0), 0, 1))  # the gaps: background or negative prompt
    texts = [background or opts.negative] + [ev.prompt for ev in events]
    noise = sampling.seeded_noise((c, h, w), seed)[None].to(model.device)
    z = sampling.sample(model, sampling.Regions(texts, torch.from_numpy(np.stack(weights))), noise, opts,
                        on_step=on_step, seed=seed)
    mels, wavs = sampling.decode(model, z, frames)
    return Timed(wavs[0].astype(np.float32), mels[0], events, background, "joint")


# ----------------------------------------------------------------------------- as a generation mode

def events_of(opts) -> list[Event]:
    """The checked events of generation options' timeline (dicts or Events)."""
    return check_events([_event(d, "--timeline") if isinstance(d, dict) else d for d in opts.timeline])


def steps_of(opts, factor: int = 8) -> int:
    """Clips a render of these options samples (each one run of the sampler)."""
    return steps_for(events_of(opts), opts.seconds(), getattr(opts, "timeline_mode", "mix"),
                     getattr(opts, "background", None), factor)


@torch.no_grad()
def generate_one(model, prompt: str, seed: int, opts, parts: list[str] | None = None,
                 on_step: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, None, dict]:
    """One output of the "timeline" mode (maa.infer.options): audio, mel, no latent, and what the
    record adds (the events, the background, the mode)."""
    t = render(model, events_of(opts), opts.seconds(), opts, seed, getattr(opts, "background", None),
               getattr(opts, "timeline_mode", "mix"), on_step)
    return t.audio, t.mel, None, t.record
