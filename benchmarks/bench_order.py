"""Does a model put events in the order the words give? A softer test than bench_quality's.

For the 10 "A, then B" pairs of bench_quality and their reverses ("B, then A"), same seeds: the
judge's probabilities of the two classes in each half. The order margin of one clip is
  [P(first | 1st half) - P(first | 2nd half)] + [P(second | 2nd half) - P(second | 1st half)];
about 0 when the model ignores order, up to 2 when it follows it. Reported with the default
temporal composition and without it (--no-compose: what the UNet learned by itself).

    .venv/bin/python benchmarks/bench_order.py [--model DIR] [--duration 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from bench_quality import ORDER, embed, fit_judge, rows_of
from maa.eval.extractors import load_extractor
from maa.infer.pipeline import GenerateOptions, load_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--corpus", type=Path, default=Path("data/demo"))
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    ex = load_extractor("aisfx")
    classes, proba = fit_judge(ex, rows_of(a.corpus / "train.jsonl"), proba=True)
    model = load_model(a.model)
    pairs = [(ca, pa, cb, pb) for ca, pa, cb, pb in ORDER] + [(cb, pb, ca, pa) for ca, pa, cb, pb in ORDER]
    prompts = [f"{pa}, then {pb}" for _, pa, _, pb in pairs]
    seeds = [100 + i % len(ORDER) for i in range(len(pairs))]  # a pair and its reverse share a seed
    res = {"model": str(model.root), "duration": a.duration, "prompts": len(prompts)}
    for compose in (True, False):
        gen = model(prompts, seeds, opts=GenerateOptions(duration=a.duration, compose=compose))
        halves = [h for g in gen for h in (g.audio[:len(g.audio) // 2], g.audio[len(g.audio) // 2:])]
        p = proba(embed(ex, halves)[0])
        margins = []
        for i, (first, _, second, _) in enumerate(pairs):
            p1, p2 = p[2 * i], p[2 * i + 1]
            f, s = classes.index(first), classes.index(second)
            margins.append(float(p1[f] - p2[f] + p2[s] - p1[s]))
        key = "compose" if compose else "no_compose"
        res[f"order_margin_{key}"] = round(float(np.mean(margins)), 3)
        res[f"order_margin_positive_{key}"] = round(float(np.mean(np.array(margins) > 0)), 3)
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
