"""`maa train-clap`: train maa-clap, the small audio-text similarity model."""

from __future__ import annotations

import typer
from maa.commands import options as opt
from maa.commands.common import emit, friendly, reporter

HELP = """Train maa-clap, the small audio-text model behind caption, generate -n and eval's CLAP score.

An audio CNN over our log-mels and a trainable projection of the frozen MiniLM sentence
embedding, trained with symmetric InfoNCE and a learned temperature. Texts are each clip's
caption and phrasings of its labels ("the sound of dog"). Reads a manifest with `audio`
(or `mel` from `maa mel`) plus `caption` and/or `labels`; writes RUN/clap/ (config.json +
model.safetensors), RUN/metrics.jsonl and RUN/trainer_state.pt (a RUN that holds a checkpoint
needs --resume to continue or --fresh to start over; --init RUN starts from a trained maa-clap,
its architecture and text encoder). At the end it
measures zero-shot accuracy and caption->audio R@1/R@5 on the validation clips and prints
them with the final losses as JSON on stdout.

Examples:

  maa train-clap data/demo/train.jsonl --val data/demo/valid.jsonl -o runs/clap --steps 600

  maa train-clap train.jsonl -o runs/clap --steps 20000 --batch-size 128 --device cuda

  maa train-clap train.jsonl -o runs/clap --steps 20000 --resume      # continue an interrupted run

  maa caption clips.jsonl -o captioned.jsonl --scorer maa-clap:runs/clap/clap --bank train.jsonl
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Manifest (JSONL, CSV, TSV, folder, or - for stdin) with audio or mel paths and captions and/or labels."),
    out_dir: opt.RunDir = ...,
    val: opt.Val = None,
    val_fraction: opt.ValFraction = 0.1,
    steps: opt.Steps = 1000,
    batch_size: opt.BatchSize = 32,
    lr: opt.Lr = 1e-3,
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    warmup: opt.Warmup = 50,
    cosine: bool = typer.Option(True, "--cosine/--constant-lr", help="Cosine decay of the learning rate to 5% over --steps."),
    frames: int = typer.Option(192, "--frames", min=16, help="Training crop in mel frames (192 = ~3 s); shorter clips are tiled."),
    channels: str = typer.Option("32,64,128,256", "--channels", help="Audio CNN widths, one 3x3 conv + 2x2 pool each."),
    embed_dim: int = typer.Option(256, "--embed-dim", min=8, help="Joint audio-text embedding size."),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="Frozen text encoder spec (maa.parts.text): minilm or hf:PATH."),
    ema: opt.Ema = 0.0,
    grad_clip: opt.GradClip = 1.0,
    ckpt_every: opt.CkptEvery = 500,
    val_every: opt.ValEvery = 200,
    log_every: opt.LogEvery = 25,
    init: opt.Init = None,
    resume: opt.Resume = False,
    fresh: opt.Fresh = False,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    bf16: opt.Bf16 = True,
    workers: opt.Workers = 0,
    threads: opt.Threads = 0,
    quiet: opt.Quiet = False,
):
    """`maa train-clap`: train the small audio-text model behind caption, `generate -n` and eval."""
    options = dict(locals())  # the parameter names are the option fields
    from maa.train.clap import ClapTrainOptions, train_clap

    emit(train_clap(ClapTrainOptions(**options), reporter(quiet)))
