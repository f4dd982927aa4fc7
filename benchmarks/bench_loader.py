"""Does the mel data loader keep a GPU fed at base size? Mels/s delivered vs mels/s a base step consumes.

    python benchmarks/bench_loader.py                         # CPU: loader rates, workers 0 and 2
    python benchmarks/bench_loader.py --device cuda --json out.json   # plus the base VAE step on the GPU

Delivered: `maa.data.mels.MelCrops` (the trainers' data set) over N fp16 .npy mels of a 10 s clip
(80 x 624, what `maa mel` writes), random 624-frame crops, through torch's DataLoader with
0 and 2 worker processes, read memory-mapped from disk (cache off: the paper-scale path, where
3,000 hours of mels do not fit in RAM) and from the in-memory float16 cache.
Consumed: one training step of the paper's base autoencoder (`maa train-vae --preset base`:
forward, L1 + KL, backward, AdamW; no discriminator), the fastest mel consumer in the chain
(train-ldm with --cache-latents reads no mel after its first pass). On CPU that rate is tiny;
the question is answered with --device cuda (bf16 autocast, as the trainers run).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from maa.data.mels import MelCrops
from maa.models.vae import SpecVAE, preset


def make_mels(folder: Path, n: int, frames: int = 624) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        p = folder / f"m{i:05d}.npy"
        np.save(p, (rng.standard_normal((80, frames)) - 4).astype(np.float16))
        rows.append({"id": f"m{i}", "mel": str(p)})
    return rows


def delivered(rows: list[dict], workers: int, batch: int, cache: bool, seconds: float) -> float:
    ds = MelCrops(rows, frames=624, cache=cache)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0, drop_last=True)
    n, t0, warm = 0, None, 2  # the first batches include worker start-up
    while True:
        for i, x in enumerate(dl):
            if warm:
                warm -= 1
                if not warm:
                    t0 = time.perf_counter()
                continue
            n += x.shape[0]
            if time.perf_counter() - t0 > seconds:
                return n / (time.perf_counter() - t0)


def consumed(device: str, batch: int, steps: int) -> float:
    model = SpecVAE(preset("base")).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x = torch.randn(batch, 1, 80, 624, device=device) - 4
    use_bf16 = device.startswith("cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            rec, post = model(x)
            loss = (rec.float() - x).abs().mean() + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # allocator and kernel warm-up
    if use_bf16:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if use_bf16:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=512, help="fp16 .npy mels written to a temporary folder")
    ap.add_argument("--batch", type=int, default=4, help="mels per step per GPU (the paper: 4)")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per loader measurement")
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--device", default="cpu", help="where the base step is timed")
    ap.add_argument("--steps", type=int, default=None,
                    help="base steps timed (default 3 on CUDA, 0 on CPU, where one base step takes minutes)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = {"clips": a.clips, "batch": a.batch, "frames": 624, "dtype": "float16", "delivered": []}
    with tempfile.TemporaryDirectory() as tmp:
        rows = make_mels(Path(tmp), a.clips)
        for w in (int(v) for v in a.workers.split(",")):
            for cache in (False, True):
                r = delivered(rows, w, a.batch, cache, a.seconds)
                out["delivered"].append({"workers": w, "cache": cache, "mels_per_s": round(r, 1)})
                print(f"delivered: workers {w}, {'in-memory cache' if cache else 'memory-mapped .npy'}: {r:8.1f} mels/s")
    if a.steps is None:
        a.steps = 3 if a.device.startswith("cuda") else 0
    if a.steps:
        c = consumed(a.device, a.batch, a.steps)
        out["consumed"] = {"device": a.device, "model": "VAE base (69 M), L1 + KL, AdamW", "mels_per_s": round(c, 2)}
        best_mmap = max(d["mels_per_s"] for d in out["delivered"] if not d["cache"])
        out["headroom"] = round(best_mmap / c, 1)
        print(f"consumed: base VAE step on {a.device}: {c:.2f} mels/s; loader headroom (memory-mapped, best workers) "
              f"x{out['headroom']}")
    else:
        print("consumed: not timed (pass --device cuda, or --steps N to time the base VAE step on this CPU)")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
