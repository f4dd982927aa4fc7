"""`maa train-ldm`: train the text-conditioned latent diffusion model on a manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands.common import friendly, info, progress_bar, warn

HELP = """Train the text-conditioned latent diffusion UNet on top of a trained VAE.

Reads a manifest whose rows have a caption (or labels) and a `mel` (from `maa mel`) or an
`audio` path; trains on random crops of --duration seconds; writes RUN/ldm/ (config.json +
unet.safetensors, the EMA weights) and copies the VAE to RUN/vae/, so RUN is a model folder
for `maa generate --model RUN`. Also RUN/metrics.jsonl and RUN/trainer_state.pt (--resume).
The latent scale factor (1 / std of the training latents) is measured at the start and stored.

Examples:

  maa train-ldm data/mels/manifest.jsonl --vae runs/demo/vae -o runs/demo --preset tiny --duration 4 --cache-latents

  maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --cache-latents --reprogram-prob 0.3

  maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --steps 100000 --resume

  # fine-tune the bundled model on your own captioned clips (its VAE, its text encoder)
  maa train-ldm my_mels.jsonl --vae maa/assets/model/vae --init maa/assets/model -o runs/mine --steps 2000

  torchrun --nproc-per-node 8 .venv/bin/maa train-ldm mels.jsonl --vae runs/vae/vae -o runs/ldm --preset base --device cuda
"""


@friendly
def main(
    manifest: str = typer.Argument(..., help="Manifest with captions/labels and `mel` (from `maa mel`) or `audio` paths."),
    vae_dir: Path = typer.Option(..., "--vae", help="VAE folder written by `maa train-vae` (RUN/vae)."),
    out_dir: Path = typer.Option(..., "-o", "--out-dir", help="Run folder: RUN/ldm/ gets the UNet, RUN/vae/ a copy of the VAE."),
    preset: str = typer.Option("small", "--preset", "-p", help="UNet size: tiny (tests), small (CPU, ~15 M), base (the paper's, 320 channels)."),
    channels: int = typer.Option(0, "--channels", min=0, help="Base width of the UNet, overriding the preset's (0: the preset's)."),
    text_encoder: str = typer.Option("minilm", "--text-encoder", help="minilm (offline, 384-d), laion-clap:CKPT or hf:PATH."),
    prediction: str = typer.Option("eps", "--prediction", help="What the UNet predicts: eps (the paper's) or v."),
    steps: int = typer.Option(20000, "--steps", min=1, help="Total optimizer steps (counting steps done before --resume)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, help="Clips per step (per GPU under torchrun)."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate (the paper: 1e-5 at batch 32 with 10k warm-up steps)."),
    warmup: int = typer.Option(0, "--warmup", help="Linear learning-rate warm-up steps."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Training crop in seconds, rounded to whole latent frames (10 s = 624 mel frames)."),
    cond_drop: float = typer.Option(0.1, "--cond-drop", help="Share of captions replaced by \"\" (for classifier-free guidance)."),
    reprogram_prob: float = typer.Option(0.0, "--reprogram-prob", help="Share of examples replaced by fresh compositions of 2-3 training clips (dynamic reprogramming)."),
    reprogram_pool: str = typer.Option(None, "--reprogram-pool", help="Draw the --reprogram-prob share from these compositions (`maa reprogram`, then `maa mel`) instead of composing at every step."),
    cache_latents: bool = typer.Option(False, "--cache-latents", help="Encode every clip with the VAE once (kept in RUN/cache/ for reruns) instead of at every step."),
    val: str = typer.Option(None, "--val", help="Held-out manifest. Default: hold out --val-fraction of MANIFEST."),
    val_fraction: float = typer.Option(0.05, "--val-fraction", help="Share held out when --val is not given (0: none)."),
    ema: float = typer.Option(0.999, "--ema", help="EMA decay of the exported weights (0: off; 0.9999 for long runs)."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient-norm clip (0: off; the paper's is 1)."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", min=1),
    val_every: int = typer.Option(500, "--val-every", min=1),
    log_every: int = typer.Option(50, "--log-every", min=1),
    init: Path = typer.Option(None, "--init", help="Start from this trained LDM (a model folder such as maa/assets/model, or a RUN): its UNet shape, weights and latent scale; --preset/--channels/--prediction are then ignored. Its vocoder/ and clap/ are copied to RUN."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/trainer_state.pt exactly."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ... (under torchrun each process takes its LOCAL_RANK GPU)."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast on CUDA (ignored on CPU)."),
    grad_checkpoint: bool = typer.Option(False, "--grad-checkpoint", help="Recompute activations in backward (less GPU memory)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Data loader processes."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: torch's default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    import torch

    from maa.core.checkpoint import num_params, read_config, sha256_file
    from maa.core.errors import MaaError
    from maa.core.manifest import caption_of, read_manifest, split_holdout
    from maa.core.mel import frames_for_duration, seconds_for_frames
    from maa.models.diffusion import DiffusionConfig
    from maa.models.unet import UNetConfig
    from maa.models.unet import preset as unet_preset
    from maa.models.vae import load_vae
    from maa.train.ldm import (
        CaptionedMels,
        LDMSetup,
        LDMTask,
        cache_dataset_latents,
        copy_companions,
        copy_vae,
        init_from,
        measure_scale,
        read_init_config,
    )
    from maa.train.loop import (
        STATE_FILE,
        TrainConfig,
        dist_info,
        resolve_device,
        seed_everything,
        train,
    )
    from maa.train.text_cache import CachedTextEncoder, load_text_cache, save_text_cache

    if threads:
        torch.set_num_threads(threads)
    if not 0.0 <= reprogram_prob <= 1.0:
        raise MaaError(f"--reprogram-prob {reprogram_prob}: must lie in [0, 1]")
    if reprogram_pool and reprogram_prob <= 0:
        raise MaaError("--reprogram-pool: also pass --reprogram-prob (the share of examples drawn from the pool), e.g. 0.3")
    if not 0.0 <= cond_drop < 1.0:
        raise MaaError(f"--cond-drop {cond_drop}: must lie in [0, 1)")
    d = dist_info()
    seed_everything(seed)

    def captioned(src):
        rows = read_manifest(src)
        good = [r for r in rows if caption_of(r)]
        if len(good) < len(rows) and d.main:
            warn(f"{src}: {len(rows) - len(good)} rows have neither caption nor labels; skipped "
                 "(caption them with `maa caption`)")
        if not good:
            raise MaaError(f"{src}: no row has a caption or labels; the LDM learns from text-audio pairs")
        return good

    rows = captioned(manifest)
    if val:
        val_rows = captioned(val)
    else:
        rows, val_rows = split_holdout(rows, val_fraction)

    pool_rows = captioned(reprogram_pool) if reprogram_pool else []

    frames = frames_for_duration(duration)
    dev = resolve_device(device, d)
    vae = load_vae(vae_dir, dev)
    # every caption known up front is encoded once and kept in RUN/cache/: reruns (and machines
    # without the encoder's weights) skip the text encoder; only fresh compositions need it
    text_cache = out_dir / "cache" / "text.safetensors"
    text = CachedTextEncoder(text_encoder, load_text_cache(text_cache, text_encoder), device=str(dev))
    if text.add([""] + [caption_of(r) for r in rows + pool_rows + val_rows]) and d.main:
        save_text_cache(text_cache, text_encoder, text.table)
    unet_cfg = unet_preset(preset, context_dim=text.dim, in_channels=vae.cfg.z_channels, out_channels=vae.cfg.z_channels,
                           grad_checkpoint=grad_checkpoint, **({"channels": channels} if channels else {}))
    dcfg = DiffusionConfig(prediction=prediction, cond_drop=cond_drop)
    saved, icfg = None, None
    if resume and (out_dir / STATE_FILE).exists() and (out_dir / "ldm" / "config.json").exists():
        saved = read_config(out_dir / "ldm")  # the run's own settings win over the options
        unet_cfg = UNetConfig.from_dict(saved["unet"])
        dcfg = DiffusionConfig.from_dict(saved["diffusion"])
        frames = saved.get("train_frames", frames)
        if saved.get("text_encoder") != text_encoder:
            raise MaaError(f"--resume: the run was trained with --text-encoder {saved.get('text_encoder')}; pass that")
    elif init is not None:  # a resumed run continues from its own state, not from --init
        icfg = read_init_config(init)
        if icfg.get("text_encoder") != text_encoder:
            raise MaaError(f"--init {init}: trained with --text-encoder {icfg.get('text_encoder')}; pass that")
        # new runs always get the position maps; init_from zero-initialises them if the model lacks them
        unet_cfg = UNetConfig.from_dict({**icfg["unet"], "coords": True, "grad_checkpoint": grad_checkpoint})
        dcfg = DiffusionConfig.from_dict({**icfg["diffusion"], "cond_drop": cond_drop})
        if unet_cfg.in_channels != vae.cfg.z_channels:
            raise MaaError(f"--init {init}: its UNet takes {unet_cfg.in_channels}-channel latents, the VAE "
                           f"{vae_dir} makes {vae.cfg.z_channels}; pass the VAE it was trained with")

    reprogrammer = None
    if reprogram_prob > 0 and not reprogram_pool:
        try:
            from maa.data.reprogram import ComposeConfig, Reprogrammer, load_events
        except ImportError:
            raise MaaError("--reprogram-prob: maa.data.reprogram is not available in this install; use --reprogram-prob 0") from None
        problems = []
        with progress_bar(len(rows), "load events", disable=quiet or not d.main) as bar:
            events = load_events(rows, on_problem=problems.append, progress=bar.update)
        for p in problems[:5]:
            warn(p["reason"])
        reprogrammer = Reprogrammer(events, ComposeConfig(duration=seconds_for_frames(frames)))

    latent_shape = (vae.cfg.z_channels, vae.cfg.n_mels // vae.factor)
    pool_set = CaptionedMels(pool_rows, frames, latent_shape=latent_shape) if pool_rows else None
    train_set = CaptionedMels(rows, frames, latent_shape=latent_shape, reprogrammer=reprogrammer,
                              reprogram_prob=reprogram_prob, pool=pool_set)
    val_set = CaptionedMels(val_rows, frames, latent_shape=latent_shape) if val_rows else None
    if cache_latents:
        sets = {"": train_set, "pool/": pool_set, "val/": val_set}
        sets = {ns: ds for ns, ds in sets.items() if ds is not None}
        tag = {"vae": sha256_file(Path(vae_dir) / "vae.safetensors"), "frames": frames}
        with progress_bar(sum(len(s.rows) for s in sets.values()), "encode latents", disable=quiet or not d.main) as bar:
            cache_dataset_latents(vae, sets, out_dir / "cache" / "latents.safetensors", tag, write=d.main,
                                  progress=bar.update)
    if saved is None and icfg is None:
        dcfg.scale_factor = measure_scale(vae, train_set)

    setup = LDMSetup(unet=unet_cfg, diffusion=dcfg, text_encoder=text_encoder, frames=frames)
    task = LDMTask(setup, vae, text)
    if icfg is not None:
        init_from(init, task.unet, icfg)
    if d.main:
        copy_vae(vae_dir, out_dir)
        if icfg is not None:
            copy_companions(init, out_dir)
        info(f"train-ldm: {len(rows)} training clips, {len(val_rows)} held out; UNet {num_params(task.unet) / 1e6:.2f} M "
             f"parameters ({f'from {init}' if icfg is not None else preset}); crops of {frames} mel frames "
             f"({seconds_for_frames(frames):.2f} s, latent "
             f"{latent_shape[0]}x{latent_shape[1]}x{frames // vae.factor}); scale factor {dcfg.scale_factor:.4f}; "
             f"text {text.name} ({text.dim}-d)" + (f"; reprogramming {reprogram_prob:.0%}" if reprogrammer or pool_set else "")
             + (f" from a pool of {len(pool_rows)}" if pool_set else ""))
    cfg = TrainConfig(out_dir=out_dir, steps=steps, batch_size=batch_size, lr=lr, grad_clip=grad_clip or None,
                      ema_decay=ema or None, ckpt_every=ckpt_every, val_every=val_every, log_every=log_every, seed=seed,
                      device=device, bf16=bf16, num_workers=workers, warmup_steps=warmup, quiet=quiet)
    final = train(task, train_set, val_set, cfg, resume=resume)
    if d.main:
        msg = f"train-ldm: step {final['step']}, model folder {out_dir} (generate with `maa generate \"...\" --model {out_dir}`)"
        if "val_loss" in final:
            msg += f"; held-out loss {final['val_loss']:.4f}"
        info(msg)
        sys.stdout.write(json.dumps({k: v for k, v in final.items() if k != "kind"}) + "\n")
