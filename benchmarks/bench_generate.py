"""Sampling latency and real-time factor of `maa generate`, per UNet preset and sampler.

The baseline is the paper's sampler, PLMS with 100 steps; DPM-Solver++ (2M) with 25 steps runs
on the same model, prompt and seed in the same run. Models have random weights (speed does not
depend on them) unless --model points at a trained folder. Times are split into the sampler
(UNet calls, guidance doubles the batch), the VAE decoder and the vocoder (Griffin-Lim here).
RTF = wall time / seconds of audio (below 1: faster than real time).

    .venv/bin/python benchmarks/bench_generate.py                      # tiny and small on CPU
    .venv/bin/python benchmarks/bench_generate.py --presets base --device cuda
    .venv/bin/python benchmarks/bench_generate.py --model runs/demo --duration 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from maa.core.audio import frames_for_duration, seconds_for_frames
from maa.core.checkpoint import num_params, save_weights
from maa.infer.pipeline import GenerateOptions, load_model
from maa.models.diffusion import SAMPLERS, DiffusionConfig
from maa.models.unet import preset as get_unet_preset
from maa.models.vae import SpecVAE
from maa.models.vae import preset as vpreset
from maa.parts.text import load_text_encoder
from maa.train.ldm import LDMSetup, LDMTask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(root: Path, unet_preset: str, vae_preset: str) -> Path:
    torch.manual_seed(0)
    vcfg = vpreset(vae_preset)
    vae = SpecVAE(vcfg)
    save_weights(root / "vae", {"vae": vae}, {"vae": vcfg.to_dict()})
    text = load_text_encoder("minilm")
    task = LDMTask(LDMSetup(unet=get_unet_preset(unet_preset, context_dim=text.dim), diffusion=DiffusionConfig()), vae, text)
    save_weights(root / "ldm", {"unet": task.unet}, task.export_config())
    return root


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_one(model, sampler: str, steps: int, duration: float, repeats: int) -> dict:
    opts = GenerateOptions(steps=steps, sampler=sampler, duration=duration, batch_size=1)
    secs = seconds_for_frames(frames_for_duration(duration))
    # time the parts by wrapping the sampler, decoder and vocoder
    parts = {"sampler": 0.0, "vae": 0.0, "vocoder": 0.0}
    orig_s, orig_dec, orig_voc = SAMPLERS[sampler], model.vae.decode_latent, model.vocoder

    def timed(name, fn):
        def run(*a, **k):
            sync(model.device)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync(model.device)
            parts[name] += time.perf_counter() - t0
            return out
        return run

    SAMPLERS[sampler] = timed("sampler", orig_s)
    model.vae.decode_latent = timed("vae", orig_dec)
    model.vocoder = timed("vocoder", orig_voc)
    try:
        model(["a dog barks while rain falls"], [0], opts=opts)  # warm-up
        for k in parts:
            parts[k] = 0.0
        sync(model.device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(["a dog barks while rain falls"], [0], opts=opts)
        sync(model.device)
        wall = (time.perf_counter() - t0) / repeats
    finally:
        SAMPLERS[sampler], model.vocoder = orig_s, orig_voc
        del model.vae.decode_latent
    return {"wall": wall, "rtf": wall / secs, **{k: v / repeats for k, v in parts.items()}, "audio_s": secs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,small", help="UNet presets to build (ignored with --model)")
    ap.add_argument("--vae", default="small", help="VAE preset for built models")
    ap.add_argument("--model", default=None, help="a trained model folder instead of random weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs", default="plms:100,dpm++:25", help="sampler:steps pairs; the first is the baseline")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    runs = [(s.split(":")[0], int(s.split(":")[1])) for s in args.runs.split(",")]
    print(f"# device {args.device}, torch threads {torch.get_num_threads()}, duration {args.duration} s, "
          f"guidance 3 (2 UNet rows per step), Griffin-Lim 32 iterations", flush=True)
    print(f"{'model':<14} {'UNet M':>7} {'sampler':<10} {'wall s':>8} {'RTF':>7} {'sampler s':>10} {'VAE s':>7} "
          f"{'vocoder s':>9} {'speed-up':>9}", flush=True)
    targets = [(args.model, None)] if args.model else [(None, p) for p in args.presets.split(",")]
    for path, preset in targets:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(path) if path else build(Path(tmp), preset, args.vae)
            model = load_model(root, device=args.device)
            name = preset or Path(path).name
            base = None
            for sampler, steps in runs:
                r = time_one(model, sampler, steps, args.duration, args.repeats)
                base = base or r["wall"]
                print(f"{name:<14} {num_params(model.unet) / 1e6:>7.2f} {sampler + ' ' + str(steps):<10} "
                      f"{r['wall']:>8.2f} {r['rtf']:>7.3f} {r['sampler']:>10.2f} {r['vae']:>7.2f} "
                      f"{r['vocoder']:>9.2f} {base / r['wall']:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
