"""Is the wrap of a `--loop` clip audible? Looped clips against plain clips made into loops by a crossfade.

For each prompt and seed: the clip made with --loop (maa.infer.loop: the latent sampled and
decoded on a circle), and the baseline, the plain clip of the same seed whose last 0.5 s is
crossfaded into its first (maa.infer.loop_figures.crossfade_loop). Each is played twice in a row and
measured at the wrap (maa.infer.loop_figures.wrap_figures):
  * flux ratio: peak spectral flux within 30 ms of the wrap over that of 30 ms windows elsewhere
    (~1: the wrap is as smooth as the clip; target <= 1.1);
  * level step: |dB of the 0.5 s after the wrap - dB of the 0.5 s before|, against the same
    measure at points inside the clip (its median and 90th percentile: the clip's own spread).
The same flux ratio at 1/4, 1/2 and 3/4 of the clip ("inside") is the reference of an
indistinguishable wrap. `--method` picks the loop variants to compare (pad, what --loop does:
wrap padding of PAD = 8 latent frames while denoising + circular decoding; pad4: 4 frames; pad+roll:
also roll the latent every step; roll: the roll without padding; decode: only the circular
decoding).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_loop.py --steps 8 --seconds 8
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager

import numpy as np
import torch

import maa
import maa.infer.sampling as S
from maa.infer import loop
from maa.infer.loop_figures import crossfade_loop, wrap_figures

PROMPTS = ["an engine idles", "rain falls on a roof", "wind blows through trees", "a crowd murmurs in a hall",
           "birds are singing", "a stream of water flows", "a fan hums", "crickets chirp at night",
           "a train rumbles along the tracks", "waves crash on a beach", "a fire crackles", "a helicopter flies overhead"]


@contextmanager
def method(name: str):
    """Patch maa.infer.loop's sampling wrapper for one variant of the method."""
    orig = S.circular  # the one the sampler calls (maa.infer.sampling.sample)
    if name == "pad+roll":
        S.circular = lambda eps, w: loop.circular(eps, w, roll=True)
    elif name == "pad4":
        S.circular = lambda eps, w: loop.circular(eps, w, pad=4)
    elif name == "roll":
        S.circular = lambda eps, w: loop.circular(eps, w, pad=0, roll=True)
    elif name == "decode":
        S.circular = lambda eps, w: eps
    try:
        yield
    finally:
        S.circular = orig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--method", action="append", default=None, help="pad (default: what --loop does), pad4, pad+roll, roll, decode")
    ap.add_argument("--rows", action="store_true", help="print every clip's figures")
    args = ap.parse_args()

    torch.manual_seed(0)
    pipe = maa.load_pipeline(args.model, device="cpu")
    methods = args.method or ["pad"]
    prompts = PROMPTS[:args.prompts]
    rows = {m: [] for m in ["crossfade", *methods]}
    t0 = time.time()
    for seed in range(args.seeds):
        kw = dict(seed=seed, steps=args.steps, duration=args.seconds, scorer=False, batch_size=len(prompts))
        for o in pipe(prompts, **kw):
            rows["crossfade"].append(wrap_figures(crossfade_loop(o.audio)))
        for m in methods:
            with method(m):
                for o in pipe(prompts, loop=True, **kw):
                    rows[m].append(wrap_figures(o.audio))
    n = len(prompts) * args.seeds
    print(f"{n} clips per row ({len(prompts)} prompts x {args.seeds} seeds), {args.seconds:g} s, dpm++ x {args.steps} steps, "
          f"{time.time() - t0:.0f} s")
    print(f"{'loop made by':<12} {'flux ratio at wrap':>30} {'inside':>7} {'level step at wrap dB':>24} {'inside: median / p90 dB':>26} {'wrap within p90':>16}")
    out = {}
    for m, r in rows.items():
        f = np.array([x["flux_ratio"] for x in r])
        fi = np.array([x["inside_flux_ratio"] for x in r])
        s = np.array([x["level_step_db"] for x in r])
        med = np.array([x["inside_level_step_db_median"] for x in r])
        p90 = np.array([x["inside_level_step_db_p90"] for x in r])
        within = float(np.mean(s <= p90))
        out[m] = {"flux_ratio_mean": float(f.mean()), "flux_ratio_median": float(np.median(f)), "flux_ratio_max": float(f.max()),
                  "inside_flux_ratio_mean": float(fi.mean()),
                  "level_step_db_mean": float(s.mean()), "inside_median_db": float(med.mean()),
                  "inside_p90_db": float(p90.mean()), "wrap_within_p90": within}
        print(f"{m:<12} {f.mean():>9.2f} mean {np.median(f):5.2f} median {f.max():5.2f} max {fi.mean():7.2f} {s.mean():>15.2f} mean "
              f"{med.mean():>14.2f} / {p90.mean():.2f} {100 * within:>14.0f} %")
        if args.rows:
            for x, p in zip(r, prompts * args.seeds):
                print(f"    {p:<34} flux {x['flux_ratio']:.2f} step {x['level_step_db']:.2f} dB (inside p90 {x['inside_level_step_db_p90']:.2f})")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
