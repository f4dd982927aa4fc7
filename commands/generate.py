"""`maa generate`: text -> audio with a trained model folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands.common import friendly, info, warn

HELP = """Generate audio from text with a latent diffusion model folder (from `maa train-ldm`).

One wav per prompt (16 kHz mono), and one JSON line per output (prompt, seed, settings, path)
on stdout or in --manifest. --duration is rounded to whole latent frames (8 mel frames, 128 ms)
and the length used is stated. The same --seed gives the same audio.

Examples:

  maa generate "a dog barks while rain falls" -o dog.wav --model runs/demo

  maa generate "birds sing" -o birds.wav --model runs/demo --duration 4 --steps 50 --sampler plms --png

  maa generate --prompts prompts.txt --out-dir out/ --model runs/demo -n 4      # best of 4 by CLAP score

  maa generate "thunder" -o t.wav --model runs/demo --init-audio rain.wav --strength 0.6   # audio-to-audio

  maa generate "an engine idles" -o - --model runs/demo | aplay                # wav on stdout

  maa generate "a door slams, then a bell rings" -o seq.wav -d 4                # first half, second half

Prompt files: one prompt per line, `name|prompt`, or JSON lines {"id", "prompt" (or "caption"),
optional "seed"}. Blank lines and lines starting with # are skipped.

Order words ("A, then B", "A before B", "B after A", "A followed by B") split a prompt into parts
that each get an equal, consecutive share of the clip: each part is generated on its own and
the parts are joined in order, crossfaded ("parts" in the JSON line); "while" and "with" stay
one part. --no-compose turns this off.
"""


@friendly
def main(
    prompt: str = typer.Argument(None, help="What to generate, in words. - reads prompts from stdin (like --prompts -)."),
    out: str = typer.Option(None, "-o", "--out", help="Output wav for a single prompt (- for stdout). Default: 0000_<prompt>.wav in the current folder."),
    prompts_file: str = typer.Option(None, "--prompts", help="File of prompts (lines, name|prompt, or JSONL); - for stdin."),
    out_dir: Path = typer.Option(None, "--out-dir", help="Folder for --prompts outputs (<name>.wav). Default: the current folder."),
    model_dir: Path = typer.Option(None, "--model", help="Model folder (RUN of `maa train-ldm`: vae/ + ldm/ [+ vocoder/, clap/]). Default: the bundled model."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first output; prompt i, candidate c uses seed + i*K + c."),
    steps: int = typer.Option(25, "--steps", min=1, help="Sampler steps (the paper: 100 DDIM/PLMS steps; DPM-Solver++ needs ~25)."),
    sampler: str = typer.Option("dpm++", "--sampler", help="dpm++ (DPM-Solver++ 2M), plms (the paper's) or ddim."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", help="Classifier-free guidance scale (1: none; the paper: 3)."),
    negative: str = typer.Option("", "--negative", help="Negative prompt: replaces the empty unconditional prompt, steering away from it."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds (rounded to whole latent frames of 128 ms)."),
    candidates: int = typer.Option(1, "-n", "--candidates", min=1, help="Generate K per prompt and keep the best by audio-text score."),
    scorer_spec: str = typer.Option(None, "--scorer", help="Scorer for -n: maa-clap:DIR or laion-clap:CKPT. Default: MODEL/clap if present."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Samples denoised together."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    init_audio: Path = typer.Option(None, "--init-audio", help="Audio-to-audio: start from this clip's latent (SDEdit)."),
    strength: float = typer.Option(0.5, "--strength", help="With --init-audio: 0 keeps the input, 1 ignores it."),
    compose: bool = typer.Option(True, "--compose/--no-compose", help="Honour order words: \"A, then B\" / \"A before B\" / \"B after A\" / \"A followed by B\" give each part its share of the time, in order (--no-compose: the whole prompt everywhere)."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM noise (0: deterministic)."),
    gl_iters: int = typer.Option(32, "--gl-iters", min=0, help="Griffin-Lim iterations (when the model has no neural vocoder)."),
    png: bool = typer.Option(False, "--png", help="Also write the generated spectrogram as <out>.png."),
    manifest: str = typer.Option(None, "--manifest", help="Where the JSON lines go (default stdout; a file path to keep stdout free)."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    import torch

    from maa.core.errors import MaaError
    from maa.core.mel import frames_for_duration, seconds_for_frames
    from maa.infer.pipeline import GenerateOptions, generate, load_model, sampler_calls

    if threads:
        torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MaaError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if prompt == "-":
        prompts_file, prompt = "-", None
    if (prompt is None) == (prompts_file is None):
        raise MaaError("give one prompt (maa generate \"a dog barks\" -o dog.wav) or --prompts FILE, not both or neither")
    items = [("", prompt, None)] if prompt is not None else read_prompts(prompts_file)
    if not items:
        raise MaaError(f"{prompts_file}: no prompts in the file")
    if out == "-" and len(items) > 1:
        raise MaaError("-o -: only one prompt can go to stdout; use --out-dir for several")

    opts = GenerateOptions(steps=steps, sampler=sampler, guidance=guidance, negative=negative, duration=duration,
                           batch_size=batch_size, eta=eta, strength=strength, compose=compose)
    opts.check()
    if init_audio is not None:
        from maa.core.audio import load_audio

        opts.init_audio = load_audio(init_audio, max_seconds=duration + 1.0)
    elif strength != 0.5:
        warn("--strength has no effect without --init-audio")

    model = load_model(model_dir, device=device, gl_iters=gl_iters)
    frames = frames_for_duration(duration, model.vae.factor)
    c, h, w = model.vae.latent_shape(frames)
    secs = seconds_for_frames(frames)
    if abs(secs - duration) > 1e-6:
        info(f"generate: --duration {duration:g} s rounded to {frames} mel frames = {secs:.3f} s (latent {c}x{h}x{w})")

    names, prompts, seeds = [], [], []
    k = candidates
    for i, (name, text, own_seed) in enumerate(items):
        text = " ".join(str(text).split())
        if not text:
            raise MaaError(f"{prompts_file or 'prompt'}: empty prompt{f' (line {i + 1})' if prompts_file else ''}; "
                           "describe the sound, e.g. \"a dog barks while rain falls\"")
        if model.text.is_truncated(text):
            warn(f"prompt {i + 1} is longer than {model.text.max_length} tokens; the rest is ignored: {text[:60]}...")
        base = own_seed if own_seed is not None else seed + i * k
        for cand in range(k):
            names.append(name)
            prompts.append(text)
            seeds.append(int(base) + cand)

    from tqdm import tqdm

    with tqdm(total=sampler_calls(opts, prompts, model.vae.factor), desc="generate", unit="step", file=sys.stderr,
              disable=quiet, dynamic_ncols=True) as bar:
        outs = generate(model, prompts, seeds, opts, on_step=lambda: bar.update(1))

    scorer = _scorer(scorer_spec, model.root, device) if k > 1 else None
    sink = sys.stdout if manifest in (None, "-") and out != "-" else None
    rows: list[dict] = []
    used: set[str] = set()
    for i, (name, text, _) in enumerate(items):  # one output per prompt: the best candidate
        group = outs[i * k:(i + 1) * k]
        best, scores = 0, None
        if scorer is not None:
            from maa.infer.scoring import rank_candidates

            order, scores = rank_candidates(scorer, [g.audio for g in group], group[0].prompt, group[0].parts)
            best = order[0]
        g = group[best]
        path = _out_path(out, out_dir, name, g.prompt, i, used)
        row = {"id": path.stem if path else "stdout", "prompt": g.prompt, "seed": g.seed, "path": str(path) if path else "-",
               "sampler": opts.sampler, "steps": opts.steps, "guidance": opts.guidance, "negative": opts.negative,
               "duration": round(secs, 4), "frames": frames, "model": str(model.root), "vocoder": model.vocoder.kind}
        if g.parts:
            row["parts"] = g.parts
        if k > 1:
            row["candidates"] = k
            if scores is not None:
                row["score"] = round(float(scores[best]), 4)
                row["candidate_scores"] = [round(float(s), 4) for s in scores]
        if init_audio is not None:
            row.update(init_audio=str(init_audio), strength=opts.strength)
        if path is None:
            _wav_to_stdout(g.audio)
        else:
            from maa.core.audio import save_wav

            save_wav(path, g.audio)
            if png:
                from maa.infer.plots import save_png

                row["png"] = str(save_png(path.with_suffix(".png"), g.mel, g.prompt))
        rows.append(row)
        if sink:
            sink.write(json.dumps(row) + "\n")
            sink.flush()
    if manifest not in (None, "-"):
        from maa.core.io import write_jsonl_atomic

        write_jsonl_atomic(manifest, rows)
    info(f"generate: {len(items)} output(s), {secs:.2f} s each, {opts.sampler} x {opts.steps} steps, "
         f"guidance {opts.guidance:g}, vocoder {model.vocoder.kind}")


def read_prompts(src: str) -> list[tuple[str, str, int | None]]:
    """(name, prompt, seed or None) from a prompt file: lines, name|prompt, or JSONL."""
    from maa.core.errors import MaaError

    if src == "-":
        text = sys.stdin.read()
    else:
        p = Path(src)
        if not p.exists():
            raise MaaError(f"{src}: no such prompt file")
        text = p.read_text()
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
            prompt = obj.get("prompt") or obj.get("caption") or obj.get("text") or ""
            items.append((str(obj.get("id") or obj.get("name") or ""), prompt, obj.get("seed")))
        elif "|" in s:
            name, prompt = s.split("|", 1)
            items.append((name.strip(), prompt.strip(), None))
        else:
            items.append(("", s, None))
    return items


def _out_path(out: str | None, out_dir: Path | None, name: str, prompt: str, i: int, used: set[str]) -> Path | None:
    from maa.core.manifest import clip_id

    if out == "-":
        return None
    if out is not None and out_dir is None:
        return Path(out)
    stem = clip_id(name) if name else f"{i:04d}_{clip_id(prompt)[:48]}"
    if out is not None and out_dir is not None:
        stem = Path(out).stem
    while stem in used:
        stem += "_"
    used.add(stem)
    return (out_dir or Path(".")) / f"{stem}.wav"


def _scorer(spec: str | None, root: Path, device: str):
    if spec is None and (root / "clap" / "config.json").exists():
        spec = f"maa-clap:{root / 'clap'}"
    if spec is None:
        warn("-n: no audio-text scorer (no clap/ in the model folder and no --scorer); keeping the first candidate")
        return None
    from maa.infer.scoring import load_scorer

    return load_scorer(spec, device=device)


def _wav_to_stdout(audio) -> None:
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), 16000, subtype="PCM_16", format="WAV")
    sys.stdout.buffer.write(buf.getvalue())
    sys.stdout.buffer.flush()
