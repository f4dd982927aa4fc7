"""`maa generate`: text -> audio with a trained model folder."""

from __future__ import annotations

from pathlib import Path

import typer
from maa.commands.common import friendly, info, warn
from maa.commands.options import BatchSize, Device, Quiet, Threads

from maa.core import progress
from maa.core.errors import MaaError

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

  maa generate "a door slams" --init-audio scene.wav --inpaint 2.0-3.5 -o fixed.wav   # only that span is new, the scene goes on

  maa generate "a door slams" --init-audio rain.wav --inpaint 2-3 --context "rain falls" --inpaint-mode keep-scene -o d.wav

  maa generate --init-audio scene.wav --inpaint 2.0-3.5 --model make-an-audio-inpaint -o filled.wav  # from the context, no text

  maa generate --timeline "0-3: a dog barks; 2-6: rain falls" --background wind -o t.wav   # events in their spans

  maa generate "rain falls on a roof" --duration 120 -o rain.wav               # window by window, any length

  maa generate --image photo.jpg -o photo.wav --model models/maa-img           # sound for a picture

  maa generate --video clip.mp4 -o clip.wav --model models/maa-img             # frames pooled

  maa generate "heavy rain" --image street.png --image-weight 0.7 -o mix.wav --model models/maa-img

  maa generate "an engine idles" --duration 8 --loop -o loop.wav               # repeats without a seam

  maa generate "footsteps on gravel" -o steps.wav --lora runs/steps --lora runs/reverb:0.5   # LoRA adapters, stacked

Prompt files: one prompt per line, `name|prompt`, or JSON lines {"id", "prompt" (or "caption"),
optional "seed"}. Blank lines and lines starting with # are skipped. Each output is written as soon
as it is done; a rerun skips outputs already made with the same settings (--overwrite redoes them).

Pictures (models with an openclip: condition only): each --image is one output; --video takes
--video-frames uniformly spaced frames and pools them (an output longer than one 10 s window
follows the clip: each window gets the frames of its share); a text prompt with them is mixed in
(--image-weight: the picture's share). A prompts file may have an `image`, `images` or `video`
column (JSON lines; paths relative to the file). The record names each file and its sha256.

Order words ("A, then B", "A before B", "B after A", "A followed by B") split a prompt into parts
that each get an equal, consecutive share of the clip: each part is generated on its own and
the parts are joined in order, crossfaded ("parts" in the JSON line); "while" and "with" stay
one part. --no-compose turns this off.

Every wav holds its JSON line (`maa info out.wav`); `maa generate --replay out.wav -o again.wav`
makes it again, bit-exactly on the same kind of device.
"""


@friendly
def main(
    ctx: typer.Context,
    prompt: str = typer.Argument(None, help="What to generate, in words. - reads prompts from stdin (like --prompts -)."),
    out: str = typer.Option(None, "-o", "--out", help="Output wav for a single prompt (- for stdout). Default: 0000_<prompt>.wav in the current folder."),
    prompts_file: str = typer.Option(None, "--prompts", help="File of prompts (lines, name|prompt, or JSONL); - for stdin."),
    out_dir: Path = typer.Option(None, "--out-dir", help="Folder for --prompts outputs (<name>.wav). Default: the current folder."),
    model_dir: Path = typer.Option(None, "--model", help="Model folder (RUN of `maa train-ldm`: vae/ + ldm/ [+ vocoder/, clap/]) or a name `maa pull` fetched (e.g. make-an-audio). Default: the bundled model."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="Seed of the first output; prompt i, candidate c uses seed + i*K + c."),
    steps: int = typer.Option(None, "--steps", min=1, help="Sampler steps. Default: 12 for dpm++ (the knee of benchmarks/bench_steps.py's quality curve), 25 for plms and ddim (the paper: 100 PLMS steps)."),
    sampler: str = typer.Option("dpm++", "--sampler", help="dpm++ (DPM-Solver++ 2M), plms (the paper's) or ddim."),
    guidance: float = typer.Option(3.0, "--guidance", "-g", help="Classifier-free guidance scale (1: none; the paper: 3)."),
    negative: str = typer.Option("", "--negative", help="Negative prompt: replaces the empty unconditional prompt, steering away from it."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds (rounded to whole latent frames of 128 ms)."),
    candidates: int = typer.Option(1, "-n", "--candidates", min=1, help="Generate K per prompt and keep the best by audio-text score."),
    scorer: str = typer.Option(None, "--scorer", help="Scorer for -n: maa-clap:DIR or laion-clap:CKPT. Default: MODEL/clap if present."),
    batch_size: BatchSize = 4,
    device: Device = "auto",
    init_audio: Path = typer.Option(None, "--init-audio", help="Audio-to-audio: start from this clip's latent (SDEdit)."),
    strength: float = typer.Option(0.5, "--strength", help="With --init-audio: 0 keeps the input, 1 ignores it."),
    compose: bool = typer.Option(True, "--compose/--no-compose", help="Honour order words: \"A, then B\" / \"A before B\" / \"B after A\" / \"A followed by B\" give each part its share of the time, in order (--no-compose: the whole prompt everywhere)."),
    eta: float = typer.Option(0.0, "--eta", help="DDIM noise (0: deterministic)."),
    gl_iters: int = typer.Option(32, "--gl-iters", min=0, help="Griffin-Lim iterations (when the model has no neural vocoder)."),
    png: bool = typer.Option(False, "--png", help="Also write the generated spectrogram as <out>.png."),
    manifest: str = typer.Option(None, "--manifest", help="Where the JSON lines go (default stdout; a file path to keep stdout free)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist, even when made with the same settings."),
    force: bool = typer.Option(False, "--force", help="Run even when the estimated memory or time is above the bound."),
    replay: Path = typer.Option(None, "--replay", help="Make the wav FILE again from the record inside it (same settings, same seed)."),
    inpaint: list[str] = typer.Option(None, "--inpaint", help="With --init-audio: regenerate only START-END seconds (repeatable: --inpaint 2-3.5 --inpaint 6-7); the rest is kept."),
    inpaint_mode: str = typer.Option("keep-scene", "--inpaint-mode", help="With --inpaint: keep-scene (the event layered over the scene, which goes on under it in the spans) or replace (the prompt alone: the scene stops in the spans)."),
    scene_mix: str = typer.Option("duck", "--scene-mix", help="With --inpaint (keep-scene): duck (the scene gives way where the event is loud; the default) or sum (the event +6 dB over the scene, the mix before duck)."),
    context: str = typer.Option(None, "--context", help="With --inpaint (keep-scene): the scene around the spans, e.g. \"rain falls\" (default: the model's clap/ picks the best of a few scene captions)."),
    timeline: str = typer.Option(None, "--timeline", help="Events in their spans: \"0-3: a dog barks; 2-6: rain falls\" or a JSON file of {start, end, prompt}; overlaps allowed. Replaces the prompt."),
    background: str = typer.Option(None, "--background", help="With --timeline: a prompt that sounds under the events for the whole clip."),
    loop: bool = typer.Option(False, "--loop", help="A seamless loop: the end runs into the start without a click or level step (sampled and decoded on a circle; exactly one period long; up to 10 s)."),
    lora: list[str] = typer.Option(None, "--lora", help="Switch on a LoRA adapter: DIR[:SCALE] (the -o folder of `maa train-ldm --lora`; scale 1 by default, 0 turns it off). Repeatable: adapters stack. One made for another base model is refused unless --force."),
    fast: str = typer.Option("auto", "--fast", help="CUDA fast path: auto (bf16 + torch.compile + CUDA graphs on CUDA; off on the CPU), off, the parts to use (bf16,compile,graphs,channels-last) or to drop (no-graphs, no-compile ...). The first call of each shape compiles (reported apart; cached in ~/.cache/maa/torchinductor)."),
    image: list[Path] = typer.Option(None, "--image", help="A picture as the prompt (repeatable: one output each). Needs a model with an openclip: condition."),
    video: Path = typer.Option(None, "--video", help="A video as the prompt: --video-frames frames, their embeddings pooled."),
    image_weight: float = typer.Option(0.5, "--image-weight", help="With --image/--video and a text prompt: the picture's share of the mixed condition (1: the picture only)."),
    video_frames: int = typer.Option(4, "--video-frames", min=1, max=64, help="Frames taken from --video, uniformly spaced."),
    threads: Threads = 0,
    quiet: Quiet = False,
):
    """`maa generate`: text (or a prompts file, a timeline, a record to replay) -> wavs with their records."""
    from maa.infer.job import GenerateJob, Log, run
    from maa.infer.limits import duration_notes
    from maa.infer.options import GenerateOptions

    extra = {}
    if inpaint:
        from maa.infer.inpaint import parse_span

        if init_audio is None and replay is None:
            raise MaaError("--inpaint: give the clip to inpaint with --init-audio FILE")
        extra["inpaint"] = [parse_span(s) for s in inpaint]
    if inpaint_mode != "keep-scene" or context is not None:
        extra.update(inpaint_mode=inpaint_mode, context=context)
    if scene_mix != "duck":
        extra["scene_mix"] = scene_mix
    if inpaint and model_dir is not None and replay is None:  # the official inpainting model only inpaints
        from maa.infer.native_inpaint import inpaint_file, is_inpaint_model

        if is_inpaint_model(model_dir):  # the official inpainting model: no text, its own recipe
            import json

            rec = inpaint_file(model_dir, init_audio, extra.get("inpaint"), out, seed=seed, steps=steps, device=device,
                               gl_iters=gl_iters, prompt=prompt, overwrite=overwrite, warn=warn)
            info(f"wrote {rec['path']} (native inpainting, {rec['steps']} steps)")
            print(json.dumps(rec), flush=True)
            return
    if timeline is not None:
        from maa.infer.timeline import parse_timeline

        events = parse_timeline(timeline)
        if prompt is not None or prompts_file is not None:
            raise MaaError("--timeline replaces the prompt: give the events' prompts in it, not a prompt or --prompts too")
        if init_audio is not None:
            raise MaaError("--timeline with --init-audio: not supported; inpaint the events' spans with --inpaint instead")
        prompt = "; ".join(f"{e.start:g}-{e.end:g}: {e.prompt}" for e in events)  # the record's prompt
        extra["timeline"] = [e.to_dict() for e in events]
    visual = _visual(prompt if timeline is None else None, prompts_file, image, video, image_weight, video_frames,
                     duration)
    if visual and timeline is not None:
        raise MaaError("--timeline with --image/--video: not supported; the events' prompts are text")
    if visual:
        prompt = prompts_file = None
    explicit = ctx.get_parameter_source("duration").name != "DEFAULT"  # a --duration that will not be the length is said
    for note in duration_notes(duration, explicit, init_audio if inpaint else None,
                               max((e["end"] for e in extra.get("timeline", [])), default=None)):
        warn(note)
    # the options of the audio, recorded in every output; built once, checked once by the job
    opts = GenerateOptions(steps=steps, sampler=sampler, guidance=guidance, negative=negative, duration=duration,
                           batch_size=batch_size, eta=eta, init_audio=init_audio, strength=strength, compose=compose,
                           fast=fast, background=background, loop=loop, **extra)
    run(GenerateJob(opts, prompt=prompt, prompts_file=prompts_file, out=out, out_dir=out_dir, model_dir=model_dir,
                    device=device, seed=seed, candidates=candidates, scorer=scorer, png=png, manifest=manifest,
                    overwrite=overwrite, force=force, gl_iters=gl_iters, replay=replay, threads=threads, visual=visual,
                    lora=lora or []),
        Log(info, warn, lambda total: progress.bar(total, "generate", quiet=quiet, unit="step")))


def _visual(prompt, prompts_file, images, video, weight, frames, duration):
    """The visual prompts of this call (maa.infer.visual.VisualSpec), or None for text only."""
    if prompts_file not in (None, "-") and not images and not video and Path(prompts_file).is_file():
        head = Path(prompts_file).read_text(encoding="utf-8", errors="replace")
        if any(f'"{k}"' in head for k in ("image", "images", "video")):
            from maa.infer.visual import read_visual_prompts

            return read_visual_prompts(prompts_file, weight, frames, duration)
    if not images and not video:
        return None  # text only: the visual modules are not even imported
    from maa.infer.visual import VisualSpec

    if prompts_file is not None:
        raise MaaError("--image/--video with --prompts: put the pictures in the file's image or video column")
    if images and video:
        raise MaaError("--image and --video together: give one kind per call")
    text = prompt if prompt not in (None, "-") else None
    specs = [VisualSpec(video=str(video), text=text, weight=weight, frames=frames, duration=duration)] if video else \
        [VisualSpec(images=[str(p)], text=text, weight=weight, frames=frames) for p in images]
    for s in specs:
        s.check()
    return specs
