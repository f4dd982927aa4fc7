"""Quality and speed of a generation model (the bundled one by default), measured honestly.

1. A judge that never saw generated audio and is not the re-ranking scorer: logistic regression
   on aisfx embeddings, fitted on the real demo-corpus TRAIN clips only. Its accuracy on the
   real TEST clips is the ceiling for what follows.
2. 26 prompts of known classes, phrased unlike the training captions: the fraction of generated
   clips the judge labels as the prompted class (target >= 80%).
3. FD (aisfx) of those clips vs the real test clips, next to the floor: an equal number of real
   VALID clips of the same classes vs the same test clips. KL (aisfx UCS head) of each generated
   clip vs a same-class test clip, next to valid-vs-test pairs of the same classes.
4. 10 "A, then B" prompts: the judge labels each half; success when both halves are right. At
   10 s (generate's default) and 4 s, with the default temporal composition (maa.infer.temporal) and,
   at 10 s, without it (what the UNet learned of word order by itself). The ceiling: the same
   judge on real "A, then B" made of two real test clips, each cut to half the duration.
5. CPU speed: model load time, and wall time for one 10 s clip with the default sampler.

--candidates K generates K per prompt and keeps the best by the model's own CLAP scorer (what
`maa generate -n K` does); the judge is independent of that scorer.

    .venv/bin/python benchmarks/bench_quality.py [--model DIR] [--corpus data/demo] [--candidates 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr
import torch
from maa.data.formats import read_manifest
from maa.core.audio import load_audio
from maa.eval.extractors import load_extractor
from maa.eval.metrics import frechet_distance_of, kl_divergence
from maa.infer.pipeline import GenerateOptions, load_model
from maa.parts.scorers import MaaClapScorer
from maa.parts.scorers import rank_candidates

PROMPTS = {  # class -> a phrasing that is not one of the corpus's caption templates
    "dog": "the barking of a big dog", "siren": "an ambulance siren in the street",
    "rain": "a downpour of rain on the ground", "thunder": "a thunderstorm with booming thunder",
    "piano": "solo piano music", "bell": "the ringing of a small bell",
    "applause": "clapping hands of a large crowd", "bird": "songbirds chirping in the morning",
    "helicopter": "the whirring rotor of a helicopter", "train": "a locomotive passing on railway tracks",
    "telephone": "an old telephone ringing", "violin": "a melody played on a violin",
    "trumpet": "a loud trumpet fanfare", "footsteps": "steps of someone walking on a floor",
    "explosion": "a huge blast of an explosion", "laughter": "laughing people",
    "heartbeat": "the thumping of a heart", "male_speech": "speech from a man",
    "wind": "howling gusts of wind", "seashore": "waves of the ocean hitting a beach",
    "gunshot": "the bang of a pistol shot", "door_slam": "slamming of a door",
    "flute": "a tune on a flute", "organ": "chords on a pipe organ in a church",
    "machine_gun": "rapid automatic gunfire", "stream": "water of a small creek flowing",
}
ORDER = [("dog", "a dog barks", "siren", "a siren wails"), ("thunder", "thunder rumbles", "piano", "a piano is playing"),
         ("bell", "a bell rings", "applause", "people applaud"), ("explosion", "something explodes", "laughter", "people laugh"),
         ("trumpet", "a trumpet blares", "rain", "rain falls"), ("gunshot", "a gun is fired", "bird", "birds are singing"),
         ("telephone", "a telephone rings", "wind", "wind is blowing"), ("door_slam", "a door slams", "violin", "a violin is playing"),
         ("heartbeat", "a heart beats", "organ", "an organ is playing"), ("male_speech", "a man speaks", "seashore", "waves crash on the shore")]


def rows_of(path: Path) -> list[dict]:
    return read_manifest(path)


def embed(ex, wavs16: list[np.ndarray]):
    wavs = [soxr.resample(w, 16000, ex.sample_rate) for w in wavs16]
    out = ex.embed(wavs)
    return out.embeddings, out.probabilities()


def load_wavs(rows):
    return [load_audio(r["audio"]) for r in rows]


def fit_judge(ex, train: list[dict], proba: bool = False):
    """The independent judge: logistic regression on aisfx embeddings of the real train clips.
    Returns classify(embeddings) -> labels, or with proba, (classes, embeddings -> probabilities)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  optional dependency, imported where it is used
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415  optional dependency, imported where it is used

    x_tr, _ = embed(ex, load_wavs(train))
    scaler = StandardScaler().fit(x_tr)
    judge = LogisticRegression(max_iter=3000, C=0.5).fit(scaler.transform(x_tr), [label(r) for r in train])
    if proba:
        return list(judge.classes_), lambda x: judge.predict_proba(scaler.transform(x))
    return lambda x: judge.predict(scaler.transform(x))


def label(row: dict) -> str:
    return row["labels"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--corpus", type=Path, default=Path("data/demo"))
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", "-n", type=int, default=1, help="best of K by the model's CLAP scorer")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    ex = load_extractor("aisfx")
    train, valid, test = (rows_of(a.corpus / f"{s}.jsonl") for s in ("train", "valid", "test"))
    classify = fit_judge(ex, train)
    x_te, p_te = embed(ex, load_wavs(test))
    test_acc = float(np.mean(classify(x_te) == np.array([label(r) for r in test])))

    t0 = time.perf_counter()
    model = load_model(a.model)
    load_s = time.perf_counter() - t0
    opts = GenerateOptions(steps=a.steps, duration=a.duration)
    classes = list(PROMPTS)
    scorer = None
    if a.candidates > 1:
        scorer = MaaClapScorer(model.root / "clap")

    def best_of(prompts, seeds, o):
        """One clip per prompt: the best of --candidates by the model's scorer (maa generate -n)."""
        k = a.candidates
        outs = model([p for p in prompts for _ in range(k)], [s * k + c for s in seeds for c in range(k)], opts=o)
        if k == 1:
            return outs

        groups = [outs[i * k:(i + 1) * k] for i in range(len(prompts))]
        return [g[rank_candidates(scorer, [x.audio for x in g], g[0].record["prompt"], g[0].record.get("parts"))[0][0]] for g in groups]

    gen = best_of([PROMPTS[c] for c in classes], [a.seed + i for i in range(len(classes))], opts)
    x_g, p_g = embed(ex, [g.audio for g in gen])
    pred = classify(x_g)
    gen_acc = float(np.mean(pred == np.array(classes)))

    # FD and KL with a same-size, same-class real baseline
    by_class_valid, by_class_test = defaultdict(list), defaultdict(list)
    for i, r in enumerate(valid):
        by_class_valid[label(r)].append(i)
    for i, r in enumerate(test):
        by_class_test[label(r)].append(i)
    rng = random.Random(a.seed)
    real_idx = [rng.choice(by_class_valid[c]) for c in classes]
    x_v, p_v = embed(ex, load_wavs([valid[i] for i in real_idx]))
    pair_test = [rng.choice(by_class_test[c]) for c in classes]
    fd_gen, fd_floor = frechet_distance_of(x_g, x_te), frechet_distance_of(x_v, x_te)
    kl_gen = float(np.mean([kl_divergence(p_te[j][None], p_g[i][None]) for i, j in enumerate(pair_test)]))
    kl_floor = float(np.mean([kl_divergence(p_te[j][None], p_v[i][None]) for i, j in enumerate(pair_test)]))

    # A, then B: the judge labels each half
    def in_order(wavs):
        halves = [h for w in wavs for h in (w[:len(w) // 2], w[len(w) // 2:])]
        hp = classify(embed(ex, halves)[0])
        ok = [bool(hp[2 * i] == ca and hp[2 * i + 1] == cb) for i, (ca, _, cb, _) in enumerate(ORDER)]
        return round(float(np.mean(ok)), 3), [[str(hp[2 * i]), str(hp[2 * i + 1])] for i in range(len(ORDER))]

    order_prompts = [f"{pa}, then {pb}" for _, pa, _, pb in ORDER]
    order_seeds = [a.seed + 100 + i for i in range(len(ORDER))]
    order, order_halves = {}, {}
    for dur, compose in ((10.0, True), (4.0, True), (10.0, False)):
        o = GenerateOptions(steps=a.steps, duration=dur, compose=compose)
        key = f"{dur:g}s" + ("" if compose else "_no_compose")
        order[key], order_halves[key] = in_order([g.audio for g in best_of(order_prompts, order_seeds, o)])
    # the ceiling: real test clips of A and B, each cut (or tiled) to half the duration, end to end
    for dur in (10.0, 4.0):
        half = int(dur * 16000) // 2
        real = [np.concatenate([np.resize(load_wavs([test[by_class_test[c][0]]])[0], half) for c in (ca, cb)])
                for ca, _, cb, _ in ORDER]
        order[f"real_{dur:g}s"] = in_order(real)[0]

    # speed: one 10 s clip, default sampler, after loading
    t0 = time.perf_counter()
    model(["a dog barks while rain falls"], [0], opts=GenerateOptions(duration=10.0))
    gen10_s = time.perf_counter() - t0

    res = {
        "model": str(model.root), "threads": a.threads, "duration": a.duration, "sampler": opts.sampler, "steps": opts.steps,
        "judge_test_accuracy_real": round(test_acc, 3), "judge_classes": len({label(r) for r in train}),
        "prompted_class_recognised": round(gen_acc, 3), "n_prompts": len(classes),
        "per_prompt": {c: str(p) for c, p in zip(classes, pred)},
        "fd_aisfx_gen_vs_test": round(fd_gen, 2), "fd_aisfx_real_valid_vs_test": round(fd_floor, 2),
        "kl_aisfx_gen_vs_same_class_test": round(kl_gen, 3), "kl_aisfx_real_valid_vs_same_class_test": round(kl_floor, 3),
        "candidates": a.candidates,
        "order_success": order["10s"], "order_success_4s": order["4s"], "order_success_10s_no_compose": order["10s_no_compose"],
        "order_ceiling_real_10s": order["real_10s"], "order_ceiling_real_4s": order["real_4s"],
        "order_halves": order_halves,
        "load_seconds": round(load_s, 2), "generate_10s_clip_seconds": round(gen10_s, 2),
    }
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
