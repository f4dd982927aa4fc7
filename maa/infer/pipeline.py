"""Generation from a model folder: load it, lay out the clips, sample, decode, vocode, rank.

A generation model folder holds vae/ (maa train-vae), ldm/ (config.json + unet.safetensors,
the EMA weights when training used EMA) and optionally vocoder/ and clap/. `maa train-ldm`
copies the VAE into RUN/vae/, so RUN is such a folder.

    pipe = maa.load_pipeline("runs/demo")                  # or None: the bundled model
    outs = pipe(["a dog barks", "rain, then thunder"], duration=4, candidates=4)
    outs[0].audio, outs[0].mel, outs[0].record             # 16 kHz float32, log-mel, the JSON line

A `Pipeline` is its parts (UNet, VAE, text encoder, vocoder, schedule), passed in. One call:
  1. checks the settings and prompts, and gives prompt i, candidate c the seed seed + i*K + c;
  2. lays out the clips once (`make_plan`): a prompt with order words ("A, then B") becomes one
     shorter clip per part (maa.infer.temporal), clips of one length batch together; the plan
     also sizes the progress bar;
  3. samples each batch: a seeded Gaussian latent per clip (audio-to-audio: the init audio's
     latent noised to the strength's timestep), a sampler over the guided denoiser, the VAE
     decoder, the vocoder (Griffin-Lim unless the folder has a neural vocoder);
  4. joins the parts of a split prompt end to end, crossfaded;
  5. best-of-K: ranks a prompt's candidates by audio-text score (maa.infer.scoring) and keeps the best;
  6. writes the record: every setting that made the output, enough to make it again bit-exactly
     (maa.infer.record keeps it inside the wav; `maa generate --replay`).
Inpainting (`inpaint` spans of the init audio), a `timeline` of events and clips longer than one
window go through maa.infer.timeline.generate_one instead of steps 2-4, one output at a time.
`Pipeline.stream` yields each output as soon as its last batch is done (what `maa generate`
writes from); `generate` is steps 1-4 without candidates or records.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, fit_length
from maa.core.errors import MaaError
from maa.core.mel import DEFAULT as MEL
from maa.core.mel import frames_for_duration, mel_spectrogram, samples_for_frames, seconds_for_frames
from maa.infer.temporal import join, part_span, split_sequence
from maa.infer.timeline import check_options, generate_one, output_seconds, steps_of, uses_windows
from maa.models.diffusion import LDM_KIND, DiffusionConfig, alphas_cumprod
from maa.models.samplers import (
    SAMPLERS,
    end_alpha,
    guided,
    model_denoiser,
    schedule,
    sdedit_timesteps,
)
from maa.models.unet import UNet, UNetConfig

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model"


@dataclass
class LDMModel:
    unet: UNet
    vae: object
    text: object
    vocoder: object
    dcfg: DiffusionConfig
    ac: torch.Tensor
    config: dict
    root: Path
    device: torch.device


def resolve_model_dir(path: str | Path | None) -> Path:
    """The folder given (or RUN for RUN/ldm), or the bundled model; a clear error when there is none."""
    if path is None:
        if (BUNDLED_MODEL / "ldm" / "config.json").exists():
            return BUNDLED_MODEL
        raise MaaError("no bundled model yet; train one with `maa train-vae MELS -o RUN` then "
                       "`maa train-ldm MELS --vae RUN/vae -o RUN`, or pass --model DIR")
    p = Path(path).expanduser()
    if (p / "config.json").exists() and not (p / "ldm").exists() and (p.parent / "vae").exists():
        p = p.parent  # RUN/ldm given
    if not (p / "ldm" / "config.json").exists():
        raise MaaError(f"{p}: not a generation model folder (no ldm/config.json); pass the -o folder of `maa train-ldm`")
    if not (p / "vae" / "config.json").exists():
        raise MaaError(f"{p}: has ldm/ but no vae/; copy the VAE folder (from `maa train-vae`) to {p / 'vae'}")
    return p


def load_model(path: str | Path | None = None, device: str = "cpu", text_encoder: str | None = None,
               gl_iters: int = 32) -> LDMModel:
    from maa.core.checkpoint import load_weights, read_config, uninitialized
    from maa.infer.vocoders import load_vocoder
    from maa.models.text import load_text_encoder, resolve_spec
    from maa.models.vae import load_vae

    root = resolve_model_dir(path)
    dev = torch.device(device)
    cfg = read_config(root / "ldm")
    if cfg.get("kind") != LDM_KIND:
        raise MaaError(f"{root / 'ldm' / 'config.json'}: kind {cfg.get('kind')!r} is not an LDM config")
    with uninitialized():  # loaded strictly below: no random init to draw
        unet = UNet(UNetConfig.from_dict(cfg["unet"])).to(dev)
    load_weights(root / "ldm", {"unet": unet})
    text = load_text_encoder(resolve_spec(text_encoder or cfg["text_encoder"], root), device=device, max_length=cfg.get("max_length", 77))
    if text.dim != unet.cfg.context_dim:
        raise MaaError(f"text encoder {text.name}: width {text.dim}, but the UNet was trained with {unet.cfg.context_dim}")
    dcfg = DiffusionConfig.from_dict(cfg["diffusion"])
    return LDMModel(unet.eval(), load_vae(root / "vae", dev), text, load_vocoder(root, dev, gl_iters), dcfg,
                    alphas_cumprod(dcfg), cfg, root, dev)


# dpm++: the knee of benchmarks/bench_steps.py's curve (13 prompts, 4 s): CLAP score and class equal
# from 8 to 50 steps; against the 50-step clip, aisfx KL 0.038 at 12 vs 0.092 at 10 and 0.002 at 25.
# plms/ddim: not measured, kept at 25.
DEFAULT_STEPS = {"dpm++": 12, "plms": 25, "ddim": 25}


@dataclass
class GenerateOptions:
    steps: int | None = None  # None: DEFAULT_STEPS[sampler]
    sampler: str = "dpm++"
    guidance: float = 3.0
    negative: str = ""  # the unconditional prompt; "" is the paper's
    duration: float = 10.0
    batch_size: int = 4
    eta: float = 0.0  # DDIM only
    init_audio: np.ndarray | None = None  # audio-to-audio (SDEdit): 16 kHz mono
    strength: float = 0.5
    compose: bool = True  # "A, then B": A over the first half, B over the second (maa.infer.temporal)
    fast: str = "auto"  # CUDA fast path (maa.infer.accel.FastPath.parse): auto (on for CUDA, off on the CPU), off, ...
    # maa.infer.timeline.generate_one samples these (and durations over one window) instead:
    inpaint: list | None = None  # [(start, end)] s of init_audio to regenerate; the rest is kept
    timeline: list | None = None  # [{"start", "end", "prompt"}]: each event in its span
    background: str | None = None  # with a timeline: the prompt under the events

    def __post_init__(self):
        if self.steps is None:
            self.steps = DEFAULT_STEPS.get(self.sampler, 25)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise MaaError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise MaaError(f"--steps {self.steps}: must be at least 1")
        if not 0.0 <= self.strength <= 1.0:
            raise MaaError(f"--strength {self.strength}: must lie in [0, 1]")
        if self.batch_size < 1:
            raise MaaError(f"--batch-size {self.batch_size}: must be at least 1")
        check_options(self)


@dataclass
class Generated:
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor  # scaled latent the sampler returned (a split prompt: its parts' latents end to end)
    prompt: str
    seed: int
    parts: list[str] | None = None  # the prompt's parts in time order, when it was split
    # per part, the batch it was sampled in, when not alone: {"size", "at" (its row), "seed0" (the
    # first row's seed: DDIM's eta noise and Griffin-Lim's phases come from it), "pad_text" (the
    # batch's longest text, when longer: the token padding)}. Batch shape changes the last bits of
    # a sample, so an exact replay (maa.infer.record) rebuilds a batch of that shape.
    batches: list[dict | None] | None = None
    extra: dict | None = None  # what maa.infer.timeline.generate_one adds to the record (spans, events, windows)


def _noise(shape, seed: int) -> torch.Tensor:
    """Per-sample noise from its own seeded CPU generator: the same seed gives the same sample
    whatever the batch size or device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))


JOIN_SECONDS = 0.25  # crossfade between the parts of an "A, then B" prompt


@dataclass
class _Job:
    """One clip to sample: a whole prompt, or part k of a prompt split in time (maa.infer.temporal)."""
    index: int  # which prompt
    part: int
    text: str
    seed: int
    frames: int
    init: np.ndarray | None  # audio-to-audio: the init audio under this clip


def _layout(prompts: list[str], seeds: list[int], opts: GenerateOptions, factor: int) -> tuple[list[list[str]], list[_Job], list[int]]:
    """Each prompt's parts, the clips to sample (sorted by length, so equal lengths batch together)
    and each prompt's crossfade in samples. A part's clip covers its equal share of the duration
    plus the crossfade, in samples and in mel frames; part k > 0 gets its own seed, derived from
    the prompt's."""
    frames = frames_for_duration(opts.duration, factor)
    length = samples_for_frames(frames)
    init = None if opts.init_audio is None else np.asarray(opts.init_audio, np.float32)
    parts = [split_sequence(p) if opts.compose else [p] for p in prompts]
    jobs, overlaps = [], []
    for i, (q, seed) in enumerate(zip(parts, seeds)):
        n = len(q)
        ov = min(int(JOIN_SECONDS * SAMPLE_RATE), length // (2 * n)) if n > 1 else 0
        overlaps.append(ov)
        f = frames
        if n > 1:
            span = max(e - s for s, e in (part_span(k, n, length, ov) for k in range(n)))
            span_f = max(e - s for s, e in (part_span(k, n, frames, _frames_of(ov)) for k in range(n)))
            need = max(math.ceil(span / MEL.hop_length) - 1, span_f)  # samples_for_frames(f) >= span
            f = math.ceil(need / factor) * factor
        for k, text in enumerate(q):
            s0 = part_span(k, n, length, ov)[0]
            piece = None if init is None else fit_length(init[s0:], samples_for_frames(f))
            jobs.append(_Job(i, k, text, int(seed) + 1_000_003 * k, f, piece))
    jobs.sort(key=lambda j: j.frames)  # stable: prompt order within a length
    return parts, jobs, overlaps


def _frames_of(samples: int) -> int:
    """A crossfade of `samples` in mel frames (at least one)."""
    return max(1, samples // MEL.hop_length)


def _timesteps(opts: GenerateOptions, ac: torch.Tensor, grid: str = "maa") -> list[int]:
    """The sampler's timesteps on the model's grid; for audio-to-audio only the last `strength` share of them."""
    ts = schedule(opts.steps, ac, opts.sampler, grid)
    return sdedit_timesteps(ts, opts.strength) if opts.init_audio is not None else ts


def _batches(jobs: list[_Job], size: int) -> list[list[_Job]]:
    """Consecutive jobs of one length, at most `size` at a time."""
    out: list[list[_Job]] = []
    for j in jobs:
        if out and len(out[-1]) < size and out[-1][0].frames == j.frames:
            out[-1].append(j)
        else:
            out.append([j])
    return out


@torch.no_grad()
def _sample(model: LDMModel, jobs: list[_Job], opts: GenerateOptions, on_step) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Audio, mels and latents of a batch of clips of one length."""
    frames = jobs[0].frames
    c, h, w = model.vae.latent_shape(frames)
    ts = _timesteps(opts, model.ac, model.dcfg.timestep_grid)
    noise = torch.stack([_noise((c, h, w), j.seed) for j in jobs]).to(model.device)
    x = noise
    if opts.init_audio is not None:  # SDEdit: the init latent, noised to the first timestep
        mel = torch.stack([mel_spectrogram(torch.from_numpy(j.init)) for j in jobs]).to(model.device)
        z_init = model.vae.encode_mel(mel).float() * model.dcfg.scale_factor
        a = float(model.ac[ts[0]]) if ts else 1.0
        x = math.sqrt(a) * z_init + math.sqrt(1 - a) * noise
    if ts:
        from maa.infer.accel import FastPath, ensure

        ensure(model, FastPath.parse(opts.fast, model.device, model.text.max_length))  # CPU default: a no-op
        den = model_denoiser(model.unet, model.dcfg.prediction, model.ac)
        for t in dict.fromkeys([j.text for j in jobs] + [opts.negative]):
            model.text.encode([t])  # each text alone (then cached): its embedding never depends on its batch
        cond, uncond = model.text.encode([j.text for j in jobs]), model.text.encode([opts.negative] * len(jobs))
        eps = guided(den, (cond.tokens, cond.mask), (uncond.tokens, uncond.mask), opts.guidance)
        x = SAMPLERS[opts.sampler](eps, x, ts, model.ac, eta=opts.eta, generator=torch.Generator().manual_seed(jobs[0].seed),
                                   callback=(lambda i, _x: on_step()) if on_step else None,
                                   final_alpha=end_alpha(model.ac, model.dcfg.timestep_grid))
    mels = model.vae.decode_latent(x / model.dcfg.scale_factor, frames=frames).float()
    wavs = model.vocoder(mels).float().cpu().numpy()
    n = samples_for_frames(frames)
    return np.stack([fit_length(wv, n) for wv in wavs]), mels.cpu().numpy(), x.cpu()


@dataclass
class Plan:
    """What one call samples, laid out once: each prompt's parts, the clips in batches, the timesteps.
    `sampler_calls()` is the progress bar's total."""
    prompts: list[str]
    seeds: list[int]
    opts: GenerateOptions
    parts: list[list[str]]
    batches: list[list[_Job]]
    overlaps: list[int]  # per prompt, the crossfade between its parts in samples
    frames: int
    timesteps: list[int]

    def batches_for(self, need: set[int] | None = None) -> list[list[_Job]]:
        """The batches that hold a clip of a prompt in `need` (all: None), whole, so every clip
        is sampled in the same company as in a run of the whole plan (the same bits)."""
        return self.batches if need is None else [b for b in self.batches if any(j.index in need for j in b)]

    def sampler_calls(self, need: set[int] | None = None) -> int:
        if uses_windows(self.opts):  # one output at a time (maa.infer.timeline.generate_one)
            return steps_of(self.opts, len(self.timesteps)) * (len(self.prompts) if need is None else len(need))
        return len(self.timesteps) * len(self.batches_for(need))


def make_plan(model: LDMModel, prompts: list[str], seeds: list[int], opts: GenerateOptions) -> Plan:
    """The settings and prompts checked, then the layout: the one place that computes it."""
    opts.check()
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    for p in prompts:
        if not str(p).strip():
            raise MaaError("empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
    parts, jobs, overlaps = _layout(prompts, seeds, opts, model.vae.factor)
    return Plan(list(prompts), [int(s) for s in seeds], opts, parts, _batches(jobs, opts.batch_size), overlaps,
                frames_for_duration(opts.duration, model.vae.factor), _timesteps(opts, model.ac, model.dcfg.timestep_grid))


def _company(batch: list[_Job], j: _Job, text) -> dict | None:
    """Where clip j sat in its batch (see Generated.batches); None when alone."""
    if len(batch) == 1:
        return None
    c = {"size": len(batch), "at": next(i for i, b in enumerate(batch) if b is j), "seed0": batch[0].seed}
    n = lambda t: min(text.n_tokens(t), text.max_length)  # tokens after truncation
    longest = max((b.text for b in batch), key=n)
    if n(longest) > n(j.text):
        c["pad_text"] = longest
    return c


@torch.no_grad()
def stream(model: LDMModel, plan: Plan, on_step: Callable[[], None] | None = None,
           need: set[int] | None = None) -> Iterator[tuple[int, Generated]]:
    """(prompt index, Generated) for each prompt (in `need`, or all), as soon as its last clip is sampled."""
    if uses_windows(plan.opts):
        yield from _stream_windowed(model, plan, on_step, need)
        return
    opts, length = plan.opts, samples_for_frames(plan.frames)
    keep_input = opts.init_audio is not None and not plan.timesteps  # strength ~0: nothing to change
    left = {i: len(q) for i, q in enumerate(plan.parts) if need is None or i in need}
    done: dict[tuple[int, int], tuple] = {}
    for batch in plan.batches_for(need):
        for j, *result in zip(batch, *_sample(model, batch, opts, on_step)):
            if j.index not in left:
                continue  # a clip of a prompt not asked for, sampled for its company
            done[j.index, j.part] = (*result, _company(batch, j, model.text))
            left[j.index] -= 1
            if left[j.index]:
                continue
            i, q = j.index, plan.parts[j.index]
            got = [done.pop((i, k)) for k in range(len(q))]
            if len(q) == 1:
                audio, mel, z = got[0][:3]
            else:  # the parts end to end; the mel (for --png) crossfaded the same way, linearly
                audio = join([g[0] for g in got], length, plan.overlaps[i])
                mel = join([g[1] for g in got], plan.frames, _frames_of(plan.overlaps[i]), equal_power=False)
                z = torch.cat([g[2] for g in got], dim=-1)
            if keep_input:
                audio = fit_length(np.asarray(opts.init_audio, np.float32), length)
            company = [g[3] for g in got]
            yield i, Generated(audio.astype(np.float32), mel, z, plan.prompts[i], plan.seeds[i], q if len(q) > 1 else None,
                               company if any(company) else None)


def _stream_windowed(model: LDMModel, plan: Plan, on_step, need: set[int] | None) -> Iterator[tuple[int, Generated]]:
    """Inpainting, a timeline, or a clip longer than one window: each output on its own."""
    for i, (prompt, seed, q) in enumerate(zip(plan.prompts, plan.seeds, plan.parts)):
        if need is None or i in need:
            parts = q if len(q) > 1 and not plan.opts.timeline and not plan.opts.inpaint else None
            audio, mel, z, extra = generate_one(model, prompt, seed, plan.opts, parts, on_step)
            yield i, Generated(audio, mel, z, prompt, seed, parts, extra=extra)


def generate(model: LDMModel, prompts: list[str], seeds: list[int], opts: GenerateOptions,
             on_step: Callable[[], None] | None = None) -> list[Generated]:
    """One sample per (prompt, seed) pair, in batches of opts.batch_size. A prompt with order words
    ("A, then B") is sampled part by part and joined (maa.infer.temporal), unless opts.compose is off."""
    got = dict(stream(model, make_plan(model, prompts, seeds, opts), on_step))
    return [got[i] for i in range(len(prompts))]



@dataclass
class Output:
    """One output of a Pipeline call: the best candidate of prompt `index`."""
    index: int
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor
    record: dict  # the JSON line (less where it was written): every setting that made it


@dataclass
class Request:
    """A Pipeline call laid out: the plan of all candidates (prompt i, candidate c is sample i*K + c),
    the scorer, and per output the record it starts from (what a rerun compares)."""
    plan: Plan
    candidates: int
    scorer: object | None
    records: list[dict]

    def samples(self, outputs: set[int] | None) -> set[int] | None:
        k = self.candidates
        return None if outputs is None else {i * k + c for i in outputs for c in range(k)}

    def sampler_calls(self, outputs: set[int] | None = None) -> int:
        return self.plan.sampler_calls(self.samples(outputs))


@dataclass(eq=False)
class Pipeline(LDMModel):
    """Text -> audio from its parts (see the module docstring for the steps); `load_pipeline` builds one."""
    scorer: object | None = None  # for best-of-K; None: the folder's clap/ when there is one
    adapters: list = field(default_factory=list)  # LoRA adapters attached to the UNet: {path, sha256, scale} each

    def __call__(self, prompts: str | list[str], seeds: list[int | None] | None = None, seed: int = 0,
                 candidates: int = 1, scorer=None, init_audio=None, on_step: Callable[[], None] | None = None,
                 **settings) -> list[Output]:
        """One Output per prompt. `settings` are GenerateOptions fields: steps, sampler, guidance,
        negative, duration, batch_size, eta, strength, compose, ... `init_audio`: a path or 16 kHz
        samples. Prompt i, candidate c gets seed + i*K + c, or seeds[i] + c where seeds[i] is given.
        `scorer` ranks the K candidates: a Scorer, a spec (maa-clap:DIR, laion-clap:CKPT), None
        (the folder's clap/) or False (keep the first)."""
        req = self.request([prompts] if isinstance(prompts, str) else prompts, seeds, seed, candidates, scorer,
                           init_audio, **settings)
        return sorted(self.stream(req, on_step), key=lambda o: o.index)

    def request(self, prompts: list[str], seeds: list[int | None] | None = None, seed: int = 0, candidates: int = 1,
                scorer=None, init_audio=None, **settings) -> Request:
        """Steps 1-2: check, seed, lay out. Cheap: nothing is sampled."""
        from maa.infer.scoring import load_scorer

        if candidates < 1:
            raise MaaError(f"-n {candidates}: must be at least 1")
        try:
            opts = GenerateOptions(**settings)
        except TypeError as e:
            raise MaaError(f"generate: {e}") from None
        init = {}
        if init_audio is not None:
            if isinstance(init_audio, (str, Path)):
                from maa.core.audio import load_audio

                init["init_audio"] = str(Path(init_audio).resolve())  # absolute: a replay may run elsewhere
                init_audio = load_audio(init_audio, max_seconds=None if opts.inpaint else opts.duration + 1.0)
            opts.init_audio = np.asarray(init_audio, np.float32)
            init["init_sha256"] = hashlib.sha256(opts.init_audio.tobytes()).hexdigest()[:16]
            if opts.inpaint:
                opts.duration = len(opts.init_audio) / SAMPLE_RATE  # inpainting keeps the input's length
        opts.duration = output_seconds(opts)  # a timeline lasts at least to its last event's end
        k = candidates
        texts = [" ".join(str(p).split()) for p in prompts]
        seeds = list(seeds) if seeds is not None else [None] * len(texts)
        if len(seeds) != len(texts):
            raise ValueError("one seed (or None) per prompt")
        bases = [int(s) if s is not None else int(seed) + i * k for i, s in enumerate(seeds)]
        plan = make_plan(self, [t for t in texts for _ in range(k)], [b + c for b in bases for c in range(k)], opts)
        if scorer is None and k > 1:
            scorer = self.scorer or (f"maa-clap:{self.root / 'clap'}" if (self.root / "clap" / "config.json").exists() else None)
        if isinstance(scorer, (str, Path)):  # loaded once per pipeline and spec
            cache = self.__dict__.setdefault("_scorers", {})
            scorer = cache.get(str(scorer)) or cache.setdefault(str(scorer), load_scorer(str(scorer), device=str(self.device)))
        common = {**_settings(opts, plan.frames), **init, **self.identity()}
        records = []
        for text, base in zip(texts, bases):
            seeds_of = {"seed": base} if k == 1 else {"seed": base, "candidates": k, "candidate_seeds": list(range(base, base + k))}
            records.append({"prompt": text, **seeds_of, **common})
        return Request(plan, k, scorer or None, records)

    def stream(self, req: Request, on_step: Callable[[], None] | None = None,
               outputs: set[int] | None = None) -> Iterator[Output]:
        """Steps 3-6: each Output (of `outputs`, or all) as soon as its candidates are sampled."""
        from maa.infer.scoring import rank_candidates

        k, waiting = req.candidates, {}
        for s, g in stream(self, req.plan, on_step, req.samples(outputs)):
            waiting[s] = g
            i = s // k
            group = [waiting.get(i * k + c) for c in range(k)]
            if any(g is None for g in group):
                continue
            for c in range(k):
                del waiting[i * k + c]
            record, best = dict(req.records[i]), 0
            if k > 1 and req.scorer is not None:
                order, scores = rank_candidates(req.scorer, [g.audio for g in group], group[0].prompt, group[0].parts)
                best = order[0]
                record.update(score=round(float(scores[best]), 4), candidate_scores=[round(float(x), 4) for x in scores])
            g = group[best]
            record["seed"] = g.seed
            if g.parts:
                record["parts"] = g.parts
            if g.batches:
                record["batch"] = g.batches
            if g.extra:
                record.update(g.extra)
            yield Output(i, g.audio, g.mel, g.latent, record)

    def replay(self, record: dict) -> Request:
        """The Request that makes the output of `record` again, bit-exactly on the same device type:
        its settings, its seed, and each part sampled in a batch of the recorded shape (Generated.batches)."""
        from dataclasses import replace

        names = {f.name for f in fields(GenerateOptions)} - {"batch_size", "init_audio"}
        settings = {k: v for k, v in record.items() if k in names}
        init = record.get("init_audio")
        if record.get("init_sha256") and not init:
            raise MaaError("the record's init audio was given as samples, not a file; it cannot be replayed")
        req = self.request([record["prompt"]], [record["seed"]], init_audio=init, scorer=False, **settings)
        if init and req.records[0].get("init_sha256") != record["init_sha256"]:
            raise MaaError(f"{init}: not the init audio this output was made from (its content changed)")
        batches = []
        jobs = [j for b in req.plan.batches for j in b]  # one per part, in part order
        for job, c in zip(jobs, record.get("batch") or [None] * len(jobs)):
            if c is None:
                batches.append([job])
                continue
            filler = replace(job, index=-1, text=c.get("pad_text", job.text), seed=c["seed0"])
            batches.append([job if i == c["at"] else filler for i in range(c["size"])])
        req.plan.batches = batches
        req.records = [{**record, **self.identity()}]
        return req

    def identity(self) -> dict:
        """What the record says about the model and the code: folder, content hash, encoder, vocoder, versions."""
        from maa import __version__

        if not hasattr(self, "_sha"):
            self._sha = model_sha256(self.root)
        out = {"model": str(Path(self.root).resolve()), "model_sha256": self._sha, "text_encoder": self.text.name,
               "vocoder": self.vocoder.kind}
        if self.vocoder.kind == "griffin-lim":
            out["gl_iters"] = self.vocoder.n_iter
        if self.adapters:  # LoRA (maa.models.lora): the hash and scale make the audio; the path finds it again
            out["lora"] = [dict(a) for a in self.adapters]
        if self.device.type == "cpu":  # a CPU matmul's sums (so the last bits) depend on the thread count
            out["threads"] = torch.get_num_threads()
        return {**out, "device": self.device.type, "maa": __version__}


def load_pipeline(model_dir: str | Path | None = None, device: str = "auto", text_encoder: str | None = None,
                  gl_iters: int = 32, scorer=None, lora: list | None = None, force: bool = False,
                  warn: Callable[[str], None] | None = None) -> Pipeline:
    """The Pipeline of a model folder (None: the bundled model) on `device` (auto: CUDA when available).

    `lora`: adapters to switch on, each "DIR[:SCALE]" or a maa.models.lora.AdapterSpec (they stack);
    one made for another base model is refused unless `force` (then `warn` is told)."""
    from maa.core.device import pick_device

    m = load_model(model_dir, device=str(pick_device(device)), text_encoder=text_encoder, gl_iters=gl_iters)
    pipe = Pipeline(**{f.name: getattr(m, f.name) for f in fields(LDMModel)}, scorer=scorer)
    if lora:  # LoRA hook (maa.models.lora): forward hooks on the UNet's layers; its weights stay the base's
        from maa.models.lora import load_adapters, unet_sha256

        pipe._lora, pipe.adapters = load_adapters(pipe.unet, lora, unet_sha256(pipe.root), force, warn, pipe.device)
    return pipe


def _settings(opts: GenerateOptions, frames: int) -> dict:
    """The options as the record's JSON: every field but the batch size (numerics only) and the init
    audio (recorded by hash); `duration` is the length used. Options added later join by themselves:
    keep them JSON values, so `--replay` can pass them back to GenerateOptions."""
    out = {}
    for f in fields(opts):
        if f.name in ("batch_size", "init_audio") or (f.name == "strength" and opts.init_audio is None):
            continue
        if f.name in ("inpaint", "timeline", "background") and not getattr(opts, f.name):
            continue  # recorded only when used
        v = getattr(opts, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    out["duration"] = round(seconds_for_frames(frames), 4)
    out["frames"] = frames
    return out


HASH_CACHE = Path.home() / ".cache" / "maa" / "file-sha256.json"


def model_sha256(root: Path) -> str:
    """Content hash of what makes the audio (ldm/, vae/, vocoder/; not clap/, which only ranks).

    Each file's sha256 is kept in HASH_CACHE under its path, size and mtime, so a 1.4 GB paper-size
    folder is read once, not at every `maa generate` (~1.5 s each)."""
    import json

    from maa.core.checkpoint import sha256_file
    from maa.core.io import write_json_atomic

    try:
        cache = json.loads(HASH_CACHE.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    h, changed = hashlib.sha256(), False
    for part in ("ldm", "vae", "vocoder"):
        for f in sorted((root / part).rglob("*")) if (root / part).is_dir() else []:
            if f.is_file() and not f.name.startswith("."):
                st = f.stat()
                key = f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
                if not isinstance(cache.get(key), str):
                    cache[key], changed = sha256_file(f), True
                h.update(f"{f.relative_to(root)}\0{cache[key]}\0".encode())
    if changed:
        try:
            write_json_atomic(HASH_CACHE, cache)
        except OSError:  # a read-only home: hash again next time
            pass
    return h.hexdigest()[:16]














