"""Dynamic reprogramming: new training pairs composed from single-event clips.

Make-An-Audio samples 2-3 events from a database of single-event clips and composes them with
templates: sequential ("A before B": concatenation with short gaps or crossfades) and
simultaneous ("A while B": a mix at a random relative level). The caption describes the
composition, so the model learns combinations it never heard. Drawn afresh every epoch, the
compositions are "dynamic": `Reprogrammer.sample(rng)` is what a training loop calls.

A composition is a list of segments played one after another; a segment is one event or
several events mixed together (the first is the foreground). Spans record where each component
sits in the output, in seconds, so later checks can verify order.

    events = [Event("dog_1", dog_audio, "a dog barks"), Event("horn_3", horn_audio, "a car horn honks")]
    comp = compose(events, np.random.default_rng(0), ComposeConfig(duration=10))
    comp.caption   # e.g. "a dog barks before a car horn honks"
    comp.spans     # [(0.0, 1.9), (2.2, 3.4)]

In a training loop (fresh compositions every step; seed the generator from the step for exact resume):

    gen = Reprogrammer.from_manifest("data/demo/train.jsonl", ComposeConfig(duration=10))
    comp = gen.sample(np.random.default_rng([seed, step, i]))   # comp.audio, comp.caption
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.data.formats import read_manifest
from maa.core.audio import load_audio
from pathlib import Path
from maa.core.audio import save_wav

# Sequential templates join segment phrases in time order; "after" names the later one first.
SEQUENTIAL = {
    "before": lambda p: f"{p[0]} before {p[1]}" + "".join(f", followed by {q}" for q in p[2:]),
    "then": lambda p: ", then ".join(p),
    "followed_by": lambda p: p[0] + " followed by " + " and then ".join(p[1:]),
    "after": lambda p: f"{p[1]} after {p[0]}",  # two segments only
}
# Simultaneous templates describe one mixed segment; the first phrase is the foreground.
SIMULTANEOUS = {
    "while": lambda p: f"{p[0]} while {_and(p[1:])}",
    "same_time": lambda p: f"{_and(p)} at the same time",
    # "with B in the background" needs a noun phrase; captions are mostly clauses ("frogs croak"), so "while"
    "background": lambda p: f"{p[0]} while {_and(p[1:])} in the background",
}
# Relative level (dB) of the other events against the foreground, per simultaneous template.
LEVELS_DB = {"while": (-6.0, 0.0), "same_time": (-3.0, 0.0), "background": (-14.0, -8.0)}


@dataclass
class Event:
    """A single-event clip: its audio, what it sounds like, and its id."""
    id: str
    audio: np.ndarray   # float32 mono at ComposeConfig.sr
    phrase: str         # what it sounds like, e.g. "a dog barks"
    labels: list[str] = field(default_factory=list)
    license: str = ""


@dataclass
class ComposeConfig:
    """How compositions are made: output length, number of events, overlap and level rules."""
    duration: float = 10.0          # output length in seconds (cut or zero-padded)
    sr: int = SAMPLE_RATE
    min_events: int = 2
    max_events: int = 3
    p_sequential: float = 0.5       # else simultaneous; with 3 events, "A while B, then C" also occurs
    gap: tuple[float, float] = (-0.15, 0.6)  # seconds between sequential segments; negative: overlap, crossfaded
    fade: float = 0.02              # fade in/out of every event (no clicks at cuts and joins)
    trim_db: float = 40.0           # events are trimmed to frames within this many dB of their peak
    loudness_db: float = -20.0      # events, and then the result, normalised to this active RMS (dBFS)
    peak: float = 0.89              # never above this (-1 dBFS): no clipping


@dataclass
class Composition:
    """A composed clip: its audio, caption and the events it is made of."""
    audio: np.ndarray               # float32, exactly duration * sr samples
    caption: str
    components: list[str]           # event ids, in order of onset
    spans: list[tuple[float, float]]  # seconds, per component
    template: str                   # e.g. "before", "while", "while+then"
    segments: list[list[int]]       # indices into `components`, per segment
    phrases: list[str]
    labels: list[str]
    licenses: list[str]


def active_rms(x: np.ndarray, sr: int = SAMPLE_RATE, within_db: float = 30.0) -> float:
    """RMS over the 10 ms frames within `within_db` of the loudest: the level of the sound itself,
    not of the silence around it."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    e = np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    if e.max() <= 0:
        return 0.0
    return float(np.sqrt(e[e >= e.max() * 10 ** (-within_db / 10)].mean()))


def trim(x: np.ndarray, sr: int = SAMPLE_RATE, within_db: float = 40.0) -> np.ndarray:
    """Cut leading and trailing frames more than `within_db` below the loudest 10 ms frame."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    if n == 0:
        return x
    e = np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    if e.max() <= 0:
        return x[:0]
    on = np.flatnonzero(e >= e.max() * 10 ** (-within_db / 10))
    return x[on[0] * hop : min(len(x), (on[-1] + 1) * hop)]


def fade(x: np.ndarray, n_in: int, n_out: int | None = None) -> np.ndarray:
    """Linear fade-in of n_in and fade-out of n_out samples (each at most half of x)."""
    x = np.array(x, dtype=np.float32)
    n_in = min(n_in, len(x) // 2)
    n_out = min(n_in if n_out is None else n_out, len(x) // 2)
    if n_in > 0:
        x[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False, dtype=np.float32)
    if n_out > 0:
        x[len(x) - n_out :] *= np.linspace(1.0, 0.0, n_out + 1, dtype=np.float32)[1:]
    return x


def place(parts: list[np.ndarray], offsets: list[int], gains: list[float], length: int) -> np.ndarray:
    """sum_i gains[i] * parts[i] shifted to offsets[i], cut or zero-padded to `length` samples.
    Concatenation (offsets back to back) and mixing (shared offsets) are both this sum."""
    out = np.zeros(length, dtype=np.float64)
    for x, o, g in zip(parts, offsets, gains):
        end = min(length, o + len(x))
        if end > o:
            out[o:end] += g * x[: end - o]
    return out.astype(np.float32)


def phrase_of(row: dict) -> str | None:
    """A row's sound as a phrase that fits in a sentence: its caption, else its labels."""
    cap = str(row.get("caption") or "").strip().rstrip(".!")
    if cap:
        first = cap.split()[0]
        return cap if len(first) > 1 and first.isupper() else cap[0].lower() + cap[1:]  # keep "TV", "UFO"
    labels = [str(l).replace("_", " ") for l in row.get("labels") or [] if str(l).strip()]
    # "X sounds" reads as a clause ("dog sounds before rain sounds") and as a noun phrase
    # ("dog sounds with rain sounds in the background"), so it fits every template
    return f"{_and(labels)} sounds" if labels else None


def compose(events: list[Event], rng: np.random.Generator, cfg: ComposeConfig | None = None,
            kind: str | None = None, template: str | None = None) -> Composition:
    """Compose 2-3 events. `kind` ("sequential", "simultaneous" or "mixed": A while B, then C)
    and `template` are drawn from rng unless given. Deterministic for a given rng state."""
    cfg = cfg or ComposeConfig()
    n = len(events)
    if n < 2:
        raise MaaError(f"compose: need at least 2 events, got {n}")
    if kind is None:
        kind = "sequential" if rng.random() < cfg.p_sequential else "simultaneous"
        if n >= 3 and rng.random() < 0.25:
            kind = "mixed"
    if kind == "sequential":
        segments = [[i] for i in range(n)]
    elif kind == "simultaneous":
        segments = [list(range(n))]
    elif kind == "mixed":
        if n < 3:
            raise MaaError("compose: a mixed composition (A while B, then C) needs 3 events")
        segments = [[0, 1], list(range(2, n))] if n > 3 else [[0, 1], [2]]
    else:
        raise MaaError(f"compose: unknown kind {kind!r}; use sequential, simultaneous or mixed")

    sr, total = cfg.sr, int(round(cfg.duration * cfg.sr))
    nfade = int(cfg.fade * sr)
    target = 10 ** (cfg.loudness_db / 20)
    # Trim, level-match, and leave room: sequential segments share the duration minus the gaps.
    gaps = [float(rng.uniform(*cfg.gap)) for _ in range(len(segments) - 1)]
    room = total - int(sum(max(g, 0.0) for g in gaps) * sr)
    seg_max = max(4 * nfade + 1, room // len(segments))
    clips = []
    for e in events:
        x = trim(np.asarray(e.audio, dtype=np.float32), sr, cfg.trim_db)[:seg_max]
        if len(x) == 0:
            raise MaaError(f"{e.id}: silent clip, nothing to compose")
        clips.append(x * (target / max(active_rms(x, sr), 1e-9)))
    seg_lens = [max(len(clips[i]) for i in seg) for seg in segments]
    # A negative gap overlaps two segments; the overlap becomes a crossfade (at most half of either).
    joins = []
    for s, g in enumerate(gaps):
        g = int(g * sr)
        joins.append(g if g >= 0 else -min(-g, seg_lens[s] // 2, seg_lens[s + 1] // 2))
    for s, seg in enumerate(segments):
        fin = max(nfade, -joins[s - 1]) if s > 0 else nfade
        fout = max(nfade, -joins[s]) if s < len(joins) else nfade
        for i in seg:
            clips[i] = fade(clips[i], fin, fout)

    # Simultaneous segments: the longest part starts the segment, the others start at random inside it.
    sim_tpl = template if kind == "simultaneous" and template else None
    seg_templates, parts, offsets, gains, seg_phrases = [], [], [], [], []
    start = 0
    for s, seg in enumerate(segments):
        if len(seg) > 1:
            tpl = sim_tpl or str(rng.choice(list(SIMULTANEOUS)))
            if tpl not in SIMULTANEOUS:
                raise MaaError(f"compose: unknown simultaneous template {tpl!r}; choose from {', '.join(SIMULTANEOUS)}")
            seg_templates.append(tpl)
            lo, hi = LEVELS_DB[tpl]
            for j, i in enumerate(seg):
                parts.append(i)
                offsets.append(start + int(rng.integers(0, seg_lens[s] - len(clips[i]) + 1)))
                gains.append(1.0 if j == 0 else 10 ** (float(rng.uniform(lo, hi)) / 20))
            seg_phrases.append(SIMULTANEOUS[tpl]([events[i].phrase for i in seg]))
        else:
            parts.append(seg[0]), offsets.append(start), gains.append(1.0)
            seg_phrases.append(events[seg[0]].phrase)
        if s < len(joins):
            start += seg_lens[s] + joins[s]

    if len(segments) > 1:
        # "B after A" only for two single events: "C after A and B at the same time" is ambiguous
        choices = [t for t in SEQUENTIAL if t != "after" or (kind == "sequential" and len(segments) == 2)]
        seq_tpl = template if kind == "sequential" and template else str(rng.choice(choices))
        if seq_tpl not in SEQUENTIAL or (seq_tpl == "after" and len(segments) != 2):
            raise MaaError(f"compose: template {seq_tpl!r} does not fit {len(segments)} segments")
        caption = SEQUENTIAL[seq_tpl](seg_phrases)
        name = seq_tpl if kind == "sequential" else f"{seg_templates[0]}+{seq_tpl}"
    else:
        caption, name = seg_phrases[0], seg_templates[0]

    mix = place([clips[i] for i in parts], offsets, gains, total)
    level = active_rms(mix, sr)
    scale = target / level if level > 0 else 1.0
    peak = float(np.abs(mix).max()) * scale
    if peak > cfg.peak:
        scale *= cfg.peak / peak
    audio = (mix * scale).astype(np.float32)

    order = sorted(range(len(parts)), key=lambda k: (offsets[k], k))
    ids = [events[parts[k]].id for k in order]
    # 6 decimals: sample-exact at 16 kHz (round(span * sr) gives back the offset)
    spans = [(round(offsets[k] / sr, 6), round(min(total, offsets[k] + len(clips[parts[k]])) / sr, 6)) for k in order]
    pos = {parts[k]: r for r, k in enumerate(order)}
    labels, licenses = [], []
    for e in events:
        labels += [l for l in e.labels[:1] if l not in labels]
        licenses += [l for l in [e.license] if l and l not in licenses]
    return Composition(audio=audio, caption=caption, components=ids,
                       spans=spans, template=name, segments=[[pos[i] for i in seg] for seg in segments],
                       phrases=[events[parts[k]].phrase for k in order], labels=labels, licenses=licenses)


class Reprogrammer:
    """Draws compositions from a pool of single-event clips (what a training loop calls each step).

    Events are picked so no two share a class (first label) or, without labels, a phrase:
    "a dog barks before a dog barks" teaches nothing.
    """

    def __init__(self, events: list[Event], cfg: ComposeConfig | None = None):
        self.cfg = cfg or ComposeConfig()
        if not 2 <= self.cfg.min_events <= self.cfg.max_events:
            raise MaaError(f"events per example: want 2 <= min ({self.cfg.min_events}) <= max ({self.cfg.max_events})")
        self.events = events
        self.kind_of = [(e.labels[0] if e.labels else e.phrase) for e in events]
        if len(set(self.kind_of)) < 2:
            raise MaaError(f"need clips of at least 2 different sounds to compose, got {len(set(self.kind_of))}")

    @classmethod
    def from_manifest(cls, src: str, cfg: ComposeConfig | None = None, split: str | None = None,
                      on_problem=None) -> "Reprogrammer":
        """Load every usable clip of a manifest (optionally one split) into memory, ready to sample.
        The demo corpus is ~40 min of 16 kHz audio: about 160 MB as float32."""

        rows = read_manifest(src, on_problem=on_problem)
        if split:
            rows = [r for r in rows if r.get("split") == split]
        if not rows:
            raise MaaError(f"{src}: no clips{f' with split {split!r}' if split else ''}; nothing to compose from")
        cfg = cfg or ComposeConfig()
        return cls(load_events(rows, sr=cfg.sr, on_problem=on_problem), cfg)

    def pick(self, rng: np.random.Generator) -> list[Event]:
        k = int(rng.integers(self.cfg.min_events, self.cfg.max_events + 1))
        k = min(k, len(set(self.kind_of)))
        chosen, kinds = [], set()
        while len(chosen) < k:
            i = int(rng.integers(len(self.events)))
            if self.kind_of[i] not in kinds:
                chosen.append(self.events[i])
                kinds.add(self.kind_of[i])
        return chosen

    def sample(self, rng: np.random.Generator) -> Composition:
        return compose(self.pick(rng), rng, self.cfg)


def example_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for example `index` of a run: the k-th output does not depend on --count."""
    return np.random.default_rng([seed, index])


def load_events(rows: list[dict], sr: int = SAMPLE_RATE, max_seconds: float = 30.0,
                on_problem=None, progress=None) -> list[Event]:
    """Events from manifest rows; rows with neither caption nor labels, or unreadable audio, are
    reported to on_problem({"id", "audio", "reason"}) and skipped."""

    events = []
    for r in rows:
        if progress:
            progress(1)
        phrase = phrase_of(r)
        if phrase is None:
            if on_problem:
                on_problem({"id": r.get("id"), "audio": r.get("audio"),
                            "reason": f"{r.get('id')}: neither caption nor labels; give it a caption or labels"})
            continue
        try:
            x = load_audio(r["audio"], sr=sr, max_seconds=max_seconds)
        except MaaError as e:
            if on_problem:
                on_problem({"id": r.get("id"), "audio": r.get("audio"), "reason": str(e)})
            continue
        if not np.any(x):
            if on_problem:
                on_problem({"id": r.get("id"), "audio": r.get("audio"), "reason": f"{r['audio']}: silent clip"})
            continue
        labels = [str(l) for l in r.get("labels") or []]
        events.append(Event(str(r["id"]), x, phrase, labels, str(r.get("license") or "")))
    return events


def _and(p: list[str]) -> str:
    return p[0] if len(p) == 1 else ", ".join(p[:-1]) + " and " + p[-1]



def write_compositions(gen: Reprogrammer, count: int, seed: int, audio_dir, progress=None) -> list[dict]:
    """`maa reprogram`: compositions 0..count-1 of `seed` as audio_dir/<id>.wav, and their manifest
    rows (caption, labels, components in order of onset, spans in seconds, template, licenses).
    Example k depends only on (seed, k), so the same seed gives the same bytes whatever `count`."""

    rows = []
    for k in range(count):
        comp = gen.sample(example_rng(seed, k))
        cid = f"reprog_{seed}_{k:06d}"
        path = save_wav(Path(audio_dir) / f"{cid}.wav", comp.audio, gen.cfg.sr)
        rows.append({
            "id": cid, "audio": str(path.resolve()), "caption": comp.caption, "labels": comp.labels,
            "duration": round(len(comp.audio) / gen.cfg.sr, 3), "components": comp.components,
            "spans": [list(s) for s in comp.spans], "template": comp.template, "segments": comp.segments,
            "phrases": comp.phrases, "source": "maa reprogram", "license": " AND ".join(comp.licenses) or "unknown",
        })
        if progress:
            progress(1)
    return rows
