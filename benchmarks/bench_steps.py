"""Quality against the number of DPM-Solver++ steps: where the default step count comes from.

The same prompts and seeds (bench_quality's 26 class phrasings) are generated at each step count;
each setting is compared with the most converged one (the largest step count, the reference):
  * clap: the model's own CLAP audio-text score (higher is better) and the share of clips whose
    best-scoring class among the CLAP model's classes is the prompted one;
  * aisfx KL: KL(p_ref || p_n) of the independent aisfx classifier's class probabilities
    between a clip and the reference clip of the same seed (0 = the same sound to that judge);
  * aisfx cos: cosine similarity of their aisfx embeddings;
  * mel L1 to the reference clip's mel (log10 units).
A step count whose figures equal the 25-step ones within the spread between seeds changes
nothing a listener or classifier can tell. Needs no corpus (bench_quality's judge does).

    .venv/bin/python benchmarks/bench_steps.py [--steps 8 10 12 15 20 25 50] [--duration 4] [--prompts 26] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import PROMPTS  # noqa: E402
import soxr
from maa.eval.extractors import load_extractor
from maa.eval.metrics import kl_divergence
from maa.infer.pipeline import GenerateOptions, load_model
from maa.parts.scorers import MaaClapScorer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, nargs="+", default=[8, 10, 12, 15, 20, 25, 50])
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help="the first N of bench_quality's prompts")
    ap.add_argument("--batch-size", type=int, default=13)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    model = load_model(a.model)
    classes = list(PROMPTS)[:a.prompts]
    prompts = [PROMPTS[c] for c in classes]
    seeds = list(range(len(prompts)))
    scorer = MaaClapScorer(model.root / "clap")
    ex = load_extractor("aisfx")
    names = scorer.cfg and json.loads((scorer.dir / "config.json").read_text()).get("classes", [])
    class_text = [f"the sound of {n}" for n in names]

    runs = {}
    for n in sorted(set(a.steps)):
        t0 = time.perf_counter()
        outs = model(prompts, seeds, opts=GenerateOptions(steps=n, duration=a.duration, batch_size=a.batch_size))
        secs = time.perf_counter() - t0
        wavs = [o.audio for o in outs]
        emb = ex.embed([soxr.resample(w, 16000, ex.sample_rate) for w in wavs])
        audio_emb = scorer.embed_audio(wavs)
        score = (audio_emb * scorer.embed_text(prompts)).sum(-1).numpy()
        hit = []
        if names:
            sims = audio_emb @ scorer.embed_text(class_text).T
            best = [names[i] for i in sims.argmax(-1).tolist()]
            hit = [b.replace(" ", "_") == c for b, c in zip(best, classes)]
        runs[n] = dict(secs=secs, mels=[o.mel for o in outs], emb=emb.embeddings, prob=emb.probabilities(),
                       score=score, hit=hit)
        print(f"steps {n}: {secs:.1f} s", file=sys.stderr, flush=True)

    ref = runs[max(runs)]
    rows = []
    print(f"{'steps':>5s} {'clap score':>14s} {'clap class':>10s} {'aisfx KL':>14s} {'aisfx cos':>10s} {'mel L1':>14s} {'s/clip':>7s}"
          f"   (vs {max(runs)} steps; +- is the std over {len(prompts)} seeds, {a.duration:g} s clips)")
    for n, r in runs.items():
        kl = np.array([kl_divergence(ref["prob"][i][None], r["prob"][i][None]) for i in range(len(prompts))]) \
            if r["prob"] is not None else np.full(len(prompts), np.nan)
        e, er = r["emb"] / np.linalg.norm(r["emb"], axis=1, keepdims=True), ref["emb"] / np.linalg.norm(ref["emb"], axis=1, keepdims=True)
        cos = (e * er).sum(1)
        l1 = np.array([np.abs(m - mr).mean() for m, mr in zip(r["mels"], ref["mels"])])
        row = {"steps": n, "clap_score": float(r["score"].mean()), "clap_score_std": float(r["score"].std()),
               "clap_class": float(np.mean(r["hit"])) if r["hit"] else None, "aisfx_kl": float(kl.mean()),
               "aisfx_kl_std": float(kl.std()), "aisfx_cos": float(cos.mean()), "mel_l1": float(l1.mean()),
               "mel_l1_std": float(l1.std()), "seconds_per_clip": r["secs"] / len(prompts)}
        rows.append(row)
        cc = f"{row['clap_class']:.2f}" if row["clap_class"] is not None else "-"
        print(f"{n:5d} {row['clap_score']:7.3f}+-{row['clap_score_std']:.3f} {cc:>10s} {row['aisfx_kl']:7.3f}+-{row['aisfx_kl_std']:.3f} "
              f"{row['aisfx_cos']:10.3f} {row['mel_l1']:7.3f}+-{row['mel_l1_std']:.3f} {row['seconds_per_clip']:7.2f}")
    if a.json:
        a.json.write_text(json.dumps({"duration": a.duration, "prompts": len(prompts), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
