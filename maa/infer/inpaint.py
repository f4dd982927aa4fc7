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
mixes the two mels (`duck_mels`): the scene goes on under the new event and gives way where the
event is loud. "replace" is the prompt alone inside the spans (the scene stops there).
On the bundled model (benchmarks/bench_inpaint.py --part scene, 6 scenes x 2 seeds, 10 steps) the
span's quiet half is 13.8 dB under the outside's with replace (median; 1/12 within 3 dB; event clap
score in the span 0.83), 0.0 dB with keep-scene (8/12; event 0.57; the older "sum" mix: +1.5 dB,
8/12, 0.33). The event scores less over the scene than alone, whatever its level (the figures
above EVENT_GAIN_DB): duck buys its score back with the scene's share of the span.
Conditioning the spans on "PROMPT while CONTEXT" kept the scene less often (6/12 within 3 dB,
event score 0.29), and mixing the two prompts' guided predictions did not keep it (-13 dB).

The same held-known sampling continues a clip (maa.infer.longform). `join_flux_ratio` and
`level_jump_db` measure joins: clicks show as spectral flux at a join well above the flux
elsewhere, level jumps as a loudness step across it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import SAMPLE_RATE, fit_length, frames_for_duration, samples_for_frames
from maa.core.errors import MaaError
from maa.infer import sampling
from maa.infer.limits import check_scene_mix, check_span_seconds
from maa.parts.scorers import MaaClapScorer
from maa.parts.vocoders import NORMDB, log10_to_normdb, normdb_to_log10

# Scene captions the context is chosen from when --context is not given: backgrounds the demo
# corpus and its "A while B" compositions cover, phrased as its template captions are.
CONTEXT_CANDIDATES = ("rain falls", "wind blows", "a crowd murmurs", "people talk", "an engine idles",
                      "traffic passes", "birds sing", "a river flows", "water runs", "waves crash",
                      "a fire crackles", "insects buzz", "a machine hums", "music plays", "a bell rings")
# keep-scene's mix of the event over the scene (SCENE_MIXES). benchmarks/bench_inpaint.py --part sweep
# (6 scenes x 2 seeds, 10 steps; bed dB median / within 3 dB / event clap score / scene clap score, the
# span against the input's; the event layer alone, as replace: -13.8 / 1 / 0.83 / 0.20):
#   "sum": the event +6 dB over the scene as powers (the recipe before "duck"): +1.5 / 8 / 0.33 / 0.70;
#          +12 dB: +3.3 / 5 / 0.41; +24 dB: +10.6 / 3 / 0.46. Louder is not enough: the scene under the
#          event is what its score loses (0.62 with the scene 20 dB down; the event alone +12 dB: 0.82);
#   "duck": a sidechain gate, as a mix ducks a bed under a hit: where the event is within DUCK_RANGE_DB
#          of its loudest frame in the span, the scene is cut by DUCK_DEPTH_DB and the event raised by
#          the gain that puts that frame EVENT_OVER_SCENE_DB over the scene's mean power (0 to
#          EVENT_MAX_GAIN_DB); elsewhere both as they are: 0.0 / 8 / 0.57 / 0.41. Range 15 dB: +0.6 / 9 /
#          0.46 / 0.56; 25 dB: -0.6 / 7 / 0.60 / 0.34; a fixed +6 dB instead of the level match: -0.4 / 7 /
#          0.54 / 0.45; 24 dB over (at most +24): +0.5 / 8 / 0.57, edge flux 1.64 (1.34).
EVENT_GAIN_DB = 6.0  # "sum"
EVENT_OVER_SCENE_DB = 18.0  # "duck": the event's loudest frame over the scene's mean power in the span,
EVENT_MAX_GAIN_DB = 12.0  # raised by at most this (never lowered)
DUCK_RANGE_DB = 20.0
DUCK_DEPTH_DB = 40.0  # the scene's cut where the event rules: gone under it
DUCK_KNEE_DB = 3.0  # the gate opens over 3 dB, not at a step
DUCK_SMOOTH = 5  # mel frames (16 ms each) the gate is averaged over: no pumping clicks at its edges
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


def _moving_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """x (F,) averaged over k frames centred on each (the ends repeated)."""
    if k <= 1:
        return x
    padded = torch.cat([x[:1].expand(k // 2), x, x[-1:].expand(k - 1 - k // 2)])
    return padded.unfold(0, k, 1).mean(-1)


def _frame_db(m_log10: torch.Tensor) -> torch.Tensor:
    """Per frame of a log10-magnitude mel (80, F): the mean power over the bands in dB."""
    ln10 = math.log(10.0)
    return 10 / ln10 * (torch.logsumexp(2 * ln10 * m_log10.float(), 0) - math.log(m_log10.shape[0]))


def _power_mean_db(db: torch.Tensor) -> torch.Tensor:
    ln10 = math.log(10.0)
    return 10 / ln10 * (torch.logsumexp(db * ln10 / 10, 0) - math.log(len(db)))


def duck_gains(event_log10: torch.Tensor, scene_log10: torch.Tensor, spans: list[Span],
               gain_db: float | None = None, range_db: float = DUCK_RANGE_DB, over_db: float = EVENT_OVER_SCENE_DB,
               max_gain_db: float = EVENT_MAX_GAIN_DB) -> tuple[torch.Tensor, torch.Tensor]:
    """Per mel frame, for log10 mels (..., 80, F): the gate (0..1, how much the event rules the frame)
    and the event's gain in dB. The gate is 1 where the event's frame power is within range_db of
    its loudest frame in the nearest span, ramping over DUCK_KNEE_DB below, averaged over
    DUCK_SMOOTH frames. The gain: gain_db, or None: the one that sets the event's loudest frame
    over_db over the scene's mean power in that span, within 0..max_gain_db."""
    ev, sc = (m.reshape(-1, *m.shape[-2:])[0] for m in (event_log10, scene_log10))
    db, scene_db = _frame_db(ev), _frame_db(sc)
    t = torch.from_numpy(latent_times(ev.shape[-1], 1)).to(db)
    dist = torch.stack([torch.clamp(torch.maximum(s - t, t - e), min=0) for s, e in spans])
    tops, gains = [], []
    for (s, e), d in zip(spans, dist):
        inside = (t >= s) & (t <= e)
        if not inside.any():  # a span shorter than a frame: its nearest frame
            inside = d == d.min()
        tops.append(db[inside].max())
        fit = over_db - (tops[-1] - _power_mean_db(scene_db[inside]))
        gains.append(torch.clamp(fit, 0, max_gain_db) if gain_db is None else torch.tensor(float(gain_db)))
    near = dist.argmin(0)  # each frame's span
    top, gain = torch.stack(tops)[near], torch.stack(gains).to(db)[near]
    return _moving_mean(torch.clamp((db - (top - range_db)) / DUCK_KNEE_DB, 0, 1), DUCK_SMOOTH), gain


def duck_mels(event: torch.Tensor, scene: torch.Tensor, spans: list[Span], domain: str | None,
              gain_db: float | None = None, range_db: float = DUCK_RANGE_DB, depth_db: float = DUCK_DEPTH_DB,
              over_db: float = EVENT_OVER_SCENE_DB, max_gain_db: float = EVENT_MAX_GAIN_DB) -> torch.Tensor:
    """The event's and the scene's mels (..., 80, F) of the model's domain as one, the scene ducked
    under the event: in each frame, with (gate, gain) = duck_gains, the event raised by gate * gain
    and the scene lowered by gate * depth_db, then added as powers (layer_mels). gain_db None: the
    event's gain set by its level over the scene's (over_db, max_gain_db: duck_gains)."""
    la, lb = (normdb_to_log10(m) if domain == NORMDB else m for m in (event, scene))
    g, gain = (x.to(la) for x in duck_gains(la, lb, spans, gain_db, range_db, over_db, max_gain_db))
    ln10 = math.log(10.0)
    out = 0.5 * torch.logaddexp(2 * ln10 * (la + g * gain / 20), 2 * ln10 * (lb - g * depth_db / 20)) / ln10
    return log10_to_normdb(out) if domain == NORMDB else out


def mix_scene(event: torch.Tensor, scene: torch.Tensor, spans: list[Span], domain: str | None,
              mix: str = "duck") -> torch.Tensor:
    """keep-scene's mel: `mix` (SCENE_MIXES) of the event's and the scene's mels."""
    if check_scene_mix(mix) == "sum":  # the recipe before "duck" (records without a scene_mix replay it)
        return layer_mels(event, scene, domain, EVENT_GAIN_DB)
    return duck_mels(event, scene, spans, domain)


@dataclass
class SceneLayers:
    """keep-scene's material before the mix: the event's and the scene's mels (1, 80, F, the model's
    domain, sampled in one batch), the input's round trip mel, and the event's latent."""

    event: torch.Tensor
    scene: torch.Tensor
    roundtrip: torch.Tensor
    z: torch.Tensor  # (1, C, H, W)
    spans: list[Span]
    length: int  # samples of the input


def _prepare(model, audio: np.ndarray, spans: list[Span], seed: int):
    """The checked input, its spans, mel frames, latent, keep mask and the seed's noise."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1 or len(audio) < MEL.n_fft:
        raise MaaError("--init-audio: need a mono clip of at least 0.07 s to inpaint")
    spans = check_spans(spans, len(audio) / SAMPLE_RATE)
    frames = frames_for_duration(len(audio) / SAMPLE_RATE, model.vae.factor)
    z_in = sampling.encode(model, [audio], frames)
    shape = z_in.shape[1:]
    keep = 1 - torch.from_numpy(span_weight(latent_times(shape[-1], model.vae.factor), spans, LATENT_FADE))
    noise = sampling.seeded_noise(shape, seed)[None].to(model.device)
    return audio, spans, frames, z_in, keep, noise


def _crossfaded(wav_gen, wav_rt, mel_gen, mel_rt, spans: list[Span], n: int, z: torch.Tensor) -> Inpainted:
    """The generated audio and mel inside the spans, the round trip's outside, crossfaded at the edges."""
    w = span_weight(sample_times(len(wav_gen)), spans, AUDIO_FADE)
    out = w * wav_gen + (1 - w) * wav_rt
    wf = span_weight(latent_times(mel_gen.shape[-1], 1), spans, AUDIO_FADE)  # per mel frame
    mel = wf * mel_gen + (1 - wf) * mel_rt
    return Inpainted(fit_length(out, n).astype(np.float32), mel, z[0].cpu(), fit_length(wav_rt, n), spans)


@torch.no_grad()
def sample_layers(model, prompt: str, context: str, audio: np.ndarray, spans: list[Span], opts, seed: int = 0,
                  on_step: Callable[[], None] | None = None) -> SceneLayers:
    """keep-scene's two samplings of the spans, in one batch from the same noise: under the prompt
    (the event, as replace samples it) and under `context` (the scene going on), both held to the
    input outside the spans."""
    audio, spans, frames, z_in, keep, noise = _prepare(model, audio, spans, seed)
    zz = sampling.sample(model, [prompt, context], torch.cat([noise, noise]), opts, sampling.Known(z_in, keep),
                         on_step, seed=seed)
    mels = model.vae.decode_latent(torch.cat([zz, z_in]) / model.dcfg.scale_factor, frames=frames).float()
    return SceneLayers(mels[0:1], mels[1:2], mels[2:], zz[:1], spans, len(audio))


@torch.no_grad()
def render_layers(model, layers: SceneLayers, mel: torch.Tensor) -> Inpainted:
    """The inpainted clip of a mix `mel` (1, 80, F) of `layers`: vocoded next to the round trip, one batch."""
    mels = torch.cat([mel, layers.roundtrip])
    wavs = model.vocoder(mels).float().cpu().numpy()
    mel_gen, mel_rt = mels.cpu().numpy()
    wav_gen, wav_rt = (fit_length(w, samples_for_frames(mel.shape[-1])) for w in wavs)
    return _crossfaded(wav_gen, wav_rt, mel_gen, mel_rt, layers.spans, layers.length, layers.z)


@torch.no_grad()
def inpaint(model, prompt: str, audio: np.ndarray, spans: list[Span], opts, seed: int = 0,
            on_step: Callable[[], None] | None = None, context: str | None = None, mix: str = "duck") -> Inpainted:
    """Regenerate `spans` (seconds) of `audio` (16 kHz mono) from `prompt`; keep the rest.

    opts: anything with steps, sampler, guidance, negative and eta (maa.infer.options.GenerateOptions).
    context: the scene under the event (keep-scene): the spans are sampled twice in one batch
    (sample_layers), under the prompt alone (the event, as without a context) and under the
    context (the scene going on, held to the kept audio like the event), and the two mels are
    mixed (`mix`, SCENE_MIXES: mix_scene) before the vocoder. None: the prompt alone (replace)."""
    if context:
        check_scene_mix(mix)  # before the sampling, not after
        layers = sample_layers(model, prompt, context, audio, spans, opts, seed, on_step)
        return render_layers(model, layers, mix_scene(layers.event, layers.scene, layers.spans,
                                                      model.config.get("mel_domain"), mix))
    audio, spans, frames, z_in, keep, noise = _prepare(model, audio, spans, seed)
    z = sampling.sample(model, [prompt], noise, opts, sampling.Known(z_in, keep), on_step, seed=seed)
    (mel_gen, mel_rt), (wav_gen, wav_rt) = sampling.decode(model, torch.cat([z, z_in]), frames)
    return _crossfaded(wav_gen, wav_rt, mel_gen, mel_rt, spans, len(audio), z)


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
    r = inpaint(model, prompt, opts.init_audio, spans, opts, seed, on_step, context=context,
                mix=getattr(opts, "scene_mix", "duck"))
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

