"""Render SoundFont presets to audio: write a tiny MIDI file, play it through the fluidsynth CLI.

Used by the demo corpus (recipes/demo_corpus.py) and by tests that need real-sounding clips.
A MIDI file here is one track: bank select, program change, then notes. At the default
tempo (120 bpm) and 480 ticks per quarter note, one second is 960 ticks.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from maa.core.errors import MaaError

SF2_DIR = Path("/usr/share/sounds/sf2")
TICKS_PER_SECOND = 960
DRUM_CHANNEL = 9  # General MIDI channel 10: bank 128 holds the drum kits


@dataclass
class Note:
    """A note to render: start and length in seconds, MIDI pitch and velocity."""
    start: float     # seconds
    length: float    # seconds until note-off (the release and reverb ring on after it)
    pitch: int       # MIDI note number; on the drum channel it picks the instrument
    velocity: int    # 1..127


def midi_bytes(bank: int, program: int, notes: list[Note]) -> bytes:
    """A format-0 MIDI file that selects bank/program and plays `notes`."""
    drums = bank == 128
    ch = DRUM_CHANNEL if drums else 0
    events: list[tuple[int, int, bytes]] = []  # (tick, order, bytes): note-offs sort before note-ons
    if not drums:
        events += [(0, 0, bytes([0xB0 | ch, 0, bank])), (0, 0, bytes([0xB0 | ch, 32, 0]))]
    events.append((0, 0, bytes([0xC0 | ch, program])))
    for n in notes:
        on = int(round(n.start * TICKS_PER_SECOND))
        off = on + max(1, int(round(n.length * TICKS_PER_SECOND)))
        events.append((on, 2, bytes([0x90 | ch, n.pitch & 0x7F, max(1, min(127, n.velocity))])))
        events.append((off, 1, bytes([0x80 | ch, n.pitch & 0x7F, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = b"", 0
    for tick, _, msg in events:
        track += _vlq(tick - now) + msg
        now = tick
    track += _vlq(0) + b"\xff\x2f\x00"  # end of track
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track


def fluidsynth_available() -> bool:
    """Whether the fluidsynth program is installed."""
    return shutil.which("fluidsynth") is not None


def render(sf2: str | Path, bank: int, program: int, notes: list[Note], sr: int = 16000, gain: float = 0.5) -> np.ndarray:
    """Play `notes` on a preset; returns float32 mono at `sr`, including the release tail."""
    if not fluidsynth_available():
        raise MaaError("fluidsynth: not installed; run `apt-get install fluidsynth fluid-soundfont-gm fluid-soundfont-gs`")
    sf2 = Path(sf2)
    if not sf2.exists():
        raise MaaError(f"{sf2}: SoundFont not found; run `apt-get install fluid-soundfont-gm fluid-soundfont-gs`")
    with tempfile.TemporaryDirectory(prefix="maa-fluid-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi_bytes(bank, program, notes))
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(sr), "-g", str(gain), "-F", str(wav), str(sf2), str(mid)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not wav.exists():
            raise MaaError(f"{sf2}: fluidsynth failed ({(r.stderr or r.stdout).strip()[:200]})")
        x, file_sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if file_sr != sr:
        raise MaaError(f"fluidsynth wrote {file_sr} Hz instead of {sr} Hz")
    return x.mean(axis=1)


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))

