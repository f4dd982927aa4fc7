"""Spectrogram VAE benchmark: training throughput and held-out reconstruction error.

Throughput (always): mels per second of a full training step (VAE forward/backward, then the
discriminator's) on 10 s crops (80 x 624): `tiny` on CPU, and `base` on the GPU when CUDA is
available, each with the GAN off and on (the GAN-off figure is the baseline).

Reconstruction (with --vae): whole-clip log-mel L1 of a trained VAE on a held-out manifest,
next to trivial baselines measured on the same clips: the per-band mean of the training mels
(a constant spectrum), and the global mean.

  python benchmarks/bench_vae.py
  python benchmarks/bench_vae.py --vae runs/demo_vae/vae --train data/demo_mels_full/train/manifest.jsonl \\
      --val data/demo_mels_full/valid/manifest.jsonl --png bench_vae.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from maa.core.checkpoint import num_params
from maa.models.vae import SpecVAE, preset
from maa.train.discriminators import DiscConfig, MultiWindowDiscriminator
from maa.train.loop import TrainConfig
from maa.train.vae import VAELossConfig, VAETask
from maa.data.mels import FullMels, MelCrops, band_means, mel_rows
from maa.models.vae import load_vae
from maa.train.vae import evaluate, plot_mels


def throughput(name: str, device: str, batch: int, steps: int, gan: bool, frames: int = 624) -> float:
    torch.manual_seed(0)
    disc = DiscConfig(channels=128 if name == "base" else 32)
    task = VAETask(SpecVAE(preset(name)).to(device), MultiWindowDiscriminator(disc).to(device),
                   VAELossConfig(disc_start=0 if gan else 10**9), frames)
    cfg = TrainConfig(out_dir=Path("/tmp"), steps=steps, batch_size=batch, device=device, lr=1e-4)
    task.optimizers(cfg)
    x = torch.randn(batch, 1, 80, frames, device=device) - 3.0
    task.train_step(x, 0, cfg)  # warm-up (allocations, cuDNN autotune)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for s in range(steps):
        task.train_step(x, s + 1, cfg)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def reconstruction(vae_dir: str, train: str, val: str, png: str | None, device: str) -> None:
    vae = load_vae(vae_dir, device)
    bm = band_means(MelCrops(mel_rows(train), cache=False))
    val_set = FullMels(mel_rows(val))
    t = time.perf_counter()
    res = evaluate(vae, val_set, device, band_mean=bm)
    took = time.perf_counter() - t
    cat = np.concatenate([val_set[i][1].numpy() for i in range(len(val_set))], axis=1)
    glob = float(np.abs(cat - float(bm.mean())).mean())
    print(f"\nreconstruction of {res['clips']} held-out clips ({res['frames']} frames), VAE {num_params(vae) / 1e6:.2f} M "
          f"params from {vae_dir}")
    print(f"  VAE (posterior mean)          mel L1 {res['mel_l1']:.4f}")
    print(f"  baseline: per-band train mean mel L1 {res['band_mean_l1']:.4f}  ({res['band_mean_l1'] / res['mel_l1']:.1f}x the VAE's error)")
    print(f"  baseline: global train mean   mel L1 {glob:.4f}")
    per = sorted(res["per_clip"], key=lambda r: r["mel_l1"])
    print(f"  per clip: best {per[0]['id']} {per[0]['mel_l1']:.3f}, median {per[len(per) // 2]['mel_l1']:.3f}, "
          f"worst {per[-1]['id']} {per[-1]['mel_l1']:.3f}; {res['clips'] / took:.1f} clips/s on {device}")
    if png:
        picks = [per[0], per[len(per) // 2], per[-1]]
        ids = {r["id"] for r in picks}
        mels = {cid: m for cid, m in (val_set[i] for i in range(len(val_set))) if cid in ids}
        panels = []
        for r in picks:
            m = mels[r["id"]]
            panels.append((f"{r['id']} input", m.numpy()))
        for r in picks:
            m = mels[r["id"]]
            rec = vae.reconstruct(m[None].to(device))[0].float().cpu().numpy()
            panels.append((f"reconstruction L1 {r['mel_l1']:.3f}", rec))
        plot_mels(Path(png), panels, cols=3, title="held-out: best, median, worst clip")
        print(f"  wrote {png}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--vae", help="trained model folder (RUN/vae) for the reconstruction figures")
    ap.add_argument("--train", help="training mel manifest (for the per-band-mean baseline)")
    ap.add_argument("--val", help="held-out mel manifest")
    ap.add_argument("--png", help="write best/median/worst held-out reconstructions here")
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if not a.skip_throughput:
        print(f"training throughput, 10 s mels (80 x 624), {a.steps} timed steps; torch threads {torch.get_num_threads()}")
        runs = [("tiny", "cpu", 4)]
        if torch.cuda.is_available():
            runs.append(("base", "cuda", 8))
            print(f"GPU: {torch.cuda.get_device_name(0)}")
        for name, dev, b in runs:
            n = num_params(SpecVAE(preset(name)))
            base = throughput(name, dev, b, a.steps, gan=False)
            gan = throughput(name, dev, b, a.steps, gan=True)
            print(f"  {name:5s} ({n / 1e6:5.2f} M) on {dev:4s} batch {b}: {base:8.2f} mels/s without GAN (baseline), "
                  f"{gan:8.2f} mels/s with the multi-window GAN")
    if a.vae:
        if not (a.train and a.val):
            ap.error("--vae needs --train and --val")
        reconstruction(a.vae, a.train, a.val, a.png, "cuda" if torch.cuda.is_available() else "cpu")


if __name__ == "__main__":
    main()
