"""Are the joins of long audio audible? Windowed continuation against independent windows.

Generates SECONDS of audio per prompt with maa.infer.longform (each window continues the
previous one's held overlap) and, as the baseline, the same windows sampled independently (same
seeds, no held overlap) and crossfaded at the same places. At the joins and, for reference, at
the middle of every window:
  * flux ratio: peak spectral flux within 30 ms of a join over that of 30 ms windows elsewhere
    (maa.infer.inpaint.join_flux_ratio): ~1 when a join is as smooth as the audio around it;
  * level jump: |dB of the 0.5 s after - dB of the 0.5 s before|, joins vs window middles.
Peak resident memory is read after a one-window clip and after the long one (flat in duration
when the second is no larger).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_longform.py --seconds 60 --steps 10
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from maa.infer.inpaint import join_flux_ratio, level_jump_db
from maa.infer import sampling
from maa.infer.longform import JOIN_FADE, WINDOW_SEED, _paste
from maa.infer.longform import generate_long
from maa.infer.pipeline import GenerateOptions, load_model
from maa.core.audio import save_wav


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(audio: np.ndarray, joins: list[float], middles: list[float]) -> dict:
    return {"flux_ratio_joins": join_flux_ratio(audio, joins),
            "flux_ratio_middles": join_flux_ratio(audio, middles),
            "level_jump_db_joins": float(np.mean([level_jump_db(audio, j) for j in joins])),
            "level_jump_db_middles": float(np.mean([level_jump_db(audio, m) for m in middles]))}


def independent(model, prompt: str, long, opts, seed: int) -> np.ndarray:
    """The same windows sampled without the held overlap, crossfaded at the same joins."""

    sr, factor = 16000, model.vae.factor
    hop = 256 * factor
    out = np.zeros_like(long.audio)
    for k, (t0, t1) in enumerate(long.windows):
        s, win = round(t0 * sr / hop), round((t1 - t0) * sr / hop)
        c, h, _ = model.vae.latent_shape(factor)
        noise = sampling.seeded_noise((c, h, win), seed + k * WINDOW_SEED)[None].to(model.device)
        z = sampling.sample(model, [prompt], noise, opts, seed=seed + k * WINDOW_SEED)
        _, wavs = sampling.decode(model, z, win * factor)
        centre = None if k == 0 else round(long.joins[k - 1] * sr) - s * hop
        _paste(out, wavs[0], s * hop, centre, int(JOIN_FADE * sr))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompts", nargs="+", default=["rain falls on a roof", "an engine idles"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baseline", action="store_true", help="skip the independent-windows baseline")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--save", type=Path, help="folder for the long clips (long_K.wav)")
    a = ap.parse_args()
    torch.set_num_threads(1)

    model = load_model(a.model)
    opts = GenerateOptions(steps=a.steps)
    generate_long(model, a.prompts[0], 10.0, opts, a.seed)
    rss_one = rss_mb()
    rows = []
    for prompt in a.prompts:
        t = time.time()
        long = generate_long(model, prompt, a.seconds, opts, a.seed,
                             on_window=lambda k, n: print(f"  window {k + 1}/{n}", flush=True))
        secs = time.time() - t
        w = long.windows
        middles = [(t0 + t1) / 2 for t0, t1 in w]
        if a.save:
            save_wav(a.save / f"long_{len(rows)}.wav", long.audio)
        row = {"prompt": prompt, "seconds": len(long.audio) / 16000, "windows": len(w), "joins": len(long.joins),
               "wall_s": round(secs, 1), "continued": measure(long.audio, long.joins, middles)}
        if not a.no_baseline:
            row["independent"] = measure(independent(model, prompt, long, opts, a.seed), long.joins, middles)
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"model": str(model.root), "steps": a.steps, "rss_mb_one_window": round(rss_one, 1),
           "rss_mb_after_long": round(rss_mb(), 1), "rows": rows}
    print(f"\npeak RSS: {res['rss_mb_one_window']} MB after one 10 s window, {res['rss_mb_after_long']} MB after "
          f"{len(rows)} x {a.seconds:g} s")
    print(f"{'prompt':28} {'':12} {'flux@joins':>10} {'flux@mid':>9} {'dB@joins':>9} {'dB@mid':>7}")
    for r in rows:
        for kind in ("continued", "independent"):
            if kind in r:
                m = r[kind]
                print(f"{r['prompt'][:28]:28} {kind:12} {m['flux_ratio_joins']:10.2f} {m['flux_ratio_middles']:9.2f} "
                      f"{m['level_jump_db_joins']:9.2f} {m['level_jump_db_middles']:7.2f}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
