"""`maa train-ldm --init MODEL --lora RANK`: train a LoRA adapter (maa.models.lora) on a frozen base UNet.

The loop (maa.train.loop) sees only the adapter: its modules are {"lora": LoRA}, so the optimizer,
the EMA and trainer_state.pt hold the adapter's tensors alone, and the checkpoint export writes
RUN/lora/lora.safetensors. The base model folder is only read. RUN/lora/lora.json (rank, alpha,
targets, the base model and its UNet hash, a summary of the training data) is written before the
first step and again at the end. `--resume` continues exactly, from the same base (checked by hash).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from maa.core.audio import frames_for_duration, seconds_for_frames
from maa.core.checkpoint import num_params, sha256_file
from maa.core.errors import MaaError
from maa.core.io import write_json_atomic
from maa.core.manifest import caption_of, split_holdout
from maa.core.progress import Reporter
from maa.models.diffusion import DiffusionConfig, diffusion_loss
from maa.models.lora import DEFAULT_TARGETS, LORA_KIND, META, LoRA, attach, check_rank, parse_targets, unet_sha256
from maa.models.unet import UNetConfig
from maa.models.vae import load_vae
from maa.parts.text import resolve_spec
from maa.train.ldm import (
    CaptionedMels,
    LDMSetup,
    LDMTask,
    LDMTrainOptions,
    _captioned,
    cache_dataset_latents,
    init_from,
    ldm_dir_of,
    read_init_config,
)
from maa.train.loop import adamw, autocast, backward_step, train
from maa.train.run import begin
from maa.train.text_cache import CachedTextEncoder, load_text_cache, save_text_cache


class LoRATask(LDMTask):
    """LDMTask with the UNet frozen and a LoRA adapter attached: only the adapter trains."""

    name = "lora"

    def __init__(self, setup: LDMSetup, vae, text_encoder, rank: int, alpha: float | None, targets: tuple[str, ...]):
        super().__init__(setup, vae, text_encoder)
        self.unet.requires_grad_(False)
        self.lora = LoRA.for_unet(self.unet, rank, alpha, targets)
        self.hooks = attach(self.unet, self.lora, 1.0)

    def modules(self) -> dict:
        return {"lora": self.lora}

    def optimizers(self, cfg) -> dict:
        self.opt = adamw(self.lora.parameters(), cfg)
        return {"lora": self.opt}

    def _follow(self, device: torch.device) -> None:
        super()._follow(device)
        if next(self.unet.parameters()).device != device:
            self.unet.to(device)

    def train_step(self, batch: dict, step: int, cfg) -> dict:
        self._follow(batch["latent"].device)
        self.unet.train(self.lora.training)
        z = self.latents(batch)
        drop = (torch.rand(len(batch["caption"])) < self.dcfg.cond_drop).tolist()
        tokens, mask = self.context(["" if d else c for c, d in zip(batch["caption"], drop)])
        with autocast(cfg):
            loss = diffusion_loss(self.unet, z, tokens, mask, self.dcfg, self.ac)
        norm = backward_step(loss, self.opt, self.lora.parameters(), cfg)
        return {"loss": float(loss.detach()), "grad_norm": norm}

    @torch.no_grad()
    def validate(self, batches, step: int, out_dir: Path) -> dict:
        self.unet.eval()
        return super().validate(batches, step, out_dir)

    def export_config(self):
        return None  # lora.json is written by train_lora (the loop writes only lora.safetensors)


def data_summary(rows: list[dict], val_rows: list[dict], manifest: str) -> dict:
    """What lora.json says about the training data: where, how many clips and seconds, the labels."""


    labels = Counter(lab for r in rows for lab in (r.get("labels") or []))
    seconds = sum(float(r.get("duration") or 0) for r in rows)
    return {"manifest": str(manifest), "clips": len(rows), "held_out": len(val_rows),
            "seconds": round(seconds, 1), "labels": dict(labels.most_common(20)),
            "examples": [caption_of(r) for r in rows[:5]]}


@dataclass(kw_only=True)
class LoRATrainOptions(LDMTrainOptions):
    """`maa train-ldm ... --lora RANK`: the LDM options plus the adapter's."""

    lora: int = 8
    lora_alpha: float | None = None  # None: the rank
    lora_targets: str | None = None  # None: attn,ff


def train_lora(o: LoRATrainOptions, ui: Reporter | None = None) -> dict:
    """`maa train-ldm MANIFEST --init MODEL --lora RANK`. Returns the final metrics (plus the
    adapter folder and its size)."""
    ui = ui or Reporter()
    check_rank(o.lora)
    alpha = o.lora_alpha if o.lora_alpha is not None else float(o.lora)
    if not alpha > 0 or alpha != alpha or alpha == float("inf"):
        raise MaaError(f"--lora-alpha {o.lora_alpha}: must be a finite number > 0 (default: the rank)")
    targets = parse_targets(o.lora_targets or ",".join(DEFAULT_TARGETS))
    if o.reprogram_prob or o.reprogram_pool:
        raise MaaError("--lora with --reprogram-prob/--reprogram-pool: not supported; fine-tune the adapter on the clips themselves")
    out_dir = Path(o.out_dir)
    run = begin(o, ui)
    d = run.dist
    meta_path = out_dir / "lora" / META
    saved = None
    if run.start.resume and meta_path.exists():
        saved = json.loads(meta_path.read_text())
    init = o.init if o.init is not None else (saved or {}).get("base", {}).get("model")
    if init is None:
        raise MaaError("--lora: pass the base model with --init MODEL (e.g. --init maa/assets/model)")
    icfg = read_init_config(init)
    root = ldm_dir_of(init).parent
    base_sha = unet_sha256(root)
    if saved is not None:
        if saved.get("base", {}).get("unet_sha256") != base_sha:
            raise MaaError(f"--resume: {out_dir} trains an adapter for the base with UNet hash "
                           f"{saved['base'].get('unet_sha256')} ({saved['base'].get('model')}), but --init {init} has "
                           f"{base_sha}; pass that model")
        rank, alpha, targets = int(saved["rank"]), float(saved["alpha"]), tuple(saved["targets"])  # the run's own
    else:
        rank = o.lora
    # the base's own text encoder (a converted official model's msclap:text lives in its folder)

    spec = resolve_spec(icfg.get("text_encoder", "minilm"), root)
    if o.text_encoder not in ("minilm", icfg.get("text_encoder"), spec):
        raise MaaError(f"--text-encoder {o.text_encoder}: the adapter conditions on the base's own encoder "
                       f"({icfg.get('text_encoder')}); leave --text-encoder out")

    rows = _captioned(o.manifest, ui, d.main)
    if o.val:
        val_rows = _captioned(o.val, ui, d.main)
    else:
        rows, val_rows = split_holdout(rows, o.val_fraction)
    vae_dir = Path(o.vae_dir) if o.vae_dir is not None else root / "vae"
    vae = load_vae(vae_dir, run.device)
    frames = frames_for_duration(o.duration)
    text_cache = out_dir / "cache" / "text.safetensors"
    text = CachedTextEncoder(spec, load_text_cache(text_cache, spec), device=str(run.device),
                             max_length=icfg.get("max_length", 77))

    if text.add([""] + [caption_of(r) for r in rows + val_rows]) and d.main:
        save_text_cache(text_cache, spec, text.table)
    # the cache stores float16: train on exactly what a resumed run reads back, so --resume is bitwise
    text.table = {k: v.half().float() for k, v in text.table.items()}

    # the base exactly as it is (no position maps added: the frozen weights define the function)
    unet_cfg = UNetConfig.from_dict({**icfg["unet"], "grad_checkpoint": o.grad_checkpoint})
    dcfg = DiffusionConfig.from_dict({**icfg["diffusion"], "cond_drop": o.cond_drop})
    if unet_cfg.in_channels != vae.cfg.z_channels:
        raise MaaError(f"--init {init}: its UNet takes {unet_cfg.in_channels}-channel latents, the VAE {vae_dir} "
                       f"makes {vae.cfg.z_channels}; pass the VAE it was trained with")
    latent_shape = (vae.cfg.z_channels, vae.cfg.n_mels // vae.factor)
    train_set = CaptionedMels(rows, frames, latent_shape=latent_shape)
    val_set = CaptionedMels(val_rows, frames, latent_shape=latent_shape) if val_rows else None
    if o.cache_latents:
        sets = {ns: ds for ns, ds in {"": train_set, "val/": val_set}.items() if ds is not None}
        tag = {"vae": sha256_file(vae_dir / "vae.safetensors"), "frames": frames}
        with ui.bar(sum(len(s.rows) for s in sets.values()), "encode latents", disable=o.quiet or not d.main) as bar:
            cache_dataset_latents(vae, sets, out_dir / "cache" / "latents.safetensors", tag, write=d.main,
                                  progress=bar.update)

    setup = LDMSetup(unet=unet_cfg, diffusion=dcfg, text_encoder=icfg.get("text_encoder", "minilm"), frames=frames)
    task = LoRATask(setup, vae, text, rank, alpha, targets)
    init_from(init, task.unet, icfg)
    meta = {**task.lora.meta(), "base": {"model": str(Path(root).resolve()), "unet_sha256": base_sha},
            "text_encoder": icfg.get("text_encoder", "minilm"), "train_frames": frames,
            "data": data_summary(rows, val_rows, o.manifest),
            "train": {"steps": o.steps, "lr": o.lr, "batch_size": o.batch_size, "seed": o.seed}}
    if d.main:
        write_json_atomic(meta_path, meta)
        n = num_params(task.lora)
        ui.info(f"train-ldm --lora: {len(rows)} training clips, {len(val_rows)} held out; adapter rank {rank}, "
                f"alpha {alpha:g}, targets {','.join(targets)}: {n / 1e3:.1f} k parameters "
                f"({n / max(1, num_params(task.unet)):.2%} of the frozen UNet from {init}); crops of {frames} mel "
                f"frames ({seconds_for_frames(frames):.2f} s); device: {run.describe_device()}")
    final = train(task, train_set, val_set, o.train_config(run.device), resume=run.start.resume)
    if d.main:
        meta["train"]["steps_done"] = final["step"]
        write_json_atomic(meta_path, meta)
        size = (out_dir / "lora" / "lora.safetensors").stat().st_size
        final["adapter"] = str(out_dir / "lora")
        final["adapter_mb"] = round(size / 1e6, 3)
        ui.info(f"train-ldm --lora: step {final['step']}, adapter {out_dir / 'lora'} ({size / 1e6:.2f} MB); use it "
                f"with `maa generate \"...\" --model {root} --lora {out_dir}`")
    return final


__all__ = ["LoRATask", "LoRATrainOptions", "train_lora", "LORA_KIND"]
