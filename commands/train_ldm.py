"""`maa train-ldm`: train the text-conditioned latent diffusion model on a manifest."""

from __future__ import annotations

from pathlib import Path

import typer
from maa.commands import options as opt
from maa.commands.common import emit, friendly, reporter

HELP = """Train the text-conditioned latent diffusion UNet on top of a trained VAE.

Reads a manifest whose rows have a caption (or labels) and a `mel` (from `maa mel`) or an
`audio` path; trains on random crops of --duration seconds; writes RUN/ldm/ (config.json +
unet.safetensors, the EMA weights) and copies the VAE to RUN/vae/, so RUN is a model folder
for `maa generate --model RUN`. Also RUN/metrics.jsonl and RUN/trainer_state.pt. A RUN that
holds a checkpoint needs --resume (continue exactly) or --fresh (start over).
The latent scale factor (1 / std of the training latents) is measured at the start and stored.
--init takes a trained LDM (a model folder such as maa/assets/model, or a RUN): its UNet shape,
weights and latent scale (--preset/--channels/--prediction are then ignored); its vocoder/ and
clap/ are copied to RUN.

Examples:

  maa train-ldm data/mels/manifest.jsonl --vae runs/demo/vae -o runs/demo --preset tiny --duration 4 --cache-latents

  maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --cache-latents --reprogram-prob 0.3

  maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --steps 100000 --resume

  # fine-tune the bundled model on your own captioned clips (its VAE, its text encoder)
  maa train-ldm my_mels.jsonl --vae maa/assets/model/vae --init maa/assets/model -o runs/mine --steps 2000

  # a LoRA adapter instead (base frozen and read-only; a few MB): use it with generate --lora runs/mine
  maa train-ldm my_mels.jsonl --init maa/assets/model -o runs/mine --lora 8 --lr 1e-3 --ema 0 --steps 300

  torchrun --nproc-per-node 8 .venv/bin/maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --preset base --device cuda
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Manifest with captions/labels and `mel` (from `maa mel`) or `audio` paths."),
    vae_dir: Path = typer.Option(None, "--vae", help="VAE folder written by `maa train-vae` (RUN/vae). Default with --init: that model's vae/."),
    out_dir: opt.RunDir = ...,
    preset: str = typer.Option("small", "--preset", "-p", help="UNet size: tiny (tests), small (CPU, ~15 M), base (the paper's, 320 channels)."),
    channels: int = typer.Option(0, "--channels", min=0, help="Base width of the UNet, overriding the preset's (0: the preset's)."),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="minilm (offline, 384-d), laion-clap:CKPT, hf:PATH or openclip:MODEL/WEIGHTS (one normalised CLIP token: the model then also takes --image/--video at generation)."),
    prediction: str = typer.Option("eps", "--prediction", help="What the UNet predicts: eps (the paper's) or v."),
    steps: opt.Steps = 20000,
    batch_size: opt.BatchSize = 16,
    lr: opt.Lr = 1e-4,
    warmup: opt.Warmup = 0,
    duration: float = typer.Option(10.0, "--duration", "-d", help="Training crop in seconds, rounded to whole latent frames (10 s = 624 mel frames)."),
    cond_drop: float = typer.Option(0.1, "--cond-drop", help="Share of captions replaced by \"\" (for classifier-free guidance)."),
    reprogram_prob: float = typer.Option(0.0, "--reprogram-prob", help="Share of examples replaced by fresh compositions of 2-3 training clips (dynamic reprogramming)."),
    reprogram_pool: str = typer.Option(None, "--reprogram-pool", help="Draw the --reprogram-prob share from these compositions (`maa reprogram`, then `maa mel`) instead of composing at every step."),
    cache_latents: bool = typer.Option(False, "--cache-latents", help="Encode every clip with the VAE once (kept in RUN/cache/ for reruns) instead of at every step."),
    val: opt.Val = None,
    val_fraction: opt.ValFraction = 0.05,
    ema: opt.Ema = 0.999,
    grad_clip: opt.GradClip = 1.0,
    ckpt_every: opt.CkptEvery = 1000,
    val_every: opt.ValEvery = 500,
    log_every: opt.LogEvery = 50,
    init: opt.Init = None,
    resume: opt.Resume = False,
    fresh: opt.Fresh = False,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    bf16: opt.Bf16 = True,
    grad_checkpoint: bool = typer.Option(False, "--grad-checkpoint", help="Recompute activations in backward (less GPU memory)."),
    lora: int = typer.Option(None, "--lora", help="Train only a LoRA adapter of this rank (e.g. 8) on the frozen --init model; writes RUN/lora/ (lora.safetensors + lora.json)."),
    lora_alpha: float = typer.Option(None, "--lora-alpha", help="LoRA alpha: the adapter's output is scaled by alpha / rank (default: the rank)."),
    lora_targets: str = typer.Option(None, "--lora-targets", help="Layers the adapter changes: a comma list of attn (attention q/k/v/out), ff (feed-forward), conv (residual 3x3 convs). Default: attn,ff."),
    workers: opt.Workers = 0,
    threads: opt.Threads = 0,
    quiet: opt.Quiet = False,
):
    """`maa train-ldm`: train the text-conditioned latent diffusion UNet."""
    options = dict(locals())  # the parameter names are the option fields
    from maa.core.errors import MaaError

    if lora is not None:  # an adapter on the frozen --init model (maa.train.lora)
        from maa.train.lora import LoRATrainOptions, train_lora

        return emit(train_lora(LoRATrainOptions(**options), reporter(quiet)))
    if lora_alpha is not None or lora_targets is not None:
        raise MaaError("--lora-alpha/--lora-targets: only with --lora RANK (e.g. --lora 8)")
    from maa.train.ldm import LDMTrainOptions, train_ldm

    for k in ("lora", "lora_alpha", "lora_targets"):
        del options[k]
    if text_encoder.startswith("openclip:"):  # local paths absolute: the model folder works from anywhere
        from maa.parts.openclip import absolute_spec

        options["text_encoder"] = absolute_spec(text_encoder)

    emit(train_ldm(LDMTrainOptions(**options), reporter(quiet)))
