"""`maa train-clap`: train maa-clap, the small audio-text similarity model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands.common import friendly, info, progress_bar

HELP = """Train maa-clap, the small audio-text model behind caption, generate -n and eval's CLAP score.

An audio CNN over our log-mels and a trainable projection of the frozen MiniLM sentence
embedding, trained with symmetric InfoNCE and a learned temperature. Texts are each clip's
caption and phrasings of its labels ("the sound of dog"). Reads a manifest with `audio`
(or `mel` from `maa mel`) plus `caption` and/or `labels`; writes RUN/clap/ (config.json +
model.safetensors), RUN/metrics.jsonl and RUN/trainer_state.pt for --resume. At the end it
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
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Run folder; the model lands in RUN/clap/."),
    val: str = typer.Option(None, "--val", help="Held-out manifest. Default: hold out --val-fraction of MANIFEST."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of MANIFEST held out when --val is not given (0: none)."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Total optimizer steps (counting steps done before --resume)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=2, help="Clips per step (per GPU under torchrun); the in-batch negatives."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    warmup: int = typer.Option(50, "--warmup", help="Linear learning-rate warm-up steps."),
    cosine: bool = typer.Option(True, "--cosine/--constant-lr", help="Cosine decay of the learning rate to 5% over --steps."),
    frames: int = typer.Option(192, "--frames", min=16, help="Training crop in mel frames (192 = ~3 s); shorter clips are tiled."),
    channels: str = typer.Option("32,64,128,256", "--channels", help="Audio CNN widths, one 3x3 conv + 2x2 pool each."),
    embed_dim: int = typer.Option(256, "--embed-dim", min=8, help="Joint audio-text embedding size."),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="Frozen text encoder spec (maa.models.text): minilm or hf:PATH."),
    ema: float = typer.Option(None, "--ema", help="EMA decay of the exported weights, e.g. 0.999 (default: off)."),
    ckpt_every: int = typer.Option(500, "--ckpt-every", min=1),
    val_every: int = typer.Option(200, "--val-every", min=1),
    log_every: int = typer.Option(25, "--log-every", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/trainer_state.pt."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ... (under torchrun each process takes its LOCAL_RANK GPU)."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast on CUDA (ignored on CPU)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Data loader processes."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    import torch

    from maa.core.checkpoint import num_params, read_config
    from maa.core.errors import MaaError
    from maa.core.manifest import read_manifest, split_holdout
    from maa.infer.scoring import MaaClapScorer
    from maa.models.clap import ClapConfig, MaaClap
    from maa.models.text import load_text_encoder
    from maa.train.clap import (
        ClapTask,
        PairedClips,
        all_texts,
        class_names,
        embed_texts,
        load_mels,
        measure,
        row_group,
    )
    from maa.train.loop import (
        STATE_FILE,
        TrainConfig,
        dist_info,
        resolve_device,
        seed_everything,
        train,
    )

    if threads:
        torch.set_num_threads(threads)
    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise MaaError(f"--channels {channels!r}: want widths separated by commas, e.g. 32,64,128,256") from None
    shortest = ClapConfig().time_pool * 2 ** len(widths)  # the input pool and one 2x pool per CNN stage
    if frames < shortest:
        raise MaaError(f"--frames {frames}: too short for {len(widths)} pooling stages; use at least {shortest}")

    rows = [r for r in read_manifest(manifest) if r.get("caption") or r.get("labels")]
    if not rows:
        raise MaaError(f"{manifest}: no clip has a caption or labels; maa-clap learns from text paired with audio")
    if val:
        val_rows = [r for r in read_manifest(val) if r.get("caption") or r.get("labels")]
    else:
        rows, val_rows = split_holdout(rows, val_fraction, min_rows=10)

    cfg = ClapConfig(channels=widths, embed_dim=embed_dim, text_encoder=text_encoder, crop_frames=frames)
    if resume and (out_dir / STATE_FILE).exists() and (out_dir / "clap" / "config.json").exists():
        cfg = ClapConfig.from_dict(read_config(out_dir / "clap")["model"])  # the run's own architecture wins
        frames = cfg.crop_frames
    main_rank = dist_info().main
    dev = str(resolve_device(device))

    encoder = load_text_encoder(cfg.text_encoder, device=dev)
    if encoder.dim != cfg.text_dim:
        cfg.text_dim = encoder.dim
    with progress_bar(len(rows) + len(val_rows), "read clips", disable=quiet or not main_rank) as bar:
        mels = load_mels(rows, bar.update)
        val_mels = load_mels(val_rows, bar.update)
    texts = all_texts(rows + val_rows)
    table = embed_texts(encoder, texts)
    groups = {g: i for i, g in enumerate(dict.fromkeys(row_group(r) for r in rows + val_rows))}
    train_set = PairedClips(rows, mels, table, frames, groups, augment=True)
    val_set = PairedClips(val_rows, val_mels, table, frames, groups, augment=False) if val_rows else None

    seed_everything(seed)
    model = MaaClap(cfg)
    classes = class_names(rows)
    task = ClapTask(model, classes, cosine=cosine)
    if main_rank:
        info(f"maa-clap: {num_params(model) / 1e6:.2f} M trainable parameters; {len(rows)} training clips, "
             f"{len(val_rows)} held out, {len(texts)} distinct texts, {len(classes)} classes")
    tcfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                       ema_decay=ema, ckpt_every=ckpt_every, val_every=val_every, log_every=log_every, seed=seed,
                       device=device, bf16=bf16, num_workers=workers, warmup_steps=warmup, quiet=quiet,
                       max_val_batches=max(1, -(-len(val_rows) // batch_size)))
    final = train(task, train_set, val_set, tcfg, resume=resume)
    if not main_rank:
        return
    if val_rows:
        scorer = MaaClapScorer(out_dir / "clap", device=dev)
        final.update({f"heldout_{k}": v for k, v in measure(scorer, val_rows, val_mels, class_names(rows + val_rows)).items()})
    final["model"] = str(out_dir / "clap")
    sys.stdout.write(json.dumps(final) + "\n")
    info(f"wrote {out_dir / 'clap'}; use it as --scorer maa-clap:{out_dir / 'clap'}")
