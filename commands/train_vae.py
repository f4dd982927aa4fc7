"""`maa train-vae`: train (or evaluate) the spectrogram autoencoder on a mel manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands.common import friendly, info, progress_bar, warn

HELP = """Train the spectrogram VAE (Make-An-Audio's autoencoder with a multi-window discriminator).

Reads the manifest `maa mel` writes (rows with a `mel` path), trains on random fixed-length
crops and writes RUN/vae/ (config.json + vae.safetensors + disc.safetensors), which later
commands load by path, plus RUN/metrics.jsonl, RUN/val/step_*.png (inputs over their
reconstructions) and RUN/trainer_state.pt for --resume. The final metrics go to stdout as JSON.

Examples:

  maa train-vae data/mels/manifest.jsonl -o runs/demo --preset small --steps 3000 --batch-size 8

  maa train-vae train/manifest.jsonl --val valid/manifest.jsonl -o runs/vae --preset base --device cuda

  maa train-vae train/manifest.jsonl -o runs/vae --steps 200000 --resume    # continue an interrupted run

  torchrun --nproc-per-node 8 .venv/bin/maa train-vae train/manifest.jsonl -o runs/vae --preset base --device cuda

  maa train-vae valid/manifest.jsonl --eval-only --vae runs/vae/vae        # reconstruction error

  maa train-vae train/manifest.jsonl -o runs/vae-ft --init runs/vae/vae --decoder-only --disc-start 0   # sharper decoder, same latents
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Mel manifest written by `maa mel` (rows with a `mel` path)."),
    out_dir: Path = typer.Option(None, "-o", "--out-dir", help="Run folder (RUN/vae/ gets the model). Required unless --eval-only."),
    preset: str = typer.Option(None, "--preset", "-p", help="Model size: tiny (tests, 0.25 M), small (2.9 M, the default), base (the paper's, 69 M). --resume keeps the run's own."),
    steps: int = typer.Option(20000, "--steps", min=1, help="Total optimizer steps (counting steps done before --resume)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Mels per step (per GPU under torchrun)."),
    lr: float = typer.Option(1.5e-4, "--lr", help="AdamW learning rate of both the VAE and the discriminator (betas 0.5, 0.9)."),
    frames: int = typer.Option(624, "--frames", help="Crop length in frames (multiple of 8; 624 = 10 s). Shorter mels are tiled."),
    val: str = typer.Option(None, "--val", help="Held-out mel manifest for validation. Default: hold out --val-fraction of MANIFEST."),
    val_fraction: float = typer.Option(0.05, "--val-fraction", help="Share of MANIFEST held out when --val is not given (0 to disable)."),
    kl_weight: float = typer.Option(1e-6, "--kl-weight", help="KL weight (the paper's 1e-6, relative to the L1 summed over pixels)."),
    disc_weight: float = typer.Option(0.5, "--disc-weight", help="Adversarial weight (0 turns the GAN off)."),
    disc_start: int = typer.Option(None, "--disc-start", help="Step at which the discriminator switches on. Default: half of --steps (the paper: 50001)."),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive", help="Latent-diffusion adaptive weight for the adversarial term."),
    fm_weight: float = typer.Option(0.0, "--fm-weight", help="Discriminator feature-matching weight (0: off)."),
    windows: str = typer.Option("32,64,128", "--windows", help="Discriminator window lengths in frames."),
    disc_channels: int = typer.Option(None, "--disc-channels", help="Discriminator width. Default: 128 for base, 32 for tiny, 64 otherwise."),
    ema: float = typer.Option(None, "--ema", help="EMA decay of the exported weights, e.g. 0.999 (default: off)."),
    warmup: int = typer.Option(0, "--warmup", help="Linear learning-rate warm-up steps."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient-norm clip (0: off)."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", min=1, help="Checkpoint every N steps (and at the end)."),
    val_every: int = typer.Option(500, "--val-every", min=1, help="Validate (held-out L1 + PNG) every N steps."),
    log_every: int = typer.Option(50, "--log-every", min=1, help="Write averaged losses to metrics.jsonl every N steps."),
    init: Path = typer.Option(None, "--init", help="Start from this trained VAE folder (RUN/vae: its architecture, weights and discriminator) instead of random weights."),
    decoder_only: bool = typer.Option(False, "--decoder-only", help="Train only the decoder (with --init): the latents stay the same, so an LDM trained on them stays valid."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/trainer_state.pt (exactly: same losses as an uninterrupted run)."),
    eval_only: bool = typer.Option(False, "--eval-only", help="Only report the reconstruction error of --vae on MANIFEST (JSON on stdout)."),
    vae_dir: Path = typer.Option(None, "--vae", help="Model folder for --eval-only (default RUN/vae)."),
    per_clip: bool = typer.Option(False, "--per-clip", help="With --eval-only: also one JSON line per clip."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ... (under torchrun each process takes its LOCAL_RANK GPU)."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast on CUDA (ignored on CPU)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Data loader processes."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    import torch

    from maa.core.errors import MaaError

    if threads:
        torch.set_num_threads(threads)
    if eval_only:
        return _eval(manifest, vae_dir or (out_dir / "vae" if out_dir else None), device, batch_size, per_clip, quiet)
    if out_dir is None:
        raise MaaError("train-vae: -o RUN is required (the run folder); or pass --eval-only --vae DIR")
    if frames % 8:
        raise MaaError(f"--frames {frames}: must be a multiple of 8 (the VAE downsamples time by 8)")

    from maa.core.checkpoint import load_weights, num_params, read_config
    from maa.core.manifest import split_holdout
    from maa.data.mels import MelCrops, band_means, mel_rows
    from maa.models.vae import SpecVAE, VAEConfig
    from maa.models.vae import preset as get_preset
    from maa.train.discriminators import DiscConfig, MultiWindowDiscriminator
    from maa.train.loop import (
        STATE_FILE,
        TrainConfig,
        dist_info,
        seed_everything,
        train,
    )
    from maa.train.vae import VAELossConfig, VAETask

    try:
        win = tuple(int(w) for w in windows.split(","))
    except ValueError:
        raise MaaError(f"--windows {windows!r}: want frame counts separated by commas, e.g. 32,64,128") from None
    rows = mel_rows(manifest)
    if val:
        val_rows = mel_rows(val)
    else:
        rows, val_rows = split_holdout(rows, val_fraction)
    cache = (len(rows) + len(val_rows)) * 80 * frames * 2 < 2 * 1024**3  # keep mels in RAM below ~2 GB

    vae_cfg = get_preset(preset or "small")
    disc_cfg = DiscConfig(windows=win, channels=disc_channels or {"base": 128, "tiny": 32}.get(preset or "small", 64))
    if decoder_only and not init:
        raise MaaError("--decoder-only: pass --init DIR, the trained VAE whose decoder to fine-tune")
    if init:
        if not (init / "config.json").exists() or not (init / "vae.safetensors").exists():
            raise MaaError(f"--init {init}: not a VAE folder (config.json + vae.safetensors from `maa train-vae`)")
        saved = read_config(init)
        if "vae" not in saved:
            raise MaaError(f"--init {init}: config.json has no 'vae' section; pass the vae/ folder of a run")
        vae_cfg = VAEConfig.from_dict(saved["vae"])
        if "disc" in saved:
            disc_cfg = DiscConfig.from_dict(saved["disc"])
    resuming = resume and (out_dir / STATE_FILE).exists()
    if not resume and (out_dir / STATE_FILE).exists():
        raise MaaError(f"{out_dir}: already holds a training run; pass --resume to continue it, or choose another -o")
    if resuming and (out_dir / "vae" / "config.json").exists():
        saved = read_config(out_dir / "vae")  # the run's own architecture wins over --preset
        vae_cfg = VAEConfig.from_dict(saved["vae"])
        if preset and vae_cfg != get_preset(preset):
            warn(f"{out_dir / 'vae' / 'config.json'}: resuming with the run's own architecture, not --preset {preset}")
        disc_cfg = DiscConfig.from_dict(saved["disc"])
    loss = VAELossConfig(kl_weight=kl_weight, disc_weight=disc_weight, adaptive=adaptive, fm_weight=fm_weight,
                         disc_start=steps // 2 if disc_start is None else disc_start)
    if disc_weight <= 0:
        loss.disc_start = 10**12

    seed_everything(seed)
    train_set = MelCrops(rows, frames=frames, cache=cache)
    val_set = MelCrops(val_rows, frames=frames, cache=cache) if val_rows else None
    bm = band_means(MelCrops(rows[:: max(1, len(rows) // 500)], frames=frames, cache=False))  # a spread sample
    vae_model, disc_model = SpecVAE(vae_cfg), MultiWindowDiscriminator(disc_cfg)
    if init and not resuming:
        load_weights(init, {"vae": vae_model})
        if (init / "disc.safetensors").exists():
            load_weights(init, {"disc": disc_model})
    task = VAETask(vae_model, disc_model, loss, frames, band_mean=bm, decoder_only=decoder_only)
    d = dist_info()
    if d.main:
        info(f"train-vae: {len(rows)} training mels, {len(val_rows)} held out; VAE {num_params(task.vae) / 1e6:.2f} M "
             f"parameters, discriminator {num_params(task.disc) / 1e6:.2f} M; GAN from step {loss.disc_start}")
    cfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=batch_size, lr=lr, grad_clip=grad_clip or None,
                      ema_decay=ema, ckpt_every=ckpt_every, val_every=val_every, log_every=log_every, seed=seed,
                      device=device, bf16=bf16, num_workers=workers, warmup_steps=warmup, quiet=quiet)
    final = train(task, train_set, val_set, cfg, resume=resume)
    if d.main:
        msg = f"train-vae: step {final['step']}, model in {out_dir / 'vae'}"
        if "val_mel_l1" in final:
            msg += f"; held-out mel L1 {final['val_mel_l1']:.3f} (per-band mean: {final.get('val_band_mean_l1', float('nan')):.3f})"
        info(msg)
        sys.stdout.write(json.dumps({k: v for k, v in final.items() if k != "kind"}) + "\n")


def _eval(manifest: str, vae_dir: Path | None, device: str, batch_size: int, per_clip: bool, quiet: bool):
    from maa.core.errors import MaaError
    from maa.data.mels import FullMels, mel_rows
    from maa.models.vae import load_vae
    from maa.train.loop import resolve_device
    from maa.train.vae import evaluate

    if vae_dir is None:
        raise MaaError("--eval-only: pass the model folder with --vae DIR (or -o RUN to use RUN/vae)")
    dev = resolve_device(device)
    vae = load_vae(vae_dir, dev)
    rows = mel_rows(manifest)
    with progress_bar(len(rows), "eval", disable=quiet) as bar:
        res = evaluate(vae, FullMels(rows), dev, batch_size=batch_size, progress=bar.update)
    if per_clip:
        for r in res["per_clip"]:
            sys.stdout.write(json.dumps(r) + "\n")
    summary = {k: v for k, v in res.items() if k != "per_clip"}
    summary["vae"] = str(vae_dir)
    info(f"eval: {summary['clips']} clips, mel L1 {summary['mel_l1']:.4f} "
         f"(per-band mean of the same clips: {summary['band_mean_l1']:.4f})")
    sys.stdout.write(json.dumps(summary) + "\n")
