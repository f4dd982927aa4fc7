"""The `maa generate` job: prompts in, wavs with their records (and PNGs, manifest lines) out.

    job = GenerateJob(GenerateOptions(steps=12, duration=4.0), prompt="a dog barks", out="dog.wav")
    rows = run(job, Log(info=print))

`run` takes one GenerateJob, whose options (maa.infer.options) are built and checked once:
  1. read the prompts (or the record to replay) and check them, every output path and the scorer;
  2. check the options; estimate memory and time from the model's configs, refuse what will not
     fit unless `force` (`preflight`, below), all before the model is loaded;
  3. load the model (maa.infer.pipeline); lay out all outputs once (`Pipeline.request`); skip
     those already made with these settings (maa.infer.options.same_settings);
  4. write each output (wav with its record, PNG, manifest line) atomically as soon as it is done
     (`Pipeline.stream`), so an interrupted run continues and gives the same bytes.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maa.core.audio import audio_info, frames_for_duration
from maa.core.checkpoint import read_config
from maa.core.device import apply_threads, pick_device
from maa.core.errors import MaaError
from maa.core.io import clip_id, safe_stem, write_text_atomic
from maa.infer.limits import (
    MAX_CANDIDATES,
    check_count,
    check_not_input,
    check_replaceable,
    check_replay_alone,
    check_same_record,
)
from maa.infer.options import GenerateOptions, read_record, same_settings, save_wav_with_record, wav_bytes
from maa.infer.pipeline import load_pipeline, resolve_model_dir
from maa.infer.plots import save_png
from maa.infer.sampling import WINDOW, FastPath
from maa.models.unet import UNetConfig
from maa.models.vae import VAEConfig


@dataclass
class Log:
    """Where the job reports: one line at a time, warnings, and a progress bar factory (total -> bar)."""
    info: Callable[[str], None] = lambda s: None
    warn: Callable[[str], None] = lambda s: None
    bar: Callable | None = None


@dataclass
class GenerateJob:
    """Everything one `maa generate` is asked: the options of the audio (`opts`: what the record
    keeps; its init_audio a file) and what to read, where to write and how to run."""
    opts: GenerateOptions = field(default_factory=GenerateOptions)
    prompt: str | None = None  # one prompt, or "-": read prompts from stdin
    prompts_file: str | None = None
    out: str | None = None  # -o: one file, or "-" for stdout
    out_dir: Path | None = None
    model_dir: str | Path | None = None  # None: the bundled model
    device: str = "auto"
    seed: int = 0
    candidates: int = 1
    scorer: str | None = None
    png: bool = False
    manifest: str | None = None
    overwrite: bool = False
    force: bool = False
    gl_iters: int = 32
    replay: Path | None = None
    threads: int = 0
    visual: list | None = None  # [maa.infer.visual.VisualSpec]: pictures or videos as prompts, one output each
    lora: list = field(default_factory=list)  # "DIR[:SCALE]" LoRA adapters (maa.models.lora); a replay takes its record's


def run(job: GenerateJob, log: Log | None = None) -> list[dict]:
    """Everything `maa generate` does (see the module docstring); returns the manifest rows."""
    log = log or Log()
    opts, record, model_dir, gl_iters, candidates, threads = job.opts, None, job.model_dir, job.gl_iters, job.candidates, job.threads
    visual = job.visual
    if visual and candidates > 1:
        raise MaaError(f"-n {candidates} with --image/--video: candidates are ranked by an audio-text score, and a "
                       "picture gives no text to score against; use -n 1")
    specs = []
    if job.lora or (job.replay is not None):
        from maa.models.lora import AdapterSpec, parse_spec  # noqa: PLC0415  only with adapters: a plain prompt walks fewer files

        specs = [parse_spec(s) for s in job.lora or []]  # bad --lora values fail before anything loads
    if job.replay is not None:
        check_replay_alone(job.replay, job.prompt, job.prompts_file)
        record = read_record(job.replay, strict=True)  # checked field by field, before anything is allocated
        items = [("", record["prompt"], record["seed"])]
        model_dir = model_dir or record["model"]
        gl_iters = record.get("gl_iters", gl_iters)
        candidates = 1
        threads = threads or record.get("threads", 0)  # bit-exact on a CPU needs the same thread count
        specs = specs or [AdapterSpec(Path(a["path"]), float(a["scale"])) for a in record.get("lora") or []]
        opts = GenerateOptions.from_record(record)
    elif visual:
        items = [(s.name or Path(s.video or s.images[0]).stem, s.text or "", s.seed) for s in visual]
    else:
        items = _read_items(job.prompt, job.prompts_file)
        check_count(candidates, "-n", MAX_CANDIDATES)
    paths = _check_outputs(items, job.out, job.out_dir, job.manifest)
    what = "-o" if job.out else "output"
    init_file = opts.init_audio if isinstance(opts.init_audio, (str, os.PathLike)) else None
    inputs = {"--init-audio": init_file, "--replay": job.replay, "--prompts": job.prompts_file}
    for p, name in [(p, what) for p in paths] + [(job.manifest, "--manifest")]:
        check_not_input(p if p not in (None, "-") else None, inputs, name)
        check_replaceable(p if name != "--manifest" else None, lambda q: read_record(q) is not None, job.overwrite, name)
    if opts.init_audio is not None and record is None:
        info = audio_info(opts.init_audio)
        if opts.inpaint:  # spans and the estimate at the input's length, before the model loads
            from maa.infer.inpaint import check_spans  # noqa: PLC0415  a mode module only when its mode runs: a plain prompt walks none

            seconds = info.frames / info.samplerate
            check_spans(opts.inpaint, seconds)
            opts = replace(opts, duration=seconds)  # what Pipeline.request does too: inpainting keeps the input's length
    elif opts.strength != 0.5 and record is None:
        log.warn("--strength has no effect without --init-audio")
    if opts.guidance < 1:
        log.warn(f"--guidance {opts.guidance:g} is below 1: it steers away from the prompt (1: no guidance; the paper: 3)")
    opts.check()
    root, dev, est = preflight(opts, model_dir, job.device, len(items) * candidates, job.force)
    if visual or (record and "visual" in record):
        from maa.infer.visual import check_model as check_visual_model  # noqa: PLC0415  pictures only: a text prompt walks no visual module

        check_visual_model(root)  # a text-only model: one line before anything is loaded
    spec = _check_scorer(job.scorer, root, candidates, log)
    log.info(f"generate: {len(items)} output(s) x {candidates} candidate(s), {est}")

    apply_threads(threads, "--threads" if not record or threads != record.get("threads") else f"{job.replay}: the record's threads")
    pipe = load_pipeline(root, dev, text_encoder=record.get("text_encoder") if record else None, gl_iters=gl_iters,
                         lora=specs, force=job.force, warn=log.warn)
    if visual:  # each picture's condition registered with the encoder under a key used as its prompt
        from maa.infer.visual import prepare as prepare_visual  # noqa: PLC0415  pictures only: a text prompt walks no visual module

        keys, visual_records = prepare_visual(pipe, visual)
        items = [(n, k, s) for (n, _, s), k in zip(items, keys)]
    if record is not None:
        _warn_replay(record, pipe.identity(), job.replay, log)
        if "visual" in record:
            from maa.infer.visual import from_record as visual_from_record  # noqa: PLC0415  pictures only: a text prompt walks no visual module

            visual_from_record(pipe, record)
        req = pipe.replay(record)
    else:
        req = pipe.request([t for _, t, _ in items], [s for _, _, s in items], job.seed, candidates, spec or False, opts=opts)
        for r, v in zip(req.records, visual_records if visual else []):
            r["visual"] = v
    asked, used = opts.duration, req.records[0]["duration"]
    if opts.inpaint or opts.timeline:  # the input's length, the last event's end
        log.info(f"generate: {used:.3f} s ({req.frames} mel frames)")
    elif not record and abs(used - asked) > 1e-4:
        log.info(f"generate: --duration {asked:g} s rounded to {req.frames} mel frames = {used:.3f} s "
                 f"(latent {'x'.join(map(str, est.latent))}{' per window' if used > WINDOW else ''})")
    for i, text in enumerate(req.prompts[::req.candidates]):
        if pipe.text.is_truncated(text):
            log.warn(f"prompt {i + 1} is longer than {pipe.text.max_length} tokens; the rest is ignored: {text[:60]}...")

    rows = _skip_made(paths, req.records, job.png, job.overwrite, what)
    todo = set(range(len(paths))) - set(rows)
    if rows:
        log.info(f"generate: {len(rows)} output(s) already made with these settings, skipped (--overwrite to redo)")
    sink = sys.stdout if job.manifest in (None, "-") and job.out != "-" else None
    for i in sorted(rows):
        _emit(sink, rows[i])
    bar = log.bar(req.sampler_calls(todo)) if log.bar and todo else None
    for o in pipe.stream(req, (lambda: bar.update(1)) if bar else None, todo):
        p = paths[o.index]
        if p is None:
            sys.stdout.buffer.write(wav_bytes(o.audio, o.record))
            sys.stdout.buffer.flush()
        else:
            save_wav_with_record(p, o.audio, o.record)
            if job.png:
                loop = bool(o.record.get("loop"))  # a loop is drawn twice: the wrap shows in the middle
                save_png(p.with_suffix(".png"), np.concatenate([o.mel, o.mel], axis=-1) if loop else o.mel,
                         o.record["prompt"] + (" (loop, twice)" if loop else ""))
        rows[o.index] = _row(p, o.record, job.png)
        _emit(sink, rows[o.index])
        if job.manifest not in (None, "-"):  # one line per finished output, in prompt order, at every moment
            write_text_atomic(job.manifest, "".join(json.dumps(rows[i]) + "\n" for i in sorted(rows)))
    if bar is not None:
        bar.close()
    if getattr(pipe, "fast", None) is not None and pipe.fast.first_call_s:
        log.info(f"generate: {pipe.fast.describe()}; first calls (compile, graph capture): {pipe.fast.report()}")
    r = req.records[0]
    log.info(f"generate: {len(rows)} output(s), {r['duration']:.2f} s each, {r['sampler']} x {r['steps']} steps, "
             f"guidance {r['guidance']:g}, vocoder {r['vocoder']}")
    return [rows[i] for i in sorted(rows)]


# -- prompts and output names -------------------------------------------------------------------

def read_prompts(src: str) -> list[tuple[str, str, int | None]]:
    """(name, prompt, seed or None) from a prompt file: lines, name|prompt, or JSONL; '-' is stdin."""
    if src == "-":
        text = sys.stdin.read()
    else:
        p = Path(src)
        if not p.is_file():
            raise MaaError(f"{src}: no such prompt file")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise MaaError(f"{src}: not UTF-8 text (byte {e.start}); save the prompt file as UTF-8") from None
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("{"):
            try:
                obj = json.loads(s)
            except ValueError as e:
                raise MaaError(f"{src} line {n}: malformed JSON ({e})") from None
            seed = obj.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
                raise MaaError(f"{src} line {n}: seed {seed!r} is not a whole number in [0, 2^63)")
            prompt = obj.get("prompt") or obj.get("caption") or obj.get("text") or ""
            items.append((str(obj.get("id") or obj.get("name") or ""), str(prompt), seed))
        elif "|" in s:
            name, prompt = s.split("|", 1)
            items.append((name.strip(), prompt.strip(), None))
        else:
            items.append(("", s, None))
    return items


def out_paths(out: str | None, out_dir: Path | None, items: list[tuple[str, str, int | None]]) -> list[Path | None]:
    """Where each output goes: -o for one prompt (None: stdout for '-'), else OUT_DIR/<name or
    NNNN_prompt>.wav (the current folder without --out-dir), names made unique in order."""
    if out == "-":
        return [None]
    if out is not None and out_dir is None:
        return [Path(out)]
    used: set[str] = set()
    paths = []
    for i, (name, prompt, _) in enumerate(items):
        stem = Path(out).stem if out is not None else safe_stem(name) if name else f"{i:04d}_{clip_id(prompt)[:48]}"
        while stem.lower() in used:  # case-insensitive file systems
            stem += "_"
        used.add(stem.lower())
        paths.append((out_dir or Path(".")) / f"{stem}.wav")
    return paths


def check_writable(path: Path, what: str) -> None:
    """A file we are about to write: not a folder, in a folder we can create and write to."""
    path = Path(path)
    if path.is_dir():
        raise MaaError(f"{what} {path}: is a folder; give a file name, e.g. {path / 'out.wav'}")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise MaaError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MaaError(f"{what} {path}: no permission to write in {parent}")


def _read_items(prompt: str | None, prompts_file: str | None) -> list[tuple[str, str, int | None]]:
    if prompt == "-":
        prompts_file, prompt = "-", None
    if (prompt is None) == (prompts_file is None):
        raise MaaError("give one prompt (maa generate \"a dog barks\" -o dog.wav) or --prompts FILE, not both or neither")
    items = [("", prompt, None)] if prompt is not None else read_prompts(prompts_file)
    if not items:
        raise MaaError(f"{prompts_file}: no prompts in the file")
    for i, (_, text, _) in enumerate(items):
        if not " ".join(str(text).split()):
            where = f"{prompts_file} line {i + 1}" if prompts_file else "prompt"
            raise MaaError(f"{where}: empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
    return items


def _check_outputs(items: list, out: str | None, out_dir: Path | None, manifest: str | None) -> list[Path | None]:
    """Each output's path, every one (and the manifest) checked writable."""
    if out is not None and out_dir is None and len(items) > 1:
        raise MaaError(f"-o {out}: names one file, for one prompt; use --out-dir for several")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise MaaError(f"--out-dir {out_dir}: is a file; give a folder")
    paths = out_paths(out, out_dir, items)
    for p in paths:
        if p is not None:
            check_writable(p, "-o" if out else "output")
    if manifest not in (None, "-"):
        check_writable(Path(manifest), "--manifest")
    return paths


def _skip_made(paths: list[Path | None], records: list[dict], png: bool, overwrite: bool,
               what: str = "-o") -> dict[int, dict]:
    """The manifest rows of outputs a rerun keeps: their wav holds a record of the same settings. A wav
    that holds another generation's record is refused unless `overwrite` (maa.infer.options)."""
    rows = {}
    for i, p in enumerate(paths):
        if p is not None and not overwrite and p.exists():
            old = read_record(p)
            check_same_record(p, not same_settings(old, records[i]), overwrite, what)
            if not png or p.with_suffix(".png").exists():
                rows[i] = _row(p, old, png)
    return rows


def _row(path: Path | None, record: dict, png: bool) -> dict:
    row = {"id": path.stem if path else "stdout", **record, "path": str(path) if path else "-"}
    if png and path is not None:
        row["png"] = str(path.with_suffix(".png"))
    return row


def _emit(sink, row: dict) -> None:
    if sink is not None:
        sink.write(json.dumps(row) + "\n")
        sink.flush()


def _check_scorer(spec: str | None, root: Path, candidates: int, log: Log) -> str | None:
    """The scorer spec best-of-K will use, its path checked now (before any sampling)."""
    if candidates == 1:
        if spec is not None:
            log.warn("--scorer has no effect without -n K (K > 1)")
        return None
    if spec is None:
        if (root / "clap" / "config.json").exists():
            return f"maa-clap:{root / 'clap'}"
        log.warn("-n: no audio-text scorer (no clap/ in the model folder and no --scorer); keeping the first candidate")
        return None
    from maa.parts.scorers import check_scorer  # noqa: PLC0415  only for -n K with --scorer: a plain prompt never enters the scorers

    return check_scorer(spec)


def _warn_replay(record: dict, now: dict, src: Path, log: Log) -> None:
    if record.get("model_sha256") != now["model_sha256"]:
        log.warn(f"{src} was made with another model (hash {record.get('model_sha256')}, this one {now['model_sha256']}); "
                 "the audio will differ")
    if record.get("device") != now["device"]:
        log.warn(f"{src} was made on {record.get('device')}, this is {now['device']}: close, but not bit-exact")
    if record.get("threads", now.get("threads")) != now.get("threads"):
        log.warn(f"{src} was made with {record['threads']} CPU threads, this run has {now.get('threads')}: "
                 "close, but not bit-exact")
    if [a.get("sha256") for a in record.get("lora") or []] != [a.get("sha256") for a in now.get("lora") or []]:
        log.warn(f"{src} was made with other LoRA adapters ({record.get('lora')}); the audio will differ")
    if record.get("maa") != now["maa"]:
        log.warn(f"{src} was made by maa {record.get('maa')}, this is {now['maa']}: the audio may differ")


# -- the cost, known before anything is loaded ------------------------------------------------------
#
# What a generation will cost, known before anything is loaded: memory and time from the model's
# configs and the latent size, checked against the free memory and an hour (`preflight`).

MAX_SECONDS = 3600.0  # above this (or above the free memory) a generation is refused unless forced
# --inpaint-mode keep-scene samples the spans under the prompt and under the scene's caption in one
# batch (maa.infer.inpaint): twice replace's sampling, time and batch
KEEP_SCENE_BATCH = 2


@dataclass
class Estimate:
    """What a generation will cost: seconds, bytes and the latent's shape (C, H, W)."""

    seconds: float
    bytes: float
    latent: tuple[int, int, int]

    def __str__(self) -> str:
        t = self.seconds
        when = f"{t:.0f} s" if t < 120 else f"{t / 60:.0f} min" if t < 7200 else f"{t / 3600:.1f} h"
        return f"about {self.bytes / 2**30:.1f} GB and {when} (latent {'x'.join(map(str, self.latent))})"


def estimate(root: Path, duration: float, steps: int, samples: int, batch_size: int, device: str = "cpu") -> Estimate:
    """Memory and time of a generation from the model's configs alone (nothing is loaded): the
    UNet's multiply-adds per step at the latent size (convolutions, attention and its T x T scores),
    twice for guidance, at a throughput measured here on CPU (a fixed 20 TFLOP/s on CUDA). Memory:
    weights, the skip activations and one attention score matrix of a batch. Order of magnitude,
    not a promise: it catches the 1000 s clip that would run for hours."""
    u = UNetConfig.from_dict(read_config(root / "ldm")["unet"])  # checked against sane ranges here
    v = VAEConfig.from_dict(read_config(root / "vae")["vae"])
    frames = frames_for_duration(duration, v.factor)
    c0, h, w = v.z_channels, v.n_mels // v.factor, frames // v.factor
    flops = act = scores = 0.0
    for lvl, mult in enumerate(u.channel_mult):
        c, t = u.channels * mult, h * w / 4 ** lvl
        blocks = 2 * u.num_res_blocks + 1 + (2 if lvl == len(u.channel_mult) - 1 else 0)  # down, up, middle
        flops += blocks * 36 * c * c * t  # two 3x3 convolutions per ResNet block, 2 flops per multiply-add
        act += blocks * c * t * 4
        if lvl in u.attn_levels or lvl == len(u.channel_mult) - 1:
            flops += blocks * u.transformer_depth * (40 * c * c * t + 4 * t * t * c)  # projections, GEGLU, scores
            scores = max(scores, u.num_heads * t * t * 4)
    b = 2 * min(batch_size, samples)
    params = sum(4 * u.channels ** 2 * m * m * 30 for m in u.channel_mult)  # rough weight count
    mem = 4 * params + b * (act + scores) + b * v.n_mels * frames * v.ch * 4 * 3  # + the VAE decoder's widest map
    rate = 20e12 if str(device).startswith("cuda") else _cpu_flops()
    # per sample (window) once, whatever the steps: the VAE decoder and, for held-known windows, its
    # encoder (at few steps they outweigh the UNet: -d 60 --steps 2 ran 1.7x its UNet-only estimate)
    vae = 2 * sum((v.num_res_blocks + 1) * 36 * (v.ch * m) ** 2 * v.n_mels * frames / 4 ** lvl
                  for lvl, m in enumerate(v.ch_mult))
    return Estimate((steps * 2 * flops + vae) * samples / rate, mem, (c0, h, w))


@functools.cache  # once per process: estimates then compare exactly
def _cpu_flops() -> float:
    """Rough useful FLOP/s of this CPU: half a matrix product's rate (measured: the bundled model's
    10 s clip within a factor of 1.5 on one busy thread)."""

    a = torch.randn(256, 256)
    a @ a
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.02:
        a @ a
        n += 1
    return n * 2 * 256 ** 3 / (time.perf_counter() - t0) / 2


def preflight(opts: GenerateOptions, model_dir=None, device: str = "auto", samples: int = 1,
              force: bool = False) -> tuple[Path, str, Estimate]:
    """Everything about a generation that can be checked before the model is loaded: the model
    folder, the device, and the memory and time it will need (refused above the free memory or
    MAX_SECONDS unless `force`); `opts` checked (GenerateOptions.check) already. Returns (model
    folder, device, estimate)."""

    root = resolve_model_dir(model_dir)
    dev = str(pick_device(device))
    FastPath.parse(opts.fast, dev)  # a bad --fast fails here, before the model loads
    secs = opts.seconds()
    batch = opts.batch_size
    if opts.mode in ("long", "timeline"):  # one window at a time (maa.infer.longform)
        samples, secs = samples * opts.steps_per_output(1), min(secs, WINDOW)
    elif opts.mode == "inpaint":  # one output at a time; keep-scene samples its spans twice in that batch
        f = KEEP_SCENE_BATCH if opts.inpaint_mode == "keep-scene" else 1
        samples, batch = samples * f, f
    est = estimate(root, secs, opts.steps, samples, batch, dev)
    why = check_estimate(est, dev)
    if why and not force:
        raise MaaError(f"generate: {est} is {why}; shorten --duration or --steps, or pass --force to run anyway")
    return root, dev, est


def check_estimate(est: Estimate, device: str = "cpu") -> str | None:
    """Why a generation of this size is refused (None: it fits): above MAX_SECONDS or the free memory."""
    free = _free_memory(device)
    if free and est.bytes > free:
        return f"more than the {free / 2**30:.1f} GB free on {device}"
    if est.seconds > MAX_SECONDS:
        return f"more than the {MAX_SECONDS / 3600:g} h bound"
    return None


def _free_memory(device: str) -> float | None:
    if str(device).startswith("cuda"):
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None
