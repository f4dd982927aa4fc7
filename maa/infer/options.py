"""Generation options: which mode an output runs, and the record that keeps the settings inside
each wav (`record_settings` writes them, `from_record` reads them back for --replay).

    opts = GenerateOptions(steps=12, duration=4.0)
    opts.check(); opts.mode                    # "plain", "inpaint", "timeline" or "long"
    prompt_parts("a door slams, then a bell rings", opts)   # ["a door slams", "a bell rings"]
    save_wav_with_record("dog.wav", audio, record); read_record("dog.wav")

Modes: "plain" is one clip per prompt, sampled in batches (maa.infer.pipeline), an "A, then B"
prompt as one clip per part (maa.infer.temporal joins them; audio-to-audio is a plain clip
started from the init audio's latent). The others are generated one output at a time by their
own module, imported only when used (`mode_module`):
"inpaint" (spans of the init audio, maa.infer.inpaint), "timeline" (events in their spans,
maa.infer.timeline) and "long" (a clip over one window without init audio, maa.infer.longform).
The mode modules never import this one.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.core.io import atomic_path
from maa.core.progress import staged
from maa.infer.limits import INPAINT_MODES, MAX_RECORD_BYTES, check_scene_mix, check_settings, record_from_text
from maa.infer.sampling import WINDOW
from maa.models.diffusion import SAMPLERS

# dpm++: the knee of benchmarks/bench_steps.py's curve (13 prompts, 4 s): CLAP score and class equal
# from 8 to 50 steps; against the 50-step clip, aisfx KL 0.038 at 12 vs 0.092 at 10 and 0.002 at 25.
# plms/ddim: not measured, kept at 25.
DEFAULT_STEPS = {"dpm++": 12, "plms": 25, "ddim": 25}
MODES = ("plain", "inpaint", "timeline", "long")


@dataclass
class GenerateOptions:
    """Every setting that changes a generated output (the record keeps them all, `record_settings`)."""
    steps: int | None = None  # None: DEFAULT_STEPS[sampler]
    sampler: str = "dpm++"
    guidance: float = 3.0
    negative: str = ""  # the unconditional prompt; "" is the paper's
    duration: float = 10.0
    batch_size: int = 4
    eta: float = 0.0  # DDIM only
    init_audio: np.ndarray | str | Path | None = None  # audio-to-audio (SDEdit): 16 kHz mono samples or a file
    strength: float = 0.5
    compose: bool = True  # "A, then B": A over the first half, B over the second (maa.infer.temporal)
    fast: str = "auto"  # CUDA fast path (maa.infer.sampling.FastPath.parse): auto (on for CUDA, off on the CPU), off, ...
    inpaint: list | None = None  # [(start, end)] s of init_audio to regenerate; the rest is kept
    inpaint_mode: str = "keep-scene"  # INPAINT_MODES
    context: str | None = None  # keep-scene: the scene's caption (None: the model's clap/ picks one)
    scene_mix: str = "duck"  # keep-scene: SCENE_MIXES
    timeline: list | None = None  # [{"start", "end", "prompt"}]: each event in its span
    background: str | None = None  # with a timeline: the prompt under the events
    loop: bool = False  # a seamless loop: sampled and decoded on a circle (maa.infer.loop)

    def __post_init__(self):
        if self.steps is None:
            self.steps = DEFAULT_STEPS.get(self.sampler, 25)

    @property
    def mode(self) -> str:
        """Which mode an output of these options runs (see the module docstring)."""
        if self.inpaint:
            return "inpaint"
        if self.timeline:
            return "timeline"
        if self.init_audio is None and self.duration > WINDOW + 1e-9:
            return "long"
        return "plain"

    def check(self) -> GenerateOptions:
        """One-line errors for settings that cannot run (before anything loads); returns the options."""
        check_settings({k: v for k, v in vars(self).items() if k != "init_audio"})  # maa.infer.limits: the bounds
        if self.sampler not in SAMPLERS:
            raise MaaError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise MaaError(f"--steps {self.steps}: must be at least 1")
        if not 0.0 <= self.strength <= 1.0:
            raise MaaError(f"--strength {self.strength}: must lie in [0, 1]")
        if self.batch_size < 1:
            raise MaaError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.inpaint and self.timeline:
            raise MaaError("--inpaint and --timeline: choose one")
        if self.background and not self.timeline:
            raise MaaError("--background: only with --timeline (the prompt under the events)")
        if self.timeline:  # the mode modules are imported only where their mode is used
            from maa.infer.timeline import events_of  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none

            events_of(self)
            if self.init_audio is not None:
                raise MaaError("--timeline with --init-audio: not supported; inpaint the events' spans with --inpaint instead")
        if self.inpaint_mode not in INPAINT_MODES:
            raise MaaError(f"--inpaint-mode {self.inpaint_mode!r}: choose one of {', '.join(INPAINT_MODES)}")
        if (self.context is not None or self.inpaint_mode != "keep-scene") and not self.inpaint:
            raise MaaError("--inpaint-mode/--context: only with --inpaint START-END (the spans to regenerate)")
        if check_scene_mix(self.scene_mix) != "duck" and not (self.inpaint and self.inpaint_mode == "keep-scene"):
            raise MaaError("--scene-mix: only with --inpaint and --inpaint-mode keep-scene (how the event and the scene are mixed)")
        if self.context is not None and self.inpaint_mode != "keep-scene":
            raise MaaError("--context: only with --inpaint-mode keep-scene (replace samples the prompt alone)")
        if self.loop and (self.inpaint or self.timeline):
            raise MaaError("--loop with --inpaint or --timeline: not supported; make the loop from a prompt (or --init-audio)")
        if self.loop and self.duration > WINDOW + 1e-9:
            raise MaaError(f"--loop with --duration {self.duration:g}: a loop is one window, at most {WINDOW:g} s; "
                           "repeat it to fill longer")
        if self.inpaint and self.init_audio is None:
            raise MaaError("--inpaint: give the clip to inpaint with --init-audio FILE")
        self.checked = True  # not a field: Pipeline.request does not check these options again
        return self

    def seconds(self) -> float:
        """The output's length before rounding: a timeline lasts at least to its last event's end."""
        if not self.timeline:
            return self.duration
        from maa.infer.timeline import events_of, timeline_seconds  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none

        return max(self.duration, timeline_seconds(events_of(self)))

    def steps_per_output(self, timesteps: int, factor: int = 8) -> int:
        """Sampler steps one output of a windowed mode runs, given one clip's (progress bars, estimates)."""
        if self.mode == "inpaint":
            return timesteps
        if self.mode == "timeline":
            from maa.infer.timeline import steps_of  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none

            return timesteps * steps_of(self, factor)
        from maa.infer.longform import windows_for  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none

        return timesteps * windows_for(self.duration, factor)

    def record_settings(self) -> dict:
        """The options as the record's JSON: every field but the batch size (numerics only) and the
        init audio (recorded by path and hash). Options added later join by themselves: keep them
        JSON values, so `--replay` can pass them back (`from_record`)."""
        out = {}
        for f in fields(self):
            if f.name in ("batch_size", "init_audio") or (f.name == "strength" and self.init_audio is None):
                continue
            if f.name in ("inpaint", "timeline", "background", "loop", "context") and not getattr(self, f.name):
                continue  # recorded only when used
            if f.name == "inpaint_mode" and not self.inpaint:
                continue
            if f.name == "scene_mix" and (not self.inpaint or self.inpaint_mode != "keep-scene"):
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        if self.inpaint:  # which inpainting ran (the official inpainting model records native-inpaint)
            out["inpaint_method"] = "text-conditioned"
        return out

    @classmethod
    def from_record(cls, record: dict) -> GenerateOptions:
        """The options a record was made with (its init audio by path, when it has one)."""
        names = {f.name for f in fields(cls)} - {"batch_size", "init_audio"}
        kw = {k: v for k, v in record.items() if k in names}
        if kw.get("inpaint"):
            kw.setdefault("inpaint_mode", "replace")  # records from before keep-scene sampled the prompt alone
            if kw["inpaint_mode"] == "keep-scene" and not kw.get("context") and record.get("inpaint_context"):
                kw["context"] = record["inpaint_context"]  # the caption clap/ picked then, whatever it picks now
            if kw["inpaint_mode"] == "keep-scene":
                kw.setdefault("scene_mix", "sum")  # records from before "duck" added the event +6 dB as powers
        return cls(**kw, init_audio=record.get("init_audio"))



def mode_module(mode: str):
    """The module that generates one output of a windowed mode (`generate_one`), imported only then."""
    if mode == "inpaint":
        from maa.infer import inpaint as module  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none
    elif mode == "timeline":
        from maa.infer import timeline as module  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none
    elif mode == "long":
        from maa.infer import longform as module  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none
    else:
        raise ValueError(f"mode {mode!r} is sampled in batches, not one output at a time")
    return module


# "A then B", "A, then B", "A and then B", "A before B", "A followed by B"; "while" and "with" mean
# at the same time and stay inside one part.
_SEQUENTIAL = re.compile(r"\s*,?\s+(?:and\s+)?then\s+|\s*,?\s+(?:before|followed\s+by)\s+", re.IGNORECASE)
_AFTER = re.compile(r"\s+after\s+", re.IGNORECASE)
_FIRST = re.compile(r"^\s*(?:first(?:ly)?|at first)\s*,?\s+", re.IGNORECASE)


def _clean(part: str) -> str:
    return part.strip(" ,.;")


def split_sequence(prompt: str, max_parts: int = 4) -> list[str]:
    """The parts of a prompt in time order (its order words: the composition mode of
    maa.infer.temporal); [prompt] when it names no order (or a part is empty)."""
    text = prompt.strip()
    parts = [_clean(p) for p in _SEQUENTIAL.split(_FIRST.sub("", text))]
    if len(parts) == 1:
        after = [_clean(p) for p in _AFTER.split(text)]
        parts = after[::-1] if len(after) == 2 else [text]  # "B after A": A comes first
    if len(parts) < 2 or len(parts) > max_parts or any(len(p) < 2 for p in parts):
        return [prompt]
    return parts


# -- the record inside each wav --------------------------------------------------------------------
#
# Generation records on disk: the record inside each wav, resumable batch output, replay.
#
# Every wav `maa generate` writes carries its record (the JSON line: prompt, seed, settings, parts,
# model hash, versions) in a RIFF LIST/INFO ICMT ("comment") chunk after the audio, the standard
# place for a wav's comment: libsndfile reads it as the file's comment, ffmpeg as its `comment`
# tag, and players skip it.
# `read_record` gets it back, `maa info FILE` prints it and `maa generate --replay FILE` makes the
# file again (`Pipeline.replay`).
#
# `same_settings` tells whether a wav was made with the settings of a planned record (the
# `maa generate` job, maa.infer.job, skips those on a rerun).

# Fields of a record that describe an outcome or a place, not a setting: a rerun compares the rest.
OUTCOME = {"seed", "score", "candidate_scores", "parts", "batch", "model", "device", "threads", "maa", "id", "path",
           "png"}


def wav_bytes(audio: np.ndarray, record: dict | None = None, sr: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM wav, with `record` as JSON in a LIST/INFO ICMT chunk after the audio.

    The chunk is appended here rather than through libsndfile's comment field, which silently
    drops strings of more than about 2 KB."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise MaaError("refusing to write audio with NaN/inf samples (model output is broken)")
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    if record is None:
        return data
    text = json.dumps(record, ensure_ascii=False).encode() + b"\0"
    text += b"\0" * (len(text) % 2)  # chunks are word-aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
    data += b"LIST" + struct.pack("<I", len(info)) + info
    return data[:4] + struct.pack("<I", len(data) - 8) + data[8:]


@staged("write")
def save_wav_with_record(path: str | os.PathLike, audio: np.ndarray, record: dict) -> Path:
    """Write `audio` with its record as a wav, atomically."""
    with atomic_path(path, suffix=".wav") as tmp:
        tmp.write_bytes(wav_bytes(audio, record))
    return Path(path)


def read_record(path: str | os.PathLike, strict: bool = False) -> dict | None:
    """The generation record inside a wav, or None when it has none. `strict` (replay, `maa info`):
    the record is checked field by field (maa.infer.options.check_record) and a missing or broken one
    raises one line saying what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                if strict:
                    raise MaaError(f"{path}: not a wav file, so it holds no generation record")
                return None
            while len(hdr := f.read(8)) == 8:
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid != b"LIST":
                    f.seek(size + size % 2, 1)
                    continue
                body = f.read(min(size, MAX_RECORD_BYTES + 64))  # never a 4 GB chunk into memory
                if body[:4] == b"INFO":
                    rec = _icmt(body[4:], path if strict else None)
                    if rec is not None:
                        return rec
                f.seek(size + size % 2 - len(body), 1)
    except OSError as e:
        raise MaaError(f"{path}: cannot read ({e.strerror})") from None
    if strict:
        raise MaaError(f"{path}: holds no generation record (not written by maa generate, or its metadata was stripped)")
    return None


def _icmt(body: bytes, strict_src=None) -> dict | None:
    i = 0
    while i + 8 <= len(body):
        cid, size = body[i:i + 4], struct.unpack("<I", body[i + 4:i + 8])[0]
        if cid == b"ICMT":
            raw = body[i + 8:i + 8 + size] if size <= MAX_RECORD_BYTES else None
            if strict_src is not None:
                if raw is None:
                    raise MaaError(f"{strict_src}: its comment chunk is {size} bytes, more than the {MAX_RECORD_BYTES} "
                                   "a generation record may take; not a record maa wrote")
                return record_from_text(raw, strict_src)
            try:
                rec = json.loads(raw.rstrip(b"\0").decode()) if raw is not None else None
            except (ValueError, RecursionError):
                return None  # a comment, but not ours
            return rec if isinstance(rec, dict) and "maa" in rec and "prompt" in rec else None
        i += 8 + size + size % 2
    return None


def same_settings(old: dict | None, new: dict) -> bool:
    """Whether an existing output's record was made with the settings of `new` (a planned record)."""
    if old is None:
        return False
    skip = OUTCOME - ({"seed"} if "candidate_seeds" not in new else set())
    keys = (set(old) | set(new)) - skip
    return all(old.get(k) == new.get(k) for k in keys)
