"""Does each event of a timeline sound in its span? Mix vs joint vs "A, then B".

For a few timelines (sequential halves and thirds, events with gaps over a background,
overlapping events), each rendered by maa.infer.timeline in "mix" and "joint" mode and, as the
baseline, the events' prompts joined as "A, then B, ..." (maa.infer.temporal: equal consecutive
shares, whatever the spans). Placement per event comes from the bundled scorer (maa-clap) run on
1 s windows every 0.125 s: the event's audio-text score over time minus the mean score of the
timeline's other events there (what the scorer says is *this* event rather than sound at all),
c(t), floored at its minimum.
  * share: the part of that mass that lies inside the event's span (chance: the span's share of
    the clip, listed);
  * onset error: |first t where c(t) reaches half-way from its minimum to its maximum - start|,
    in ms, for events that start after 1 s (before that a 1 s window cannot place it).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_timeline.py --steps 10 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from maa.infer.pipeline import GenerateOptions, load_model
from maa.parts.scorers import load_scorer
from maa.infer.timeline import parse_timeline, render, timeline_seconds

TIMELINES = [
    ("0-5: a dog barks; 5-10: rain falls", None),
    ("0-3.3: a siren wails; 3.3-6.7: a bell rings; 6.7-10: thunder rumbles", None),
    ("1-4: a dog barks; 6-9: a piano plays", "wind blows"),
    ("0-6: an engine idles; 4-10: birds sing", None),
    ("0.5-2.5: a dog barks; 6.5-9: a bell rings", None),
]
WIN, HOP = 1.0, 0.125


def score_curves(scorer, audio: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Window centres (s) and (len(texts), windows) cosine scores."""
    sr = 16000
    n, h = int(WIN * sr), int(HOP * sr)
    starts = list(range(0, len(audio) - n + 1, h))
    emb = scorer.embed_audio([audio[s:s + n] for s in starts])
    return (np.array(starts) + n / 2) / sr, (scorer.embed_text(texts) @ emb.T).numpy()


def placement(centres: np.ndarray, curve: np.ndarray, start: float, end: float) -> dict:
    above = curve - curve.min()
    inside = (centres >= start) & (centres <= end)
    half = curve.min() + (curve.max() - curve.min()) / 2
    onset = centres[np.argmax(curve >= half)]
    return {"share": float(above[inside].sum() / max(above.sum(), 1e-9)), "chance": float(inside.mean()),
            "onset_ms": float(abs(onset - start) * 1000) if start >= WIN else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)

    model = load_model(a.model)
    scorer = load_scorer(f"maa-clap:{model.root / 'clap'}")
    rows = []
    for spec, background in TIMELINES:
        events = parse_timeline(spec)
        seconds = timeline_seconds(events)
        for seed in a.seeds:
            opts = GenerateOptions(steps=a.steps, duration=seconds, batch_size=1)
            clips = {m: render(model, events, seconds, opts, seed, background, mode=m).audio for m in ("mix", "joint")}
            then = ", then ".join(ev.prompt for ev in events)
            clips["then"] = model([then], [seed], opts=opts)[0].audio
            for method, audio in clips.items():
                centres, raw = score_curves(scorer, audio, [ev.prompt for ev in events])
                curves = raw - (raw.sum(0, keepdims=True) - raw) / max(len(events) - 1, 1)
                for ev, curve in zip(events, curves):
                    rows.append({"timeline": spec, "background": background, "seed": seed, "method": method,
                                 "event": ev.prompt, "start": ev.start, "end": ev.end,
                                 **placement(centres, curve, ev.start, ev.end)})
            print(f"{spec} (seed {seed}): " + ", ".join(
                f"{m} {np.mean([r['share'] for r in rows[-3 * len(events):] if r['method'] == m]):.2f}" for m in clips),
                flush=True)
    print(f"\n{'method':6} {'share in span':>13} {'chance':>7} {'onset error ms':>15}   (mean over {len(rows) // 3} events x seeds)")
    for m in ("mix", "joint", "then"):
        rs = [r for r in rows if r["method"] == m]
        on = [r["onset_ms"] for r in rs if r["onset_ms"] is not None]
        print(f"{m:6} {np.mean([r['share'] for r in rs]):13.2f} {np.mean([r['chance'] for r in rs]):7.2f} "
              f"{np.median(on):11.0f} (median) {np.mean(on):6.0f} (mean, {len(on)} onsets)")
    print("\nper timeline (share in span; mix / joint / then):")
    for spec, _ in TIMELINES:
        vals = [np.mean([r["share"] for r in rows if r["timeline"] == spec and r["method"] == m]) for m in ("mix", "joint", "then")]
        print(f"  {spec[:60]:60} " + " / ".join(f"{v:.2f}" for v in vals))
    if a.json:
        a.json.write_text(json.dumps({"model": str(model.root), "steps": a.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
