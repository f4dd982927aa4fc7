"""`maa train-vocoder`: a neural vocoder (mel -> waveform) for maa's 80-bin, 16 kHz mels."""

from __future__ import annotations

import typer
from maa.commands import options as opt
from maa.commands.common import emit, friendly, reporter

HELP = """Train a neural vocoder (Vocos-style ConvNeXt + iSTFT generator, multi-period and
multi-resolution discriminators) on the audio of a manifest. Mels are computed on the fly
from random crops, so no `maa mel` step is needed.

Writes RUN/vocoder/ (config.json + generator.safetensors, plus the discriminators),
RUN/metrics.jsonl and RUN/trainer_state.pt; a RUN that holds a checkpoint needs --resume
(continue exactly, with the run's own settings) or --fresh (start over). --init starts from a
trained vocoder folder (its architecture and weights). The final metrics go to stdout as JSON.
`maa generate` uses RUN/vocoder/ when it lies in the model folder.

Examples:

  maa train-vocoder data/demo/train.jsonl -o runs/vocoder --val data/demo/valid.jsonl

  maa train-vocoder clips/ -o runs/voc --preset tiny --steps 200        # a smoke test

  maa train-vocoder train.jsonl -o runs/voc --steps 200000 --batch-size 16 --device cuda

  maa train-vocoder train.jsonl -o runs/voc --steps 400000 --resume      # continue a run

  torchrun --nproc_per_node 4 -m maa.commands.cli train-vocoder train.jsonl -o runs/voc --device cuda
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Training audio: manifest (JSONL/CSV/TSV), folder of audio, or - for JSONL on stdin."),
    out_dir: opt.RunDir = ...,
    val: opt.Val = None,
    valid: opt.ValidAlias = None,
    preset: str = typer.Option("small", "--preset", help="Model size: small (bundled, ~3.6 M parameters) or tiny (tests)."),
    steps: opt.Steps = 20000,
    batch_size: opt.BatchSize = 8,
    segment_frames: int = typer.Option(None, "--segment-frames", min=4, help="Mel frames per crop (default: the preset's; 32 frames = 0.51 s)."),
    lr: opt.Lr = 2e-4,
    lr_half_life: int = typer.Option(0, "--lr-half-life", min=0, help="Halve the learning rate every this many steps (0: constant)."),
    disc_start: int = typer.Option(None, "--disc-start", min=0, help="Steps of reconstruction-only training before the GAN losses start (default: a third of --steps)."),
    refine: int = typer.Option(8, "--refine", min=0, help="mel_refine iterations the saved config asks for at inference (0: the raw network output)."),
    grad_clip: opt.GradClip = 100.0,
    ckpt_every: opt.CkptEvery = 1000,
    val_every: opt.ValEvery = 500,
    log_every: opt.LogEvery = 50,
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
    """`maa train-vocoder`: train the Vocos-style neural vocoder."""
    options = dict(locals())  # the parameter names are the option fields
    from maa.train.vocoder import VocoderTrainOptions, train_vocoder

    valid = options.pop("valid")
    options["val"] = val or valid  # the old name --valid still works
    emit(train_vocoder(VocoderTrainOptions(**options), reporter(quiet)))
