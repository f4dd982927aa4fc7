"""Speed at the paper's size on a GPU: generation, the same UNet work in diffusers, training, `maa mel`.

Models (random weights: timing only): the `base` UNet (320/640 channels, 2 blocks per level,
attention at both levels, 8 heads; ~160 M parameters with the 1024-wide context of the
diffusers row), the `base` VAE, a BigVGAN-size vocoder (the 16 kHz BigVGAN config: 1536
initial channels, 6 upsamplers) and the real MiniLM text encoder. 10 s clips, 25 DPM-Solver++
steps, guidance 3. Rows, all in one run and one table:

  * text -> wav (a maa.infer.pipeline.Pipeline call, a new prompt every call so the text encoder runs):
    latency at batch 1 (median of --calls calls after warm-up) and throughput at the batches
    of --batches (seconds of audio per second), eager fp32 vs bf16 vs bf16 + torch.compile +
    CUDA graphs (maa.infer.sampling); the compiled path's first calls (compile) reported apart;
  * the UNet's sampling work alone (25 guided steps at each batch) by maa's UNet and by
    diffusers' UNet2DConditionModel configured to the same size (320/640 channels, 2 layers
    per block, cross-attention dim 1024, 8 heads, same latent shape), fp32 and the fast path,
    with the ratio maa / diffusers (< 1: maa is faster). Skipped when diffusers is missing
    (pip install 'maa[bench]');
  * training steps/s and samples/s per GPU: the LDM (base UNet, cached latents and text
    states, DDPM loss, AdamW) and the VAE (base, L1 + KL, AdamW; no discriminator), bf16,
    compile off and on, peak memory;
  * `maa mel` on the GPU vs a per-file librosa loop over the same --mel-clips 10 s clips.

`--tiny` swaps in the tiny presets and a few calls so the script runs on a CPU in a minute or
two (tests/benchmarks/test_bench_gpu.py runs it so); on a CPU, bf16 and compile rows are left
out unless --cpu-fast. --sections picks rows; --json writes them.

    .venv/bin/python benchmarks/bench_gpu.py                      # on the GPU machine
    .venv/bin/python benchmarks/bench_gpu.py --tiny --device cpu  # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maa.core.device import pick_device
from maa.infer.pipeline import GenerateOptions, load_model
from maa.infer.sampling import FastPath, FastUNet, accelerate, autocast, restore
from maa.models.bigvgan import BigVGAN, BigVGANConfig
from maa.models.diffusion import SAMPLERS, DiffusionConfig, alphas_cumprod, diffusion_loss, guided, model_denoiser, timesteps
from maa.models.unet import UNet
from maa.models.unet import preset as unet_preset
from maa.models.vae import SpecVAE
from maa.models.vae import preset as vae_preset
from maa.parts.vocoders import NeuralVocoder

SECTIONS = ("generate", "diffusers", "train", "mel")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- models


def build_models(a, device):
    """A loaded pipeline model (the bundled one: text encoder, schedule) with random base-size parts."""

    size = "tiny" if a.tiny else "base"
    torch.manual_seed(0)
    base = load_model(None, device=str(device))
    unet = UNet(unet_preset(size, context_dim=base.text.dim)).to(device).eval()
    vae = SpecVAE(vae_preset(size)).to(device).eval()
    vcfg = BigVGANConfig(upsample_initial_channel=64, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),)) if a.tiny else BigVGANConfig()
    voc = NeuralVocoder(BigVGAN(vcfg).to(device), "bigvgan", {"kind": "bigvgan"}, torch.device(device), hop=256,
                        sample_rate=16000)
    model = dataclasses.replace(base, unet=unet, vae=vae, vocoder=voc)
    return model, {"unet": n_params(unet), "vae": n_params(vae), "vocoder": n_params(voc.model)}


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def modes(a, device) -> list[tuple[str, dict]]:
    cuda = torch.device(device).type == "cuda"
    out = [("eager fp32", dict(bf16=False, compile=False, cuda_graphs=False))]
    if cuda or a.cpu_fast:
        out += [("bf16", dict(bf16=True, compile=False, cuda_graphs=False)),
                ("bf16+compile+graphs", dict(bf16=True, compile=True, cuda_graphs=True))]
        if a.channels_last:
            out.append(("bf16+compile+graphs+NHWC", dict(bf16=True, compile=True, cuda_graphs=True, channels_last=True)))
    return out


# ----------------------------------------------------------------------------- rows


def bench_generate(a, device, rows):
    model, params = build_models(a, device)
    rows.append({"section": "models", **{f"{k} (M params)": round(v / 1e6, 2) for k, v in params.items()}})
    counter = iter(range(10**9))

    def call(batch):
        i = next(counter)  # new captions every call: the text encoder's cache never answers
        prompts = [f"a dog barks {i} {k}" for k in range(batch)]
        opts = GenerateOptions(steps=a.steps, guidance=a.guidance, duration=a.duration, batch_size=batch)
        return model(prompts, list(range(batch)), opts=opts)

    for name, flags in modes(a, device):
        fp = FastPath(**flags, max_length=model.text.max_length)
        accelerate(model, fp)
        try:
            t_first = timed(lambda: call(1), device)  # compile (and graph capture) for batch 1
            for _ in range(a.warmup):
                call(1)
            lat = [timed(lambda: call(1), device) for _ in range(a.calls)]
            rows.append({"section": "generate", "mode": name, "batch": 1, "latency_s": round(statistics.median(lat), 4),
                         "latency_min_s": round(min(lat), 4), "calls": a.calls, "first_call_s": round(t_first, 2),
                         "realtime_x": round(a.duration / statistics.median(lat), 1)})
            for b in a.batches:
                first = timed(lambda: call(b), device)
                ts = [timed(lambda: call(b), device) for _ in range(a.batch_calls)]
                t = statistics.median(ts)
                rows.append({"section": "generate", "mode": name, "batch": b, "seconds_per_call": round(t, 3),
                             "audio_s_per_s": round(b * a.duration / t, 1), "first_call_s": round(first, 2)})
            if fp.first_call_s:
                rows.append({"section": "generate", "mode": name, "compile_first_calls": fp.report()})
        finally:
            restore(model)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
            torch._dynamo.reset()


class _DiffusersAsMaa(torch.nn.Module):
    """diffusers' UNet behind maa's UNet call signature (x, t, context, mask) -> eps."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, context, mask=None):
        return self.net(x, t, encoder_hidden_states=context, return_dict=False)[0]


def diffusers_unet(a):
    try:
        from diffusers import UNet2DConditionModel  # noqa: PLC0415  optional dependency, imported where it is used
    except ImportError:
        return None
    c = (32, 64) if a.tiny else (320, 640)
    return UNet2DConditionModel(
        sample_size=(10, 78), in_channels=4, out_channels=4, block_out_channels=c, layers_per_block=a.tiny and 1 or 2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=64 if a.tiny else 1024, attention_head_dim=2 if a.tiny else 8,
        norm_num_groups=8 if a.tiny else 32, use_linear_projection=True)


def bench_diffusers(a, device, rows):
    dnet = diffusers_unet(a)
    if dnet is None:
        rows.append({"section": "diffusers", "skipped": "diffusers is not installed (pip install 'maa[bench]')"})
        return
    torch.manual_seed(0)
    ctx_dim = 64 if a.tiny else 1024
    ours = UNet(unet_preset("tiny" if a.tiny else "base", context_dim=ctx_dim,
                            **({"num_res_blocks": 1} if a.tiny else {}))).to(device).eval()
    theirs = _DiffusersAsMaa(dnet).to(device).eval()
    rows.append({"section": "models", "maa UNet, context 1024 (M params)": round(n_params(ours) / 1e6, 2),
                 "diffusers UNet (M params)": round(n_params(theirs) / 1e6, 2)})
    ac = alphas_cumprod(DiffusionConfig())
    ts = timesteps(a.steps, ac, "logsnr")
    h, w = 10, int(round(a.duration * 16000 / 256 / 8))

    def work(net, b):
        g = torch.Generator().manual_seed(0)
        x = torch.randn((b, 4, h, w), generator=g).to(device)
        cond = (torch.randn((b, 77, ctx_dim), generator=g).to(device), torch.ones(b, 77, dtype=torch.bool, device=device))
        unc = (torch.zeros_like(cond[0]), cond[1])
        eps = guided(model_denoiser(net, "eps", ac), cond, unc, a.guidance)
        with torch.no_grad():
            return SAMPLERS["dpm++"](eps, x, ts, ac)

    for name, flags in modes(a, device):
        if "NHWC" in name:
            continue
        res = {}
        for label, net in (("maa", ours), ("diffusers", theirs)):
            fp = FastPath(**flags)
            fast = FastUNet(net, fp, label, graphs=True) if fp.active else net
            for b in [1, *a.batches]:
                first = timed(lambda: work(fast, b), device)
                n = a.calls if b == 1 else a.batch_calls
                res[label, b] = statistics.median(timed(lambda: work(fast, b), device) for _ in range(n)), first
            if torch.device(device).type == "cuda":
                torch._dynamo.reset()
        for b in [1, *a.batches]:
            (tm, fm), (td, fd) = res["maa", b], res["diffusers", b]
            rows.append({"section": "diffusers", "mode": name, "batch": b, "steps": a.steps,
                         "maa_s": round(tm, 4), "diffusers_s": round(td, 4), "maa_over_diffusers": round(tm / td, 3),
                         "first_call_s": f"{fm:.1f} / {fd:.1f}"})


def bench_train(a, device, rows):
    cuda = torch.device(device).type == "cuda"
    size = "tiny" if a.tiny else "base"
    dcfg = DiffusionConfig()
    ac = alphas_cumprod(dcfg).to(device)
    frames = int(round(a.duration * 16000 / 256 / 8)) * 8
    for kind in ("ldm", "vae"):
        for compiled in ((False, True) if (cuda or a.cpu_fast) else (False,)):
            torch.manual_seed(0)
            if kind == "ldm":
                net = UNet(unet_preset(size, context_dim=384)).to(device).train()
                b = a.train_batch_ldm
                z = torch.randn(b, 4, 10, frames // 8, device=device)
                ctx = torch.randn(b, 77, 384, device=device)
                mask = torch.ones(b, 77, dtype=torch.bool, device=device)
                run = torch.compile(net) if compiled else net
                loss_fn = lambda: diffusion_loss(run, z, ctx, mask, dcfg, ac)
            else:
                net = SpecVAE(vae_preset(size)).to(device).train()
                b = a.train_batch_vae
                mel = torch.randn(b, 1, 80, frames, device=device) - 2.0
                run = torch.compile(net) if compiled else net

                def loss_fn():
                    rec, post = run(mel)
                    return (rec.float() - mel).abs().mean() + 1e-6 * post.kl().float().mean()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=cuda)

            def step():
                with autocast(device, cuda):
                    loss = loss_fn()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            first = timed(step, device)
            for _ in range(a.train_warmup):
                step()
            t = timed(lambda: [step() for _ in range(a.train_steps)], device) / a.train_steps
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
            rows.append({"section": "train", "model": f"{kind} {size}", "bf16": cuda, "compile": compiled, "batch": b,
                         "steps_per_s": round(1 / t, 2), "samples_per_s": round(b / t, 1),
                         "peak_mem_GiB": round(peak, 2), "first_step_s": round(first, 1)})
            net = opt = run = None  # drop the references (closures above read them) before the next model
            if cuda:
                torch.cuda.empty_cache()
                torch._dynamo.reset()


def bench_mel(a, device, rows):
    import librosa  # noqa: PLC0415  librosa: slow import, after the arguments are parsed (--help stays fast)

    n = a.mel_clips
    work = Path(tempfile.mkdtemp(prefix="bench_mel_"))
    clips = work / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(int(10 * 16000)) / 16000
    for i in range(n):  # tones in noise: decoding cost is what matters, not content
        y = 0.3 * np.sin(2 * np.pi * (200 + 10 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(clips / f"c{i:05d}.wav", y.astype(np.float32), 16000, subtype="PCM_16")
    files = sorted(clips.glob("*.wav"))

    def librosa_loop():
        out = work / "librosa"
        out.mkdir(exist_ok=True)
        fb = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
        for f in files:
            y, _ = librosa.load(f, sr=16000)
            y = np.pad(y, (384, 384), mode="reflect")
            mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, win_length=1024, center=False))
            np.save(out / f"{f.stem}.npy", np.log10(np.maximum(fb @ mag, 1e-5))[:, :-1].astype(np.float16))

    maa = Path(sys.executable).with_name("maa")
    cmd = [str(maa) if maa.exists() else sys.executable, *([] if maa.exists() else ["-m", "maa.commands.cli"]),
           "mel", str(clips), "-o", str(work / "maa"), "--device", str(device), "-q"]
    t_maa = timed(lambda: subprocess.run(cmd, check=True, capture_output=True), device)
    t_lib = timed(librosa_loop, device)
    rows.append({"section": "mel", "clips": n, "maa_mel_s": round(t_maa, 2), "librosa_loop_s": round(t_lib, 2),
                 "speedup": round(t_lib / t_maa, 1), "device": str(device), "clips_per_s": round(n / t_maa, 1)})


# ----------------------------------------------------------------------------- table


def print_table(rows, out=sys.stdout):
    by = {}
    for r in rows:
        by.setdefault(r["section"], []).append(r)
    for sec, rs in by.items():
        keys = [k for k in dict.fromkeys(k for r in rs for k in r) if k != "section"]
        print(f"\n[{sec}]", file=out)
        print("  " + " | ".join(keys), file=out)
        for r in rs:
            print("  " + " | ".join(str(r.get(k, "")) for k in keys), file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="tiny presets, few calls: a CPU smoke run")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--calls", type=int, default=None, help="batch-1 calls timed (default 20; --tiny 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls after the first (default 3; --tiny 0)")
    ap.add_argument("--batches", type=int, nargs="*", default=None, help="throughput batches (default 16 64; --tiny 2)")
    ap.add_argument("--batch-calls", type=int, default=None, help="timed calls per throughput batch (default 3; --tiny 1)")
    ap.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 20; --tiny 2)")
    ap.add_argument("--train-warmup", type=int, default=None)
    ap.add_argument("--train-batch-ldm", type=int, default=None, help="default 32 (--tiny 2)")
    ap.add_argument("--train-batch-vae", type=int, default=None, help="default 8 (--tiny 2)")
    ap.add_argument("--mel-clips", type=int, default=None, help="default 1000 (--tiny 8)")
    ap.add_argument("--channels-last", action="store_true", help="also the fast path with channels-last")
    ap.add_argument("--cpu-fast", action="store_true", help="the compile rows on a CPU too (autocast is CUDA-only: bf16 rows run fp32 there)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    t = a.tiny
    for k, full, tiny in (("calls", 20, 2), ("warmup", 3, 0), ("batch_calls", 3, 1), ("train_steps", 20, 2),
                          ("train_warmup", 3, 0), ("train_batch_ldm", 32, 2), ("train_batch_vae", 8, 2),
                          ("mel_clips", 1000, 8)):
        if getattr(a, k) is None:
            setattr(a, k, tiny if t else full)
    if a.batches is None:
        a.batches = [2] if t else [16, 64]
    if t and a.duration == 10.0:
        a.duration = 2.0  # the tiny presets at 2 s: every code path, seconds of CPU

    device = pick_device(a.device)
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise SystemExit(f"--sections: unknown {bad}; choose from {', '.join(SECTIONS)}")
    info = {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "tiny": t, "duration_s": a.duration, "steps": a.steps, "guidance": a.guidance}
    print(json.dumps(info), file=sys.stderr)
    rows: list[dict] = []
    for s in sections:
        t0 = time.perf_counter()
        {"generate": bench_generate, "diffusers": bench_diffusers, "train": bench_train, "mel": bench_mel}[s](a, device, rows)
        print(f"bench_gpu: {s} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
