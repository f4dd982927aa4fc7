"""Inpainting with the bundled model: is the rest kept, is the inside new, do the edges click?

For a few generated scenes, "a door slams" inpainted into two spans (maa.infer.inpaint). Mean
|log-mel| differences, 0.1 s away from the span edges:
  * outside: output vs input, next to the VAE + vocoder round trip vs input (equal: kept);
  * inside: output vs round trip (new), and outside: output vs round trip (0: kept exactly);
  * edges: peak spectral flux at the four edges over that elsewhere (join_flux_ratio; ~1: no
    click), next to the round trip's at the same places.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inpaint.py --steps 10
"""

from __future__ import annotations

import argparse

import torch
from maa.core.mel import mel_spectrogram
from maa.infer.inpaint import inpaint, join_flux_ratio, spans_mel_error
from maa.infer.pipeline import GenerateOptions, load_model

SCENES = [("heavy rain is falling", 0), ("an engine idles", 1), ("birds are singing", 2)]
SPANS = [(1.5, 2.5), (4.0, 4.6)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompt", default="a door slams")
    a = ap.parse_args()
    torch.set_num_threads(1)

    model = load_model(a.model)
    opts = GenerateOptions(steps=a.steps, duration=6.0, batch_size=1)
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


if __name__ == "__main__":
    main()
