"""A generation model folder loaded (`load_pipeline`), and the public `Pipeline`: text -> audio.

A generation model folder holds vae/ (maa train-vae), ldm/ (config.json + unet.safetensors,
the EMA weights when training used EMA) and optionally vocoder/ and clap/. `maa train-ldm`
copies the VAE into RUN/vae/, so RUN is such a folder.

    pipe = maa.load_pipeline("runs/demo")                  # or None: the bundled model
    outs = pipe(["a dog barks", "rain, then thunder"], duration=4, candidates=4)
    outs[0].audio, outs[0].mel, outs[0].record             # 16 kHz float32, log-mel, the JSON line

A `Pipeline` is its parts (UNet, VAE, text encoder, vocoder, schedule), passed in. One call:
  1. `request`: checks the options (maa.infer.options, which also decides the mode) and the
     prompts, gives prompt i, candidate c the seed seed + i*K + c, and lays the call out once:
     a prompt with order words ("A, then B") becomes one shorter clip per part, clips of one
     length batch together; the Request also sizes the progress bar;
  2. `stream`: samples each batch through maa.infer.sampling (noise, `sample`, `decode`;
     audio-to-audio starts from the init audio's latent), joins the parts of a split prompt
     end to end, crossfaded (maa.infer.temporal, imported only then); inpainting, a timeline
     and a clip over one window are made one output at a time by their mode's module, which
     samples through the same `sample`;
  3. best-of-K: ranks a prompt's candidates by audio-text score (maa.parts.scorers, imported
     only for K > 1) and keeps the best;
  4. the record: every setting that made the output, enough to make it again bit-exactly
     (maa.infer.options keeps it inside the wav; `replay` makes the Request again).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import SAMPLE_RATE, fit_length, frames_for_duration, load_audio, samples_for_frames, seconds_for_frames
from maa.core.checkpoint import folder_sha256, load_weights, read_config, resolve_model, uninitialized
from maa.core.device import pick_device
from maa.core.errors import MaaError
from maa.core.progress import staged
from maa.core.version import __version__
from maa.infer import loop as looping
from maa.infer import sampling
from maa.infer.options import GenerateOptions, mode_module, split_sequence
from maa.infer.temporal import join, part_span
from maa.models.diffusion import INPAINT_KIND, LDM_KIND, DiffusionConfig, alphas_cumprod
from maa.models.unet import UNet, UNetConfig
from maa.models.vae import load_vae
from maa.parts.text import load_text_encoder, resolve_spec
from maa.parts.vocoders import for_domain, load_vocoder

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model"


def resolve_model_dir(path: str | Path | None) -> Path:
    """The folder given (or RUN for RUN/ldm), or the bundled model; a clear error when there is none."""
    if path is None:
        if (BUNDLED_MODEL / "ldm" / "config.json").exists():
            return BUNDLED_MODEL
        raise MaaError("no bundled model yet; train one with `maa train-vae MELS -o RUN` then "
                       "`maa train-ldm MELS --vae RUN/vae -o RUN`, or pass --model DIR")
    p = resolve_model(path)  # a path, or a name `maa pull` fetched (checked against its sha256 record)
    if (p / "config.json").exists() and not (p / "ldm").exists() and (p.parent / "vae").exists():
        p = p.parent  # RUN/ldm given
    if not (p / "ldm" / "config.json").exists():
        raise MaaError(f"{p}: not a generation model folder (no ldm/config.json); pass the -o folder of `maa train-ldm`")
    if not (p / "vae" / "config.json").exists():
        raise MaaError(f"{p}: has ldm/ but no vae/; copy the VAE folder (from `maa train-vae`) to {p / 'vae'}")
    return p


@staged("load")
def load_model(path: str | Path | None = None, device: str = "cpu", text_encoder: str | None = None,
               gl_iters: int = 32) -> Pipeline:
    """The Pipeline of a model folder on `device` as given (load_pipeline picks the device)."""

    root = resolve_model_dir(path)
    dev = torch.device(device)
    cfg = read_config(root / "ldm")
    if cfg.get("kind") == INPAINT_KIND:
        raise MaaError(f"{root}: the official inpainting model takes no text; use it as "
                       f"`maa generate --init-audio CLIP --inpaint START-END --model {path}`")
    if cfg.get("kind") != LDM_KIND:
        raise MaaError(f"{root / 'ldm' / 'config.json'}: kind {cfg.get('kind')!r} is not an LDM config")
    with uninitialized():  # loaded strictly below: no random init to draw
        unet = UNet(UNetConfig.from_dict(cfg["unet"])).to(dev)
    load_weights(root / "ldm", {"unet": unet}, mmap=True)
    text = load_text_encoder(resolve_spec(text_encoder or cfg["text_encoder"], root), device=device, max_length=cfg.get("max_length", 77))
    if text.dim != unet.cfg.context_dim:
        raise MaaError(f"text encoder {text.name}: width {text.dim}, but the UNet was trained with {unet.cfg.context_dim}")
    dcfg = DiffusionConfig.from_dict(cfg["diffusion"])
    vocoder = for_domain(load_vocoder(root, dev, gl_iters), cfg.get("mel_domain"))  # normalised-dB models (pull)
    return Pipeline(unet.eval(), load_vae(root / "vae", dev), text, vocoder, dcfg,
                    alphas_cumprod(dcfg), cfg, root, dev)


def load_pipeline(model_dir: str | Path | None = None, device: str = "auto", text_encoder: str | None = None,
                  gl_iters: int = 32, scorer=None, lora: list | None = None, force: bool = False,
                  warn: Callable[[str], None] | None = None) -> Pipeline:
    """The Pipeline of a model folder (None: the bundled model) on `device` (auto: CUDA when available).

    `lora`: adapters to switch on, each "DIR[:SCALE]" or a maa.models.lora.AdapterSpec (they stack);
    one made for another base model is refused unless `force` (then `warn` is told)."""
    pipe = load_model(model_dir, device=str(pick_device(device)), text_encoder=text_encoder, gl_iters=gl_iters)
    pipe.scorer = scorer
    if lora:  # LoRA hook (maa.models.lora): forward hooks on the UNet's layers; its weights stay the base's
        from maa.models.lora import load_adapters, unet_sha256  # noqa: PLC0415  only with adapters: a plain prompt walks fewer files

        pipe._lora, pipe.adapters = load_adapters(pipe.unet, lora, unet_sha256(pipe.root), force, warn, pipe.device)
    return pipe


def model_sha256(root: Path) -> str:
    """Content hash of what makes the audio (ldm/, vae/, vocoder/; not clap/, which only ranks)."""
    return folder_sha256(root, ("ldm", "vae", "vocoder"))


def _recorded_prefix(path, sha: str, seconds: float) -> np.ndarray | None:
    """The start of the init audio file whose hash a record holds, or None. Audio-to-audio reads
    the init audio up to the duration asked + 1 s, while the record keeps the duration after
    rounding to latent frames (at most 0.128 s away), so a replay searches the prefixes near it."""
    full = load_audio(path, max_seconds=seconds + 1.25)
    data = full.tobytes()
    lo = min(len(full), max(1, int(math.ceil((seconds + 0.75) * SAMPLE_RATE))))
    h = hashlib.sha256(data[:4 * lo])
    for n in range(lo, len(full) + 1):
        if h.hexdigest()[:16] == sha:
            return full[:n]
        h.update(data[4 * n:4 * n + 4])
    return None


# ----------------------------------------------------------------------------- the layout of a call

JOIN_SECONDS = 0.25  # crossfade between the parts of an "A, then B" prompt


@dataclass
class Clip:
    """One clip to sample: a whole prompt, or part k of a prompt split in time (maa.infer.temporal)."""
    index: int  # which sample (prompt i, candidate c: i*K + c)
    part: int
    text: str
    seed: int
    frames: int
    init: np.ndarray | None  # audio-to-audio: the init audio under this clip


def _layout(prompts: list[str], seeds: list[int], opts: GenerateOptions, factor: int) -> tuple[list[list[str]], list[Clip], list[int]]:
    """Each prompt's parts, the clips to sample (sorted by length, so equal lengths batch together)
    and each prompt's crossfade in samples. A part's clip covers its equal share of the duration
    plus the crossfade, in samples and in mel frames; part k > 0 gets its own seed, derived from
    the prompt's."""
    frames = frames_for_duration(opts.duration, factor)
    length = samples_for_frames(frames)
    init = None if opts.init_audio is None else np.asarray(opts.init_audio, np.float32)
    parts = [split_sequence(p) if opts.compose and not opts.loop else [p] for p in prompts]  # a loop is one part
    clips, overlaps = [], []
    for i, (q, seed) in enumerate(zip(parts, seeds)):
        n = len(q)
        ov = min(int(JOIN_SECONDS * SAMPLE_RATE), length // (2 * n)) if n > 1 else 0
        overlaps.append(ov)
        f, spans = frames, [(0, length)]
        if n > 1:
            spans = [part_span(k, n, length, ov) for k in range(n)]
            span = max(e - s for s, e in spans)
            span_f = max(e - s for s, e in (part_span(k, n, frames, _frames_of(ov)) for k in range(n)))
            need = max(math.ceil(span / MEL.hop_length) - 1, span_f)  # samples_for_frames(f) >= span
            f = math.ceil(need / factor) * factor
        for k, text in enumerate(q):
            piece = None if init is None else fit_length(init[spans[k][0]:], samples_for_frames(f))
            clips.append(Clip(i, k, text, int(seed) + 1_000_003 * k, f, piece))
    clips.sort(key=lambda j: j.frames)  # stable: prompt order within a length
    return parts, clips, overlaps


def _frames_of(samples: int) -> int:
    """A crossfade of `samples` in mel frames (at least one)."""
    return max(1, samples // MEL.hop_length)


def _batches(clips: list[Clip], size: int) -> list[list[Clip]]:
    """Consecutive clips of one length, at most `size` at a time."""
    out: list[list[Clip]] = []
    for j in clips:
        if out and len(out[-1]) < size and out[-1][0].frames == j.frames:
            out[-1].append(j)
        else:
            out.append([j])
    return out


def _company(batch: list[Clip], j: Clip, text) -> dict | None:
    """Where clip j sat in its batch (see Generated.batches); None when alone."""
    if len(batch) == 1:
        return None
    c = {"size": len(batch), "at": next(i for i, b in enumerate(batch) if b is j), "seed0": batch[0].seed}
    n = lambda t: min(text.n_tokens(t), text.max_length)  # tokens after truncation
    longest = max((b.text for b in batch), key=n)
    if n(longest) > n(j.text):
        c["pad_text"] = longest
    return c


@dataclass
class Request:
    """A Pipeline call laid out once: per sample (prompt i, candidate c is sample i*K + c) its
    prompt, seed and parts; the clips in batches (plain mode); the timesteps; the scorer; and per
    output the record it starts from (what a rerun compares). `sampler_calls()` is the progress
    bar's total."""
    prompts: list[str]
    seeds: list[int]
    opts: GenerateOptions
    parts: list[list[str]]
    batches: list[list[Clip]]
    overlaps: list[int]  # per sample, the crossfade between its parts in samples
    frames: int
    timesteps: list[int]
    candidates: int = 1
    scorer: object | None = None
    records: list[dict] = field(default_factory=list)

    def samples(self, outputs: set[int] | None) -> set[int] | None:
        k = self.candidates
        return None if outputs is None else {i * k + c for i in outputs for c in range(k)}

    def batches_for(self, need: set[int] | None = None) -> list[list[Clip]]:
        """The batches that hold a clip of a sample in `need` (all: None), whole, so every clip is
        sampled in the same company as in a run of the whole request (the same bits)."""
        return self.batches if need is None else [b for b in self.batches if any(j.index in need for j in b)]

    def sampler_calls(self, outputs: set[int] | None = None) -> int:
        need = self.samples(outputs)
        if self.opts.mode != "plain":  # one output at a time
            return self.opts.steps_per_output(len(self.timesteps)) * (len(self.prompts) if need is None else len(need))
        return len(self.timesteps) * len(self.batches_for(need))


@dataclass
class Generated:
    """One sample, before ranking and records."""
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor | None  # scaled latent the sampler returned (a split prompt: its parts' latents end to end)
    parts: list[str] | None = None  # the prompt's parts in time order, when it was split
    # per part, the batch it was sampled in, when not alone: {"size", "at" (its row), "seed0" (the
    # first row's seed: DDIM's eta noise and Griffin-Lim's phases come from it), "pad_text" (the
    # batch's longest text, when longer: the token padding)}. Batch shape changes the last bits of
    # a sample, so an exact replay rebuilds a batch of that shape.
    batches: list[dict | None] | None = None
    extra: dict | None = None  # what a windowed mode adds to the record (spans, events, windows)


@dataclass
class Output:
    """One output of a Pipeline call: the best candidate of prompt `index`."""
    index: int
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor | None
    record: dict  # the JSON line (less where it was written): every setting that made it


# ----------------------------------------------------------------------------- the public pipeline

@dataclass(eq=False)
class Pipeline:
    """Text -> audio from its parts (see the module docstring for the steps); `load_pipeline` builds one."""
    unet: UNet
    vae: object
    text: object
    vocoder: object
    dcfg: DiffusionConfig
    ac: torch.Tensor
    config: dict
    root: Path
    device: torch.device
    scorer: object | None = None  # for best-of-K; None: the folder's clap/ when there is one
    adapters: list = field(default_factory=list)  # LoRA adapters attached to the UNet: {path, sha256, scale} each

    def __call__(self, prompts: str | list[str], seeds: list[int | None] | None = None, seed: int = 0,
                 candidates: int = 1, scorer=None, init_audio=None, on_step: Callable[[], None] | None = None,
                 opts: GenerateOptions | None = None, **settings) -> list[Output]:
        """One Output per prompt. `settings` are GenerateOptions fields (or pass `opts`): steps,
        sampler, guidance, negative, duration, batch_size, eta, strength, compose, inpaint, timeline,
        ... `init_audio`: a path or 16 kHz samples. Prompt i, candidate c gets seed + i*K + c, or
        seeds[i] + c where seeds[i] is given. `scorer` ranks the K candidates: a Scorer, a spec
        (maa-clap:DIR, laion-clap:CKPT), None (the folder's clap/) or False (keep the first)."""
        req = self.request([prompts] if isinstance(prompts, str) else prompts, seeds, seed, candidates, scorer,
                           init_audio, opts, **settings)
        return sorted(self.stream(req, on_step), key=lambda o: o.index)

    def request(self, prompts: list[str], seeds: list[int | None] | None = None, seed: int = 0, candidates: int = 1,
                scorer=None, init_audio=None, opts: GenerateOptions | None = None, **settings) -> Request:
        """Check, seed, lay out: cheap, nothing is sampled. `opts` is copied (checked unless it was)."""
        if candidates < 1:
            raise MaaError(f"-n {candidates}: must be at least 1")
        if opts is None:
            try:
                opts = GenerateOptions(**settings)
            except TypeError as e:
                raise MaaError(f"generate: {e}") from None
        elif settings:
            raise MaaError(f"generate: give opts or settings ({', '.join(settings)}), not both")
        checked, opts = getattr(opts, "checked", False), replace(opts)
        if init_audio is not None:
            opts.init_audio = init_audio
        init = {}
        if opts.init_audio is not None:
            if isinstance(opts.init_audio, (str, Path)):
                init["init_audio"] = str(Path(opts.init_audio).resolve())  # absolute: a replay may run elsewhere
                opts.init_audio = load_audio(opts.init_audio, max_seconds=None if opts.inpaint else opts.duration + 1.0)
            opts.init_audio = np.asarray(opts.init_audio, np.float32)
            init["init_sha256"] = hashlib.sha256(opts.init_audio.tobytes()).hexdigest()[:16]
            if opts.inpaint:
                opts.duration = len(opts.init_audio) / SAMPLE_RATE  # inpainting keeps the input's length
        if not checked:
            opts.check()
        opts.duration = opts.seconds()  # a timeline lasts at least to its last event's end
        k = candidates
        texts = [" ".join(str(p).split()) for p in prompts]
        for t in texts:
            if not t:
                raise MaaError("empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
        seeds = list(seeds) if seeds is not None else [None] * len(texts)
        if len(seeds) != len(texts):
            raise ValueError("one seed (or None) per prompt")
        bases = [int(s) if s is not None else int(seed) + i * k for i, s in enumerate(seeds)]
        prompts_k, seeds_k = [t for t in texts for _ in range(k)], [b + c for b in bases for c in range(k)]
        frames = frames_for_duration(opts.duration, self.vae.factor)
        mode = opts.mode
        if mode == "plain":
            parts, clips, overlaps = _layout(prompts_k, seeds_k, opts, self.vae.factor)
            batches = _batches(clips, opts.batch_size)
        else:  # one output at a time; a long clip still honours order words, window by window
            parts = [split_sequence(p) if opts.compose and mode == "long" else [p] for p in prompts_k]
            batches, overlaps = [], [0] * len(prompts_k)
        ts = sampling.timesteps(self, opts, mode == "plain" and opts.init_audio is not None)
        req = Request(prompts_k, seeds_k, opts, parts, batches, overlaps, frames, ts, k, self._scorer(scorer, k))
        # a loop is exactly one period, frames * hop samples (maa.infer.loop.decode)
        seconds = frames * MEL.hop_length / SAMPLE_RATE if opts.loop else seconds_for_frames(frames)
        common = {**opts.record_settings(), "duration": round(seconds, 4), "frames": frames}
        common.update(init)
        common.update(self.identity())
        for text, base in zip(texts, bases):
            seeds_of = {"seed": base} if k == 1 else {"seed": base, "candidates": k, "candidate_seeds": list(range(base, base + k))}
            req.records.append({"prompt": text, **seeds_of, **common})
        return req

    def _scorer(self, scorer, k: int):
        """The scorer best-of-K ranks with (None for K = 1: maa.parts.scorers is not even imported)."""
        if k == 1 or scorer is False:
            return None
        if scorer is None:
            scorer = self.scorer or (f"maa-clap:{self.root / 'clap'}" if (self.root / "clap" / "config.json").exists() else None)
        if isinstance(scorer, (str, Path)):  # loaded once per pipeline and spec
            from maa.parts.scorers import load_scorer  # noqa: PLC0415  only for K > 1: a plain call never enters the scorers

            cache = self.__dict__.setdefault("_scorers", {})
            scorer = cache.get(str(scorer)) or cache.setdefault(str(scorer), load_scorer(str(scorer), device=str(self.device)))
        return scorer or None

    def stream(self, req: Request, on_step: Callable[[], None] | None = None,
               outputs: set[int] | None = None) -> Iterator[Output]:
        """Each Output (of `outputs`, or all) as soon as its candidates are sampled."""
        k, waiting = req.candidates, {}
        for s, g in self._generate(req, on_step, req.samples(outputs)):
            waiting[s] = g
            i = s // k
            group = [waiting.get(i * k + c) for c in range(k)]
            if any(g is None for g in group):
                continue
            for c in range(k):
                del waiting[i * k + c]
            record, best = dict(req.records[i]), 0
            if k > 1 and req.scorer is not None:
                from maa.parts.scorers import rank_candidates  # noqa: PLC0415  as load_scorer above

                order, scores = rank_candidates(req.scorer, [g.audio for g in group], req.prompts[i * k], group[0].parts)
                best = order[0]
                record.update(score=round(float(scores[best]), 4), candidate_scores=[round(float(x), 4) for x in scores])
            g = group[best]
            record["seed"] = req.seeds[i * k + best]
            if g.parts:
                record["parts"] = g.parts
            if g.batches:
                record["batch"] = g.batches
            if g.extra:
                record.update(g.extra)
            yield Output(i, g.audio, g.mel, g.latent, record)

    @torch.no_grad()
    def _generate(self, req: Request, on_step, need: set[int] | None) -> Iterator[tuple[int, Generated]]:
        """(sample index, Generated) for each sample (in `need`, or all), as soon as it is made."""
        opts = req.opts
        if opts.mode != "plain":  # inpaint, timeline, long: the mode's module, one output at a time
            module = mode_module(opts.mode)
            for i, (prompt, seed, q) in enumerate(zip(req.prompts, req.seeds, req.parts)):
                if need is None or i in need:
                    parts = q if len(q) > 1 else None
                    audio, mel, z, extra = module.generate_one(self, prompt, seed, opts, parts, on_step)
                    yield i, Generated(audio, mel, z, parts, extra=extra)
            return
        length = samples_for_frames(req.frames)
        keep_input = opts.init_audio is not None and not req.timesteps  # strength ~0: nothing to change
        left = {i: len(q) for i, q in enumerate(req.parts) if need is None or i in need}
        done: dict[tuple[int, int], tuple] = {}
        for batch in req.batches_for(need):
            for j, *result in zip(batch, *self._sample_batch(batch, opts, on_step)):
                if j.index not in left:
                    continue  # a clip of a sample not asked for, sampled for its company
                done[j.index, j.part] = (*result, _company(batch, j, self.text))
                left[j.index] -= 1
                if left[j.index]:
                    continue
                i, q = j.index, req.parts[j.index]
                got = [done.pop((i, k)) for k in range(len(q))]
                if len(q) == 1:
                    audio, mel, z = got[0][:3]
                else:  # the parts end to end; the mel (for --png) crossfaded the same way, linearly
                    audio = join([g[0] for g in got], length, req.overlaps[i])
                    mel = join([g[1] for g in got], req.frames, _frames_of(req.overlaps[i]), equal_power=False)
                    z = torch.cat([g[2] for g in got], dim=-1)
                if keep_input:
                    audio = fit_length(np.asarray(opts.init_audio, np.float32), length)
                company = [g[3] for g in got]
                yield i, Generated(audio.astype(np.float32), mel, z, q if len(q) > 1 else None,
                                   company if any(company) else None)

    def _sample_batch(self, clips: list[Clip], opts: GenerateOptions, on_step) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """Audio, mels and latents of a batch of clips of one length."""
        frames = clips[0].frames
        noise = torch.stack([sampling.seeded_noise(self.vae.latent_shape(frames), j.seed) for j in clips]).to(self.device)
        known = None if opts.init_audio is None else sampling.Known(sampling.encode(self, [j.init for j in clips], frames))
        x = sampling.sample(self, [j.text for j in clips], noise, opts, known, on_step, seed=clips[0].seed)
        # a loop: decoded with wrap context and cut to one period (maa.infer.loop)
        mels, wavs = looping.decode(self, x, frames) if opts.loop else sampling.decode(self, x, frames)
        return wavs, mels, x.cpu()

    def replay(self, record: dict) -> Request:
        """The Request that makes the output of `record` again, bit-exactly on the same device type:
        its settings, its seed, and each part sampled in a batch of the recorded shape (Generated.batches)."""
        opts = GenerateOptions.from_record(record)
        if record.get("init_sha256") and not opts.init_audio:
            raise MaaError("the record's init audio was given as samples, not a file; it cannot be replayed")
        req = self.request([record["prompt"]], [record["seed"]], scorer=False, opts=opts)
        if opts.init_audio and req.records[0].get("init_sha256") != record["init_sha256"]:
            init = _recorded_prefix(opts.init_audio, record["init_sha256"], float(record["duration"]))
            if init is None:
                raise MaaError(f"{opts.init_audio}: not the init audio this output was made from (its content changed)")
            req = self.request([record["prompt"]], [record["seed"]], scorer=False, opts=replace(opts, init_audio=init))
        batches = []
        clips = [j for b in req.batches for j in b]  # one per part, in part order
        for clip, c in zip(clips, record.get("batch") or [None] * len(clips)):
            if c is None:
                batches.append([clip])
                continue
            filler = replace(clip, index=-1, text=c.get("pad_text", clip.text), seed=c["seed0"])
            batches.append([clip if i == c["at"] else filler for i in range(c["size"])])
        req.batches = batches
        req.records = [{**record, **self.identity()}]
        return req

    def identity(self) -> dict:
        """What the record says about the model and the code: folder, content hash, encoder, vocoder, versions."""
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
