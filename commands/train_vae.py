"""`maa train-vae`: train (or evaluate) the spectrogram autoencoder on a mel manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands import options as opt
from maa.commands.common import emit, friendly, reporter

from maa.core.device import apply_threads
from maa.core.errors import MaaError

HELP = """Train the spectrogram VAE (Make-An-Audio's autoencoder with a multi-window discriminator).

Reads the manifest `maa mel` writes (rows with a `mel` path), trains on random fixed-length
crops and writes RUN/vae/ (config.json + vae.safetensors + disc.safetensors), which later
commands load by path, plus RUN/metrics.jsonl, RUN/val/step_*.png (inputs over their
reconstructions) and RUN/trainer_state.pt. A RUN that holds a checkpoint needs --resume (continue
exactly) or --fresh (start over). The final metrics go to stdout as JSON.

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
    steps: opt.Steps = 20000,
    batch_size: opt.BatchSize = 8,
    lr: opt.Lr = 1.5e-4,
    frames: int = typer.Option(624, "--frames", help="Crop length in frames (multiple of 8; 624 = 10 s). Shorter mels are tiled."),
    val: opt.Val = None,
    val_fraction: opt.ValFraction = 0.05,
    kl_weight: float = typer.Option(1e-6, "--kl-weight", help="KL weight (the paper's 1e-6, relative to the L1 summed over pixels)."),
    disc_weight: float = typer.Option(0.5, "--disc-weight", help="Adversarial weight (0 turns the GAN off)."),
    disc_start: int = typer.Option(None, "--disc-start", help="Step at which the discriminator switches on. Default: half of --steps (the paper: 50001)."),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive", help="Latent-diffusion adaptive weight for the adversarial term."),
    fm_weight: float = typer.Option(0.0, "--fm-weight", help="Discriminator feature-matching weight (0: off)."),
    windows: str = typer.Option("32,64,128", "--windows", help="Discriminator window lengths in frames."),
    disc_channels: int = typer.Option(None, "--disc-channels", help="Discriminator width. Default: 128 for base, 32 for tiny, 64 otherwise."),
    ema: opt.Ema = 0.0,
    warmup: opt.Warmup = 0,
    grad_clip: opt.GradClip = 1.0,
    ckpt_every: opt.CkptEvery = 1000,
    val_every: opt.ValEvery = 500,
    log_every: opt.LogEvery = 50,
    init: opt.Init = None,
    decoder_only: bool = typer.Option(False, "--decoder-only", help="Train only the decoder (with --init RUN/vae): the latents stay the same, so an LDM trained on them stays valid."),
    resume: opt.Resume = False,
    fresh: opt.Fresh = False,
    eval_only: bool = typer.Option(False, "--eval-only", help="Only report the reconstruction error of --vae on MANIFEST (JSON on stdout)."),
    vae_dir: Path = typer.Option(None, "--vae", help="Model folder for --eval-only (default RUN/vae)."),
    per_clip: bool = typer.Option(False, "--per-clip", help="With --eval-only: also one JSON line per clip."),
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    bf16: opt.Bf16 = True,
    workers: opt.Workers = 0,
    threads: opt.Threads = 0,
    quiet: opt.Quiet = False,
):
    """`maa train-vae`: train the spectrogram autoencoder (or, with --eval-only, measure one)."""
    options = dict(locals())  # the parameter names are the option fields
    from maa.train.vae import VAETrainOptions, eval_vae, train_vae

    if eval_only:
        apply_threads(threads)
        res = eval_vae(manifest, vae_dir or (out_dir / "vae" if out_dir else None), device, batch_size, reporter(quiet), quiet)
        for r in res.pop("per_clip") if per_clip else ():
            sys.stdout.write(json.dumps(r) + "\n")
        return emit({k: v for k, v in res.items() if k != "per_clip"})
    if out_dir is None:
        raise MaaError("train-vae: -o RUN is required (the run folder); or pass --eval-only --vae DIR")
    for k in ("eval_only", "vae_dir", "per_clip"):
        options.pop(k)
    emit(train_vae(VAETrainOptions(**options), reporter(quiet)))
