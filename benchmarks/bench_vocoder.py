"""Neural vocoder vs Griffin-Lim: resynthesis quality on held-out clips, measured in one run.

For each clip x of the manifest (whole frames only): mel = maa.core.audio(x), then
  * neural:      the vocoder folder's model on mel;
  * Griffin-Lim: maa.parts.vocoders.GriffinLim, the fallback `maa generate` uses (fast GLA, 32
                 iterations, momentum 0.99, on the pseudo-inverse linear magnitude), or with
                 --gl torchaudio, torchaudio's GriffinLim with the same settings, shifted by
                 half a hop so its frames sit where maa.core.audio's do.
Both are compared with x on
  * mel L1: mean |log10-mel(y^) - log10-mel(x)| (maa.core.audio's features, lower is better);
  * MR-STFT: multi-resolution STFT distance, spectral convergence + log-magnitude L1 at
    (1024, 120, 600), (2048, 240, 1200), (512, 50, 240) (lower is better);
and timed (real-time factor = seconds of compute per second of audio, on this machine).

    python benchmarks/bench_vocoder.py runs/vocoder --manifest data/demo/test.jsonl
    python benchmarks/bench_vocoder.py runs/vocoder --json runs/vocoder/bench.json --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import load_audio, mel_spectrogram, mel_to_linear
from maa.core.io import write_json_atomic
from maa.data.formats import read_manifest
from maa.parts.vocoders import GriffinLim, load_neural_vocoder
from maa.train.vocoder import mr_stft_distance


def griffin_lim_torchaudio(mel: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
    """(80, F) log-mel -> (F * hop,) samples aligned with maa.core.audio's framing."""
    import torchaudio  # noqa: PLC0415  torchaudio: slow import, after the arguments are parsed (--help stays fast)

    gl = torchaudio.transforms.GriffinLim(n_fft=MEL.n_fft, n_iter=n_iter, win_length=MEL.win_length,
                                          hop_length=MEL.hop_length, power=1.0, momentum=0.99)
    frames = mel.shape[-1]
    wav = gl(mel_to_linear(mel)[None])[0]
    # torchaudio centres frame i on sample i*hop; maa.core.audio's frame i is centred on i*hop + hop/2
    wav = torch.cat([wav.new_zeros(MEL.hop_length // 2), wav])
    out = wav.new_zeros(frames * MEL.hop_length)
    n = min(len(out), len(wav))
    out[:n] = wav[:n]
    return out.clamp(-1.0, 1.0)


def scores(y_hat: torch.Tensor, y: torch.Tensor) -> dict:
    return {"mel_l1": float((mel_spectrogram(y_hat) - mel_spectrogram(y)).abs().mean()),
            "mr_stft": float(mr_stft_distance(y_hat[None], y[None]))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vocoder", help="vocoder folder (RUN or RUN/vocoder) or a BigVGAN folder")
    ap.add_argument("--manifest", default="data/demo/test.jsonl", help="held-out clips (default: the demo test split)")
    ap.add_argument("--max-clips", type=int, default=0, help="0: all")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="crop each clip to this long")
    ap.add_argument("--gl-iters", type=int, default=32)
    ap.add_argument("--gl", choices=("maa", "torchaudio"), default="maa", help="which Griffin-Lim implementation")
    ap.add_argument("--refine", type=int, default=0, help="also score the vocoder with this many mel_refine iterations")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = read_manifest(args.manifest)
    if args.max_clips:
        rows = rows[:args.max_clips]
    t0 = time.perf_counter()
    voc = load_neural_vocoder(args.vocoder, refine=0)  # the raw network; --refine adds a refined row
    load_s = time.perf_counter() - t0

    if args.gl == "maa":
        griffin_lim = GriffinLim(n_iter=args.gl_iters)
    else:
        griffin_lim = lambda m: griffin_lim_torchaudio(m, args.gl_iters)  # noqa: E731
    methods = {"neural": lambda m: voc(m), "griffin_lim": griffin_lim}
    labels = {"neural": "neural", "griffin_lim": f"Griffin-Lim {args.gl_iters}"}
    if args.refine:
        def refined(m):
            voc.refine = args.refine
            try:
                return voc(m)
            finally:
                voc.refine = 0
        methods["neural_refined"] = refined
        labels["neural_refined"] = f"neural+refine{args.refine}"
    per = {k: [] for k in methods}
    secs = {k: 0.0 for k in methods}
    audio_s = 0.0
    for r in rows:
        x = torch.from_numpy(load_audio(r["audio"], max_seconds=args.max_seconds))
        frames = len(x) // MEL.hop_length - 1
        if frames < 8:
            continue
        mel = mel_spectrogram(x)
        y = x[:frames * MEL.hop_length]
        audio_s += len(y) / MEL.sample_rate
        for name, fn in methods.items():
            t = time.perf_counter()
            with torch.inference_mode():
                y_hat = fn(mel)
            secs[name] += time.perf_counter() - t
            per[name].append(scores(y_hat, y))

    result = {"manifest": str(args.manifest), "griffin_lim_impl": args.gl, "gl_iters": args.gl_iters, "clips": len(per["neural"]), "audio_seconds": round(audio_s, 1),
              "vocoder": str(args.vocoder), "vocoder_kind": voc.kind, "load_seconds": round(load_s, 3),
              "threads": torch.get_num_threads()}
    for name in per:
        for metric in ("mel_l1", "mr_stft"):
            vals = np.array([p[metric] for p in per[name]])
            result[f"{name}_{metric}"] = round(float(vals.mean()), 4)
            result[f"{name}_{metric}_std"] = round(float(vals.std()), 4)
        result[f"{name}_rtf"] = round(secs[name] / max(audio_s, 1e-9), 4)
    gl = per["griffin_lim"]
    for name in per:
        if name != "griffin_lim":
            result[f"{name}_better_on_both_clips"] = int(sum(
                n["mel_l1"] < g["mel_l1"] and n["mr_stft"] < g["mr_stft"] for n, g in zip(per[name], gl)))

    print(f"vocoder benchmark: {result['clips']} clips ({result['audio_seconds']} s) of {args.manifest}, "
          f"{result['threads']} threads; vocoder {args.vocoder} ({voc.kind}), loaded in {load_s:.2f} s")
    print(f"{'':16s} {'mel L1':>16s} {'MR-STFT':>16s} {'RTF':>8s}")
    for name, label in labels.items():
        print(f"{label:16s} {result[name + '_mel_l1']:8.4f} ±{result[name + '_mel_l1_std']:.3f} "
              f"{result[name + '_mr_stft']:8.4f} ±{result[name + '_mr_stft_std']:.3f} {result[name + '_rtf']:8.4f}")
    for name, label in labels.items():
        if name != "griffin_lim":
            print(f"{label} better than Griffin-Lim on both metrics for "
                  f"{result[name + '_better_on_both_clips']}/{result['clips']} clips")
    if args.json:
        write_json_atomic(args.json, result)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
