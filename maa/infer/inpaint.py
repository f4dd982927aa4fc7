"""Inpainting: regenerate chosen spans of a clip and keep the rest.

The input's latent (its log-mel through the VAE encoder, posterior mean) is held as known outside
the spans while the sampler denoises the whole latent (maa.infer.sampling.sample with a
`Known` mask; `maa.models.diffusion.hold_known`): after
every step the known region is replaced by the input's latent noised to the next timestep, so
the new material is denoised next to, and continuous with, what stays. Both joins are soft:
the latent mask ramps over LATENT_FADE seconds centred on each span edge, and the decoded audio
is crossfaded over AUDIO_FADE seconds into the input's VAE + vocoder round trip, which is what
the output is outside the spans (exactly, beyond half a fade from the edges).

    spans = [parse_span("2.0-3.5"), parse_span("6-7")]
    clip = inpaint(model, "a door slams", audio, spans, opts, seed=0)   # opts: steps, sampler, ...

Modes (`--inpaint-mode`): "keep-scene" (the default) samples the spans twice in one batch, under
the prompt (the event) and under CONTEXT, a caption of the kept audio (`--context`, or the best of
CONTEXT_CANDIDATES by the model folder's maa-clap scorer), both held to the input outside, and
adds the event's mel (+EVENT_GAIN_DB) to the scene's as powers, so the scene goes on under the
new event. "replace" is the prompt alone inside the spans (the scene stops there: 14 dB quieter,
median of 12, on the bundled model; keep-scene +1.5 dB; benchmarks/bench_inpaint.py). Conditioning the spans on "PROMPT while
CONTEXT" kept the scene less often (6/12 within 3 dB, event score 0.29 vs replace's 0.83), and
mixing the two prompts' guided predictions did not keep it (-13 dB).

The same held-known sampling continues a clip (maa.infer.longform). `join_flux_ratio` and
`level_jump_db` measure joins: clicks show as spectral flux at a join well above the flux
elsewhere, level jumps as a loudness step across it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, fit_length
from maa.core.errors import MaaError
from maa.core.audio import DEFAULT as MEL
from maa.core.audio import frames_for_duration, samples_for_frames
from maa.infer import sampling
from maa.parts.vocoders import NORMDB, log10_to_normdb, normdb_to_log10
from maa.parts.scorers import MaaClapScorer
from maa.infer.limits import check_span_seconds

# Scene captions the context is chosen from when --context is not given: backgrounds the demo
# corpus and its "A while B" compositions cover, phrased as its template captions are.
CONTEXT_CANDIDATES = ("rain falls", "wind blows", "a crowd murmurs", "people talk", "an engine idles",
                      "traffic passes", "birds sing", "a river flows", "water runs", "waves crash",
                      "a fire crackles", "insects buzz", "a machine hums", "music plays", "a bell rings")
# keep-scene raises the event over the scene: on benchmarks/bench_inpaint.py's 6 scenes (seed 0),
# the event's clap score inside the span 0.21 / 0.32 / 0.43 at 0 / +6 / +12 dB, the bed within
# 3 dB of outside in 5 / 4 / 3 of them (a ringing bell or barking dog fills the span's quiet half)
EVENT_GAIN_DB = 6.0
LATENT_FADE = 0.25  # s: about two latent frames of 128 ms
AUDIO_FADE = 0.05  # s

Span = tuple[float, float]
SPAN_SLACK = 0.0005  # s: a span may end half a millisecond past the input (rounding of a typed length)


def parse_span(text: str, what: str = "--inpaint") -> Span:
    """"2.0-3.5" (seconds) -> (2.0, 3.5); `what` is the flag named when it is not a span."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*[-:]\s*(\d+(?:\.\d*)?|\.\d+)\s*", str(text))
    if not m or not float(m.group(1)) < float(m.group(2)):
        raise MaaError(f"{what} {str(text).strip()!r}: want START-END in seconds with START < END, e.g. 2.0-3.5")
    return check_span_seconds(float(m.group(1)), float(m.group(2)), what)


def check_spans(spans: list[Span], seconds: float, what: str = "--inpaint") -> list[Span]:
    """Spans sorted, each inside a clip of `seconds`."""
    if not spans:
        raise MaaError(f"{what}: give at least one span START-END")
    for s, e in spans:
        # one rule for every span that leaves the input (4-9 on a 5 s clip as 7-9): refused, never clipped
        if not 0 <= s < e or e > seconds + SPAN_SLACK:
            raise MaaError(f"{what} {s:g}-{e:g}: outside the {seconds:.2f} s input; give spans within 0-{seconds:.2f}")
    return sorted((s, min(e, seconds)) for s, e in spans)


def span_weight(times: np.ndarray, spans: list[Span], fade: float) -> np.ndarray:
    """1 inside the spans, 0 outside, linear ramps of `fade` seconds centred on each edge (no
    ramp at an edge on the clip's start or end, where nothing is kept)."""
    w = np.zeros(len(times), np.float32)
    end = times[-1] if len(times) else 0.0
    for s, e in spans:
        up = np.ones_like(w) if s <= 0 else np.clip((times - s) / max(fade, 1e-9) + 0.5, 0, 1)
        down = np.ones_like(w) if e >= end else np.clip((e - times) / max(fade, 1e-9) + 0.5, 0, 1)
        w = np.maximum(w, np.minimum(up, down))
    return w


def latent_times(width: int, factor: int) -> np.ndarray:
    """Centre (s) of each latent frame: latent frame j covers mel frames factor*j .. factor*j+factor-1,
    mel frame i is centred on sample i*hop + hop/2."""
    hop = MEL.hop_length
    return ((np.arange(width) * factor + (factor - 1) / 2) * hop + hop / 2) / SAMPLE_RATE


def sample_times(n: int) -> np.ndarray:
    """The time in seconds of each of n samples at 16 kHz."""
    return np.arange(n) / SAMPLE_RATE


@dataclass
class Inpainted:
    """An inpainted clip: the audio, its mel and latent, the input's round trip and the spans made anew."""

    audio: np.ndarray  # float32 16 kHz, the input's length
    mel: np.ndarray  # (80, frames): the generated mel inside the spans, the round trip's outside
    latent: torch.Tensor  # (C, H, W) scaled latent the sampler returned
    roundtrip: np.ndarray  # the input through VAE + vocoder: what the output is outside the spans
    spans: list[Span]


def outside_audio(audio: np.ndarray, spans: list[Span], margin: float = 0.1) -> np.ndarray:
    """The samples of `audio` more than `margin` s away from every span (the kept scene)."""
    t = sample_times(len(audio))
    keep = np.ones(len(t), bool)
    for s, e in spans:
        keep &= (t < s - margin) | (t > e + margin)
    return audio[keep] if keep.sum() >= MEL.n_fft else audio


def pick_context(scorer, audio: np.ndarray, spans: list[Span], candidates=CONTEXT_CANDIDATES) -> str:
    """The candidate caption `scorer` (maa.parts.scorers.Scorer) rates highest for the audio outside the spans."""
    sims = scorer.embed_audio([outside_audio(audio, spans)]) @ scorer.embed_text(list(candidates)).T
    return candidates[int(sims[0].argmax())]


def folder_scorer(model):
    """The model folder's maa-clap scorer (clap/), or None when the folder has none."""
    root = getattr(model, "root", None)
    if root is None or not (Path(root) / "clap" / "config.json").exists():
        return None
    return MaaClapScorer(Path(root) / "clap", device=str(model.device))


def layer_mels(a: torch.Tensor, b: torch.Tensor, domain: str | None, gain_db: float = 0.0) -> torch.Tensor:
    """Two mels of the model's domain as one: their magnitudes added as powers (uncorrelated
    sounds), `a` raised by gain_db first."""
    la, lb = (normdb_to_log10(m) if domain == NORMDB else m for m in (a, b))
    ln10 = math.log(10.0)
    out = 0.5 * torch.logaddexp(2 * ln10 * (la + gain_db / 20), 2 * ln10 * lb) / ln10
    return log10_to_normdb(out) if domain == NORMDB else out


@torch.no_grad()
def inpaint(model, prompt: str, audio: np.ndarray, spans: list[Span], opts, seed: int = 0,
            on_step: Callable[[], None] | None = None, context: str | None = None) -> Inpainted:
    """Regenerate `spans` (seconds) of `audio` (16 kHz mono) from `prompt`; keep the rest.

    opts: anything with steps, sampler, guidance, negative and eta (maa.infer.options.GenerateOptions).
    context: the scene under the event (keep-scene): the spans are sampled twice in one batch, under
    the prompt alone (the event, as without a context) and under the context (the scene going on,
    held to the kept audio like the event), and the two mels are added as powers before the
    vocoder. None: the prompt alone (replace)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or len(audio) < MEL.n_fft:
        raise MaaError("--init-audio: need a mono clip of at least 0.07 s to inpaint")
    spans = check_spans(spans, len(audio) / SAMPLE_RATE)
    frames = frames_for_duration(len(audio) / SAMPLE_RATE, model.vae.factor)
    z_in = sampling.encode(model, [audio], frames)
    shape = z_in.shape[1:]
    keep = 1 - torch.from_numpy(span_weight(latent_times(shape[-1], model.vae.factor), spans, LATENT_FADE))
    noise = sampling.seeded_noise(shape, seed)[None].to(model.device)
    if not context:
        z = sampling.sample(model, [prompt], noise, opts, sampling.Known(z_in, keep), on_step, seed=seed)
        (mel_gen, mel_rt), (wav_gen, wav_rt) = sampling.decode(model, torch.cat([z, z_in]), frames)
    else:  # the event and the scene under it: one batch, the same noise
        zz = sampling.sample(model, [prompt, context], torch.cat([noise, noise]), opts, sampling.Known(z_in, keep),
                             on_step, seed=seed)
        mels = model.vae.decode_latent(torch.cat([zz, z_in]) / model.dcfg.scale_factor, frames=frames).float()
        mix = layer_mels(mels[0:1], mels[1:2], model.config.get("mel_domain"), EVENT_GAIN_DB)
        wavs = model.vocoder(torch.cat([mix, mels[2:]])).float().cpu().numpy()
        mel_gen, mel_rt = torch.cat([mix, mels[2:]]).cpu().numpy()
        wav_gen, wav_rt = (fit_length(w, samples_for_frames(frames)) for w in wavs)
        z = zz[:1]
    w = span_weight(sample_times(len(wav_gen)), spans, AUDIO_FADE)
    out = w * wav_gen + (1 - w) * wav_rt
    wf = span_weight(latent_times(frames, 1), spans, AUDIO_FADE)  # per mel frame
    mel = wf * mel_gen + (1 - wf) * mel_rt
    n = len(audio)
    return Inpainted(fit_length(out, n).astype(np.float32), mel, z[0].cpu(), fit_length(wav_rt, n), spans)


@torch.no_grad()
def generate_one(model, prompt: str, seed: int, opts, parts: list[str] | None = None,
                 on_step: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray, torch.Tensor, dict]:
    """One output of the "inpaint" mode (maa.infer.options): audio, mel, latent, and what the record
    adds (the spans)."""
    mode = getattr(opts, "inpaint_mode", "keep-scene")  # checked by GenerateOptions.check
    spans = [tuple(s) for s in opts.inpaint]
    context = None
    if mode == "keep-scene":
        context = getattr(opts, "context", None)
        scorer = None if context else folder_scorer(model)
        if scorer is not None:
            context = pick_context(scorer, np.asarray(opts.init_audio, np.float32), spans)
    r = inpaint(model, prompt, opts.init_audio, spans, opts, seed, on_step, context=context)
    extra = {"inpaint": [list(s) for s in r.spans]}
    if mode == "keep-scene":  # the caption the spans were sampled under (replay passes it back as --context)
        extra["inpaint_context"] = context or ""
    return r.audio, r.mel, r.latent, extra


# ----------------------------------------------------------------------------- join measures


def spectral_flux(audio: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Per-frame spectral flux: the summed rise of log magnitude from the previous frame (frame k
    centred on sample k*hop). A click or a cut lights up every bin at once."""
    x = torch.as_tensor(np.asarray(audio, np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True).abs()
    logm = torch.log10(spec + 1e-5)
    flux = (logm[:, 1:] - logm[:, :-1]).clamp(min=0).sum(0)
    return torch.cat([flux[:1], flux]).numpy()


def _local_max(flux: np.ndarray, centres: np.ndarray, width: float, hop: int) -> np.ndarray:
    r = max(1, int(round(width * SAMPLE_RATE / hop)))
    idx = np.round(centres * SAMPLE_RATE / hop).astype(int)
    return np.array([flux[max(0, i - r):i + r + 1].max() for i in idx])


def join_flux_ratio(audio: np.ndarray, joins: list[float], width: float = 0.03, away: float = 0.3,
                    hop: int = 128) -> float:
    """Mean peak spectral flux within `width` s of the joins over the mean peak flux of windows of
    the same width elsewhere (on a grid, more than `away` s from any join): ~1 where the joins
    are no more abrupt than the audio itself, well above 1 for clicks."""
    flux = spectral_flux(audio, hop=hop)
    seconds = len(audio) / SAMPLE_RATE
    grid = np.arange(width + 0.01, seconds - width - 0.01, 2 * width)
    far = np.array([g for g in grid if all(abs(g - j) > away for j in joins)])
    if not len(joins) or not len(far):
        raise ValueError("join_flux_ratio: need joins and audio away from them")
    return float(_local_max(flux, np.asarray(joins), width, hop).mean() / max(_local_max(flux, far, width, hop).mean(), 1e-12))


def rms_db(audio: np.ndarray) -> float:
    """The RMS level of `audio` in dBFS."""
    return float(10 * np.log10(np.mean(np.square(np.asarray(audio, np.float64))) + 1e-10))


def level_jump_db(audio: np.ndarray, t: float, span: float = 0.5) -> float:
    """|level of the `span` s after t - level of the `span` s before t| in dB."""
    i, n = int(round(t * SAMPLE_RATE)), int(round(span * SAMPLE_RATE))
    return abs(rms_db(audio[i:i + n]) - rms_db(audio[max(0, i - n):i]))


def spans_mel_error(mel_a: np.ndarray, mel_b: np.ndarray, spans: list[Span], margin: float) -> tuple[float, float]:
    """Mean |a - b| of two (80, F) log-mels inside the spans and outside them (each shrunk by
    `margin` s from the edges)."""
    t = latent_times(mel_a.shape[-1], 1)
    inside = np.zeros(len(t), bool)
    outside = np.ones(len(t), bool)
    for s, e in spans:
        inside |= (t > s + margin) & (t < e - margin)
        outside &= (t < s - margin) | (t > e + margin)
    d = np.abs(mel_a - mel_b).mean(0)
    return float(d[inside].mean()), float(d[outside].mean())

