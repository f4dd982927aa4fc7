"""`maa train-vocoder`: a neural vocoder (mel -> waveform) for maa's 80-bin, 16 kHz mels."""

from __future__ import annotations

from pathlib import Path

import typer
from maa.commands.common import friendly, info

HELP = """Train a neural vocoder (Vocos-style ConvNeXt + iSTFT generator, multi-period and
multi-resolution discriminators) on the audio of a manifest. Mels are computed on the fly
from random crops, so no `maa mel` step is needed.

Writes RUN/vocoder/ (config.json + generator.safetensors, plus the discriminators),
RUN/metrics.jsonl and RUN/trainer_state.pt; rerunning the same command resumes.
`maa generate` uses RUN/vocoder/ when it lies in the model folder.

Examples:

  maa train-vocoder data/demo/train.jsonl -o runs/vocoder --valid data/demo/valid.jsonl

  maa train-vocoder clips/ -o runs/voc --preset tiny --steps 200        # a smoke test

  maa train-vocoder train.jsonl -o runs/voc --steps 200000 --batch-size 16 --device cuda

  torchrun --nproc_per_node 4 -m maa.commands.cli train-vocoder train.jsonl -o runs/voc --device cuda
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Training audio: manifest (JSONL/CSV/TSV), folder of audio, or - for JSONL on stdin."),
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Run folder (RUN): weights land in RUN/vocoder/."),
    valid: str = typer.Option(None, "--valid", help="Validation manifest (default: the last 5% of the training rows, at most 32)."),
    preset: str = typer.Option("small", "--preset", help="Model size: small (bundled, ~3.6 M parameters) or tiny (tests)."),
    steps: int = typer.Option(20000, "--steps", min=1, help="Optimizer steps in total (a resumed run continues up to this)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Crops per step (per GPU under torchrun)."),
    segment_frames: int = typer.Option(None, "--segment-frames", min=4, help="Mel frames per crop (default: the preset's; 32 frames = 0.51 s)."),
    lr: float = typer.Option(2e-4, "--lr", help="AdamW learning rate of generator and discriminators."),
    lr_half_life: int = typer.Option(0, "--lr-half-life", min=0, help="Halve the learning rate every this many steps (0: constant)."),
    disc_start: int = typer.Option(None, "--disc-start", min=0, help="Steps of reconstruction-only training before the GAN losses start (default: a third of --steps)."),
    refine: int = typer.Option(8, "--refine", min=0, help="mel_refine iterations the saved config asks for at inference (0: the raw network output)."),
    grad_clip: float = typer.Option(100.0, "--grad-clip", help="Gradient-norm clip; 0 turns it off."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", min=1),
    val_every: int = typer.Option(500, "--val-every", min=1),
    log_every: int = typer.Option(50, "--log-every", min=1),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Data-loading processes."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default). On a busy machine 1 is often fastest."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming RUN/trainer_state.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    from maa.core.checkpoint import num_params as num_parameters
    from maa.core.errors import MaaError
    from maa.core.manifest import read_manifest
    from maa.models.vocos import preset as get_preset
    from maa.train.loop import TrainConfig, train
    from maa.train.vocoder import AudioSegments, VocoderTask

    if threads:
        import torch

        torch.set_num_threads(threads)
    overrides = {"disc_start": disc_start if disc_start is not None else steps // 3, "lr_half_life": lr_half_life, "refine": refine}
    if segment_frames is not None:
        overrides["segment_frames"] = segment_frames
    cfg = get_preset(preset, **overrides)

    rows = read_manifest(manifest)
    if valid:
        val_rows = read_manifest(valid)
    else:
        n_val = min(32, max(1, len(rows) // 20)) if len(rows) > 1 else 0
        rows, val_rows = rows[:len(rows) - n_val], rows[len(rows) - n_val:]
    if not rows:
        raise MaaError(f"{manifest}: no training clips")
    info(f"train-vocoder: decoding {len(rows)} training and {len(val_rows)} validation clips")
    train_set = AudioSegments(rows, cfg.segment_frames)
    # validation crops are 4x longer: a steadier figure, still cheap
    val_set = AudioSegments(val_rows, cfg.segment_frames * 4, gain=False) if val_rows else None

    task = VocoderTask(cfg)
    info(f"train-vocoder: preset {preset}, generator {num_parameters(task.gen) / 1e6:.2f} M parameters, "
         f"GAN from step {cfg.disc_start}; writing {out_dir / 'vocoder'}")
    tcfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=batch_size, lr=lr,
                       grad_clip=grad_clip if grad_clip > 0 else None, ckpt_every=ckpt_every, val_every=val_every,
                       log_every=log_every, seed=seed, device=device, num_workers=workers, quiet=quiet,
                       max_val_batches=4)
    final = train(task, train_set, val_set, tcfg, resume=not fresh)
    shown = {k: round(v, 4) for k, v in final.items() if isinstance(v, float) and k in
             ("mel_l1", "stft", "val_mel_l1", "val_mr_stft")}
    info(f"train-vocoder: done at step {final.get('step')}; {shown}; weights in {out_dir / 'vocoder'}")
