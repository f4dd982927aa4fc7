"""The bounds of a generation, whatever the source of a setting (a flag, a prompts file, a timeline
file, a replayed record), checked before anything is loaded or allocated; and the rule for what an
output may replace.

Pure functions that raise MaaError with one line naming the flag, file or record field. One set of
rules: a record read back for `--replay` or `maa info` passes the same checks as the flags that
made it, so a tampered or damaged record is refused before it costs memory or time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.models.diffusion import SAMPLERS

# (here, not in options.py: inpaint.py checks them too, and options.py imports inpaint.py)
# --inpaint-mode (maa.infer.inpaint): keep-scene layers the event over the scene continued under
# its caption (CONTEXT), replace samples the prompt alone (the behaviour before keep-scene).
INPAINT_MODES = ("keep-scene", "replace")
# keep-scene's mix of the event over the scene (maa.infer.inpaint.mix_scene): duck (the scene gives way
# where the event is loud) or sum (the event +6 dB over it as powers: records from before "duck").
SCENE_MIXES = ("duck", "sum")


def check_scene_mix(mix: str) -> str:
    """`mix` if it names a keep-scene mix (SCENE_MIXES), else one line listing them."""
    if mix not in SCENE_MIXES:
        raise MaaError(f"--scene-mix {mix!r}: choose one of {', '.join(SCENE_MIXES)}")
    return mix

# A 16-bit mono RIFF wav holds at most 4 GiB of samples (its sizes are 32-bit); 1 MiB is kept for
# the header and the record: about 37 h at 16 kHz. Longer is refused even with --force.
MAX_SECONDS = (2**32 - 2**20) / 2 / SAMPLE_RATE
MAX_STEPS = 1000  # the diffusion schedule's timesteps: more sampler steps would repeat them
MAX_CANDIDATES = 1024
MAX_EVENTS = 1000
MAX_BATCH = 4096
MAX_GL_ITERS = 10_000
MAX_SEED = 2**63 - 1  # the CLI's --seed range
MAX_RECORD_BYTES = 1 << 20  # a record is a few kB; a larger comment chunk is not read into memory


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_seconds(value, what: str = "--duration") -> float:
    """A length in seconds: a finite number above 0 and at most MAX_SECONDS."""
    if not _is_num(value) or not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise MaaError(f"{what} {value!r}: want a length in seconds above 0 and at most {MAX_SECONDS:.0f} "
                       "(what a 16-bit wav can hold, about 37 h)")
    return float(value)


def check_steps(value, what: str = "--steps") -> int:
    """Sampler steps: a whole number from 1 to MAX_STEPS."""
    if not _is_int(value) or not 1 <= value <= MAX_STEPS:
        raise MaaError(f"{what} {value!r}: want a whole number of sampler steps from 1 to {MAX_STEPS} "
                       "(the diffusion schedule's timesteps)")
    return value


def check_count(value, what: str, most: int, least: int = 1) -> int:
    """A whole number in [least, most] (candidates, events, batch sizes)."""
    if not _is_int(value) or not least <= value <= most:
        raise MaaError(f"{what} {value!r}: want a whole number from {least} to {most}")
    return value


def check_seed(value, what: str = "--seed") -> int:
    """The CLI's seed rule, for a seed from any source: a whole number in [0, 2^63)."""
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise MaaError(f"{what} {value!r}: want a whole number from 0 to 2^63-1")
    return value


def check_finite(value, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number in [low, high]."""
    if not _is_num(value) or not math.isfinite(value) or not low <= value <= high:
        bounds = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise MaaError(f"{what} {value!r}: want a finite number{bounds}")
    return float(value)


def check_span_seconds(start, end, what: str) -> tuple[float, float]:
    """One START-END span (inpaint span, timeline event): finite, 0 <= START < END <= MAX_SECONDS."""
    ok = _is_num(start) and _is_num(end) and math.isfinite(start) and math.isfinite(end)
    if not ok or not 0 <= start < end or end > MAX_SECONDS:
        raise MaaError(f"{what} '{_g(start)}-{_g(end)}': want 0 <= START < END <= {MAX_SECONDS:.0f} seconds, "
                       "e.g. 2-3.5")
    return float(start), float(end)


def _g(v) -> str:
    return f"{v:g}" if _is_num(v) else repr(v)


def check_timeline(events: list, what: str = "--timeline") -> None:
    """A timeline's size and times: at most MAX_EVENTS events, each a finite span that ends by MAX_SECONDS.
    `events`: dicts {start, end, prompt} or objects with those attributes."""
    check_count(len(events), f"{what}: the number of events,", MAX_EVENTS)
    for ev in events:
        start, end = (ev.get("start"), ev.get("end")) if isinstance(ev, Mapping) else (ev.start, ev.end)
        check_span_seconds(start, end, what)


def check_settings(s: Mapping, where: str = "") -> None:
    """The generation settings present in `s` (flags, or a record's fields), each by the CLI's rule.
    `where`: "" for flags (messages name --flag), or e.g. "rec.wav: the record's" (messages name the field)."""

    def name(flag: str, field: str) -> str:
        return f"{where} {field}" if where else flag

    if "duration" in s and s["duration"] is not None:
        check_seconds(s["duration"], name("--duration", "duration"))
    if "steps" in s and s["steps"] is not None:
        check_steps(s["steps"], name("--steps", "steps"))
    if "guidance" in s:
        check_finite(s["guidance"], name("--guidance", "guidance"))
    if "eta" in s:
        check_finite(s["eta"], name("--eta", "eta"), 0.0, 1e3)
    if "strength" in s:
        check_finite(s["strength"], name("--strength", "strength"), 0.0, 1.0)
    if "candidates" in s:
        check_count(s["candidates"], name("-n", "candidates"), MAX_CANDIDATES)
    if "batch_size" in s:
        check_count(s["batch_size"], name("--batch-size", "batch_size"), MAX_BATCH)
    if "gl_iters" in s:
        check_count(s["gl_iters"], name("--gl-iters", "gl_iters"), MAX_GL_ITERS, least=0)
    if s.get("timeline"):
        check_timeline(s["timeline"], name("--timeline", "timeline"))
    if s.get("inpaint"):
        for span in s["inpaint"]:
            if not isinstance(span, (list, tuple)) or len(span) != 2:
                raise MaaError(f"{name('--inpaint', 'inpaint')} {span!r}: want [START, END] in seconds")
            check_span_seconds(span[0], span[1], name("--inpaint", "inpaint"))


# field -> (what it must be, test); the settings' numbers are checked by check_settings
_TEXT = ("a string", lambda v: isinstance(v, str))
_RECORD_TYPES: dict[str, tuple[str, Callable]] = {
    "prompt": ("a non-empty string", lambda v: isinstance(v, str) and v.strip() != ""),
    "negative": _TEXT, "sampler": _TEXT, "fast": _TEXT, "maa": _TEXT,
    "model": _TEXT, "model_sha256": _TEXT, "device": _TEXT, "text_encoder": _TEXT, "vocoder": _TEXT,
    "compose": ("true or false", lambda v: isinstance(v, bool)),
    "init_audio": ("a file name or null", lambda v: v is None or isinstance(v, str)),
    "background": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "timeline": ("a list of {start, end, prompt} or null",
                 lambda v: v is None or (isinstance(v, list) and all(isinstance(e, dict) and isinstance(e.get("prompt"), str)
                                                                     for e in v))),
    "inpaint": ("a list of [START, END] or null", lambda v: v is None or isinstance(v, list)),
    "parts": ("a list of strings or null", lambda v: v is None or (isinstance(v, list) and all(isinstance(p, str) for p in v))),
    "threads": ("a whole number of threads from 0", lambda v: _is_int(v) and v >= 0),
}


def check_record(rec, src) -> dict:
    """A generation record (from a wav) field by field, by the rules its flags have. Returns it;
    raises one line naming `src` and the first wrong field."""
    where = f"{src}: the record's"
    if not isinstance(rec, dict):
        raise MaaError(f"{src}: the record is not a JSON object; the file's comment was changed")
    if "maa" not in rec:
        raise MaaError(f"{src}: holds no generation record (its comment is JSON, but not a record maa generate wrote)")
    for key in ("prompt", "seed"):
        if key not in rec:
            raise MaaError(f"{where} {key} is missing; the record was changed or damaged")
    for key, (want, ok) in _RECORD_TYPES.items():
        if key in rec and not ok(rec[key]):
            raise MaaError(f"{where} {key} {_short(rec[key])}: want {want}; the record was changed or damaged")
    check_seed(rec["seed"], f"{where} seed")
    if "sampler" in rec:
        if rec["sampler"] not in SAMPLERS:
            raise MaaError(f"{where} sampler {rec['sampler']!r}: want one of {', '.join(SAMPLERS)}")
    check_settings(rec, where)
    for i, b in enumerate(rec.get("batch") or []):
        if b is None:
            continue
        if not isinstance(b, dict):
            raise MaaError(f"{where} batch {_short(b)}: want {{size, at, seed0}} per part")
        size = check_count(b.get("size"), f"{where} batch size", MAX_BATCH)
        check_count(b.get("at"), f"{where} batch row", size - 1, least=0)
        check_seed(b.get("seed0"), f"{where} batch seed0")
        if not isinstance(b.get("pad_text", ""), str):
            raise MaaError(f"{where} batch pad_text {_short(b['pad_text'])}: want a string")
    return rec


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def record_from_text(raw: bytes, src) -> dict:
    """The record in a wav's comment chunk (JSON), checked; one line naming what is wrong otherwise."""
    if len(raw) > MAX_RECORD_BYTES:
        raise MaaError(f"{src}: its comment chunk is {len(raw)} bytes, more than the {MAX_RECORD_BYTES} a record "
                       "may take; not a record maa wrote")
    try:
        rec = json.loads(raw.rstrip(b"\0").decode())
    except RecursionError:
        raise MaaError(f"{src}: its comment is JSON nested too deep to be a record maa wrote") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise MaaError(f"{src}: its comment is not a JSON record ({str(e).splitlines()[0][:60]})") from None
    return check_record(rec, src)


def duration_notes(duration: float, explicit: bool, inpainted=None, timeline_end: float | None = None) -> list[str]:
    """Warnings for a --duration that will not be the output's length (nothing is ignored silently):
    inpainting (`inpainted`: the --init-audio file) keeps the input's length; a timeline lasts at least
    to its last event."""
    if not explicit:
        return []
    if inpainted is not None:
        return [f"--duration {duration:g}: not used with --inpaint; the output has the length of --init-audio {inpainted}"]
    if timeline_end is not None and timeline_end > duration:
        return [f"--duration {duration:g}: the timeline's last event ends at {timeline_end:g} s, so the clip lasts "
                f"{timeline_end:g} s"]
    return []


def check_replay_alone(replay, prompt, prompts_file) -> None:
    """--replay makes the file's own prompt again: a prompt or --prompts beside it would be ignored."""
    if prompt is not None or prompts_file is not None:
        given = f"the prompt {prompt!r}" if prompt is not None else f"--prompts {prompts_file}"
        raise MaaError(f"--replay {replay}: replays the record's own prompt; {given} would be ignored, so drop it "
                       "(or drop --replay to generate it)")


# -- what an output may replace -------------------------------------------------------------------

def _same_path(a, b) -> bool:
    try:
        pa, pb = Path(a), Path(b)
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
        return pa.resolve() == pb.resolve()
    except (OSError, RuntimeError, TypeError):
        return False


def check_not_input(path, inputs: Mapping[str, object], what: str = "-o") -> None:
    """Refuse an output that is one of the inputs ({"--init-audio": path, ...}): writing it would destroy it."""
    if path is None:
        return
    for flag, src in inputs.items():
        if src is not None and str(src) != "-" and _same_path(path, src):
            raise MaaError(f"{what} {path}: is the input {flag} {src}; writing it would destroy the input; "
                           "choose another output name")


def check_replaceable(path, has_record: Callable[[Path], bool | None], overwrite: bool, what: str = "-o") -> None:
    """An existing output may be replaced (or, with the same settings, skipped) only when maa wrote it:
    `has_record(path)` is True when it holds a generation record. Otherwise, without --overwrite, refuse."""
    if path is None or overwrite:
        return
    p = Path(path)
    if p.is_file() and not has_record(p):
        raise MaaError(f"{what} {p}: exists and holds no maa generation record (maa generate did not write it); "
                       "pass --overwrite to replace it, or choose another name")


def check_same_record(path, differs: bool, overwrite: bool, what: str = "-o") -> None:
    """A wav maa wrote with other settings (another prompt, seed, model...) is not replaced silently."""
    if differs and not overwrite:
        raise MaaError(f"{what} {path}: holds another generation (its record has other settings); pass --overwrite "
                       "to replace it, or choose another name")
