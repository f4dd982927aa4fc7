"""Inpainting with the bundled model: is the rest kept, is the inside new, do the edges click,
and does the scene go on under the new event (--inpaint-mode keep-scene vs replace)?

Part 1 (--part kept or all): for a few generated scenes, "a door slams" inpainted into two spans
(maa.infer.inpaint, mode replace). Mean |log-mel| differences, 0.1 s away from the span edges:
  * outside: output vs input, next to the VAE + vocoder round trip vs input (equal: kept);
  * inside: output vs round trip (new), and outside: output vs round trip (0: kept exactly);
  * edges: peak spectral flux at the four edges over that elsewhere (join_flux_ratio; ~1: no
    click), next to the round trip's at the same places.

Part 2 (--part scene or all): 6 scenes x 2 seeds, a 4 s background from its prompt and an event
inpainted into 1.5-2.5 s, per mode:
  * bed dB: the level of the span's quietest 50 % of frames (the event's frames excluded) minus
    that of the quietest 50 % of the frames outside the span (0.1 s from the edges); frames of
    1024 samples, hop 256. Target: within 3 dB (|bed dB| <= 3);
  * event: the model folder's maa-clap cosine of the span (1.5-2.5 s) with the event's text;
  * flux: join_flux_ratio at the two edges (~1: no click);
  * scene: the maa-clap cosine of the span with the input's span (the background alone there):
    how much of the scene the span still sounds like (1: the input itself);
  * context: the caption keep-scene sampled the span under.
Modes: replace, keep-scene with the older mix (sum: the event +6 dB over the scene as powers) and
keep-scene as it runs by default (duck: maa.infer.inpaint.duck_mels).

Part 3 (--part sweep): the same cases, each sampled once (maa.infer.inpaint.sample_layers: the event
and the scene), mixed by each variant (sum at a gain; duck at a gain and range; the event layer
alone, as replace), with part 2's measures.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inpaint.py --steps 10 --part scene
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, mel_spectrogram
from maa.infer.inpaint import (
    duck_mels,
    folder_scorer,
    inpaint,
    join_flux_ratio,
    layer_mels,
    pick_context,
    render_layers,
    sample_layers,
    spans_mel_error,
)
from maa.infer.pipeline import GenerateOptions, load_model

SCENES = [("heavy rain is falling", 0), ("an engine idles", 1), ("birds are singing", 2)]
SPANS = [(1.5, 2.5), (4.0, 4.6)]
# (background prompt, event): phrased unlike keep-scene's CONTEXT_CANDIDATES, so clap must match them
BEDS = [("heavy rain is falling", "a door slams"), ("strong wind is blowing", "a dog barks"),
        ("a crowd of people murmuring", "a bell rings"), ("a car engine is idling", "a door slams"),
        ("birds are chirping", "a dog barks"), ("a stream of water flowing", "a bell rings")]
SPAN = (1.5, 2.5)
# part 3: name -> mix of (event mel, scene mel, domain)
SWEEP = {
    "event alone": lambda ev, sc, d: ev,  # replace's event (sampled in a batch of two)
    "event alone +12": lambda ev, sc, d: duck_mels(ev, sc, [SPAN], d, 12.0, 1e9, 400.0),  # gate open, scene cut
    **{f"sum +{g}": (lambda g: lambda ev, sc, d: layer_mels(ev, sc, d, g))(g) for g in (6, 12, 24)},
    "sum +0, scene -20": lambda ev, sc, d: layer_mels(sc, ev, d, -20.0),  # the scene 20 dB down under the event
    **{f"duck +{g} r{r}": (lambda g, r: lambda ev, sc, d: duck_mels(ev, sc, [SPAN], d, g, r))(g, r)
       for g, r in ((6, 15), (6, 20), (6, 25))},
    **{f"duck {o} over, <={m} r{r}": (lambda o, m, r: lambda ev, sc, d: duck_mels(ev, sc, [SPAN], d, None, r,
                                                                               over_db=o, max_gain_db=m))(o, m, r)
       for o, m, r in ((18, 12, 20), (18, 12, 15), (18, 12, 25), (12, 12, 20), (24, 24, 20))},
}


def frame_db(audio: np.ndarray, n: int = 1024, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame level (dB) and frame centre (s)."""
    starts = np.arange(0, len(audio) - n + 1, hop)
    db = np.array([10 * np.log10(np.mean(np.square(audio[s:s + n].astype(np.float64))) + 1e-10) for s in starts])
    return db, (starts + n / 2) / SAMPLE_RATE


def quiet_half_db(db: np.ndarray) -> float:
    """The mean power (dB) of the quietest half of the frames."""
    q = np.sort(db)[: max(1, len(db) // 2)]
    return float(10 * np.log10(np.mean(10 ** (q / 10))))


def bed_db(audio: np.ndarray, span: tuple[float, float], margin: float = 0.1) -> float:
    """Quietest-half level inside the span minus that outside it (0.1 s from the edges)."""
    db, t = frame_db(audio)
    inside = (t > span[0] + margin) & (t < span[1] - margin)
    outside = (t < span[0] - margin) | (t > span[1] + margin)
    return quiet_half_db(db[inside]) - quiet_half_db(db[outside])


def part_kept(model, a):
    opts = GenerateOptions(steps=a.steps, duration=6.0, batch_size=1, inpaint_mode="replace")
    edges = [t for s in SPANS for t in s]
    print(f"{'scene':24} {'out|in':>7} {'rt|in':>7} {'new in':>7} {'new out':>8} {'flux@edges':>10} {'rt flux':>8}")
    for scene, seed in SCENES:
        src = model([scene], [seed], opts=opts)[0].audio
        r = inpaint(model, a.prompt, src, SPANS, opts, seed=seed)
        m_in, m_out, m_rt = (mel_spectrogram(torch.from_numpy(x)).numpy() for x in (src, r.audio, r.roundtrip))
        _, out_in = spans_mel_error(m_out, m_in, SPANS, 0.1)
        _, rt_in = spans_mel_error(m_rt, m_in, SPANS, 0.1)
        new_in, new_out = spans_mel_error(m_out, m_rt, SPANS, 0.1)
        print(f"{scene:24} {out_in:7.3f} {rt_in:7.3f} {new_in:7.3f} {new_out:8.4f} "
              f"{join_flux_ratio(r.audio, edges, away=0.2):10.2f} {join_flux_ratio(r.roundtrip, edges, away=0.2):8.2f}")


def measures(scorer, out, src, event):
    """bed dB, event score, edge flux, scene score of an inpainted 4 s clip (part 2's measures)."""
    i0, i1 = (int(t * SAMPLE_RATE) for t in SPAN)
    emb = scorer.embed_audio([out[i0:i1], src[i0:i1]])
    return (bed_db(out, SPAN), float(scorer.similarity([out[i0:i1]], [event])[0]),
            join_flux_ratio(out, list(SPAN), away=0.2), float(emb[0] @ emb[1]))


def summary(rows, n):
    """One line per mode: median bed dB, share within 3 dB, mean event score, edge flux, scene score."""
    # median: a background the model renders as near-silence makes any span +70 dB "louder"
    print(f"\n{'mode':20} {'median bed dB':>13} {'|bed|<=3':>8} {'event score':>11} {'edge flux':>9} {'scene':>6}   (n={n})")
    for mode, r in rows.items():
        x = np.array(r)
        print(f"{mode:20} {np.median(x[:, 0]):13.1f} {int(np.sum(np.abs(x[:, 0]) <= 3)):5d}/{len(x):<2d} "
              f"{x[:, 1].mean():11.3f} {x[:, 2].mean():9.2f} {x[:, 3].mean():6.3f}")


def part_scene(model, a):
    opts = GenerateOptions(steps=a.steps, duration=4.0, batch_size=1)
    scorer = folder_scorer(model)
    modes = (("replace", None), ("keep-scene/sum", "sum"), ("keep-scene/duck", "duck"))
    rows = {m: [] for m in ("input", *(m for m, _ in modes))}  # input: the background itself, no event
    print(f"{'background':28} {'event':13} {'seed':>4} {'mode':16} {'bed dB':>7} {'event':>6} {'flux':>5} {'scene':>6}  context")
    for bed, event in BEDS:
        for seed in a.seeds:
            src = model([bed], [seed], opts=opts)[0].audio
            context = pick_context(scorer, src, [SPAN])
            rows["input"].append(measures(scorer, src, src, event))  # the bed alone scored as the event
            for mode, mix in modes:
                r = inpaint(model, event, src, [SPAN], opts, seed=seed, context=mix and context, mix=mix or "duck")
                row = measures(scorer, r.audio, src, event)
                rows[mode].append(row)
                print(f"{bed:28} {event:13} {seed:4d} {mode:16} {row[0]:7.1f} {row[1]:6.3f} {row[2]:5.2f} {row[3]:6.3f}  "
                      f"{context if mix else ''}", flush=True)
    summary(rows, len(BEDS) * len(a.seeds))


def part_sweep(model, a):
    opts = GenerateOptions(steps=a.steps, duration=4.0, batch_size=1)
    scorer = folder_scorer(model)
    domain = model.config.get("mel_domain")
    rows = {name: [] for name in SWEEP}
    for bed, event in BEDS:
        for seed in a.seeds:
            src = model([bed], [seed], opts=opts)[0].audio
            layers = sample_layers(model, event, pick_context(scorer, src, [SPAN]), src, [SPAN], opts, seed=seed)
            for name, mix in SWEEP.items():
                rows[name].append(measures(scorer, render_layers(model, layers, mix(layers.event, layers.scene, domain)).audio,
                                           src, event))
            print(f"{bed:28} {event:13} {seed:4d}", flush=True)
    summary(rows, len(BEDS) * len(a.seeds))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompt", default="a door slams")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--part", choices=("kept", "scene", "sweep", "all"), default="all")
    a = ap.parse_args()
    torch.set_num_threads(1)

    model = load_model(a.model)
    if a.part in ("kept", "all"):
        part_kept(model, a)
    if a.part in ("scene", "all"):
        part_scene(model, a)
    if a.part in ("sweep", "all"):
        part_sweep(model, a)


if __name__ == "__main__":
    main()
