"""Training the text-conditioned latent diffusion model: data set, latent cache, Task, run folder.

`LDMTask` plugs into maa.train.loop: mel crops -> frozen VAE -> latents times the scale
factor (1 / std of the training latents, measured once and stored in the config) -> DDPM loss of
the UNet, conditioned on the frozen text encoder's token states. 10% of captions are replaced by
"" so the same model also predicts unconditionally (classifier-free guidance). Optional dynamic
reprogramming replaces a share of the examples with new compositions of single-event clips
(maa.data.reprogram), drawn afresh at every step. The run folder is a generation model folder
(see maa.infer.pipeline).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import fit_length, frames_for_duration, mel_spectrogram, samples_for_frames, seconds_for_frames
from maa.core.checkpoint import load_safetensors, num_params, read_config, sha256_file
from maa.core.errors import MaaError
from maa.core.io import load_tensor_table, save_tensor_table
from maa.core.manifest import caption_of, split_holdout
from maa.core.progress import Reporter
from maa.data.formats import read_manifest
from maa.data.mels import RowMels, random_crop, tile_crop
from maa.data.reprogram import ComposeConfig, Reprogrammer, load_events
from maa.models.diffusion import (
    LDM_KIND,
    DiffusionConfig,
    alphas_cumprod,
    diffusion_loss,
    measure_scale_factor,
    q_sample,
    v_target,
)
from maa.models.unet import UNet, UNetConfig
from maa.models.unet import preset as unet_preset
from maa.models.vae import load_vae
from maa.train.loop import adamw, autocast, backward_step, train
from maa.train.run import RunOptions, begin
from maa.train.text_cache import CachedTextEncoder, load_text_cache, save_text_cache

# ----------------------------------------------------------------------------- data


class CaptionedMels(torch.utils.data.Dataset):
    """Training items {"mel": (1, 80, frames), "latent": (C, H, frames / 8), "cached": bool, "caption": str}.

    "cached" says which of mel / latent is real (the other is zeros, so default collation works).

    Mels come from each row's `mel` (.npy from `maa mel`) or, without one, from its audio. Short
    clips are tiled up to the crop (as Make-An-Audio's loader does). With `latents` (from
    --cache-latents) an item is a crop of the stored latent; with a reprogrammer, a share
    `reprogram_prob` of items is a fresh composition of single events instead of the row.
    """

    def __init__(self, rows: list[dict], frames: int, latents: list[torch.Tensor] | None = None,
                 latent_shape: tuple[int, int] = (4, 10), reprogrammer=None, reprogram_prob: float = 0.0,
                 pool: "CaptionedMels | None" = None):
        self.rows, self.frames = rows, frames
        self.captions = [caption_of(r) or "" for r in rows]
        self.latents, self.latent_shape = latents, latent_shape
        self.reprogrammer, self.reprogram_prob, self.pool = reprogrammer, reprogram_prob, pool
        self._mels = RowMels(rows)  # float16 in memory: the demo corpus fits many times over

    def __len__(self):
        return len(self.rows)

    def mel(self, i: int) -> np.ndarray:
        return self._mels[i]

    def _zeros_latent(self):
        c, h = self.latent_shape
        return torch.zeros(c, h, self.frames // 8)

    def get(self, i: int, rng: np.random.Generator | None) -> dict:
        if self.pool is not None and rng is not None and rng.random() < self.reprogram_prob:
            return self.pool.get(int(rng.integers(len(self.pool))), rng)  # a composition written in advance
        if self.reprogrammer is not None and rng is not None and rng.random() < self.reprogram_prob:
            comp = self.reprogrammer.sample(rng)
            wav = fit_length(comp.audio, samples_for_frames(self.frames))
            mel = mel_spectrogram(wav)[None, :, : self.frames]
            return {"mel": mel, "latent": self._zeros_latent(), "cached": False, "caption": comp.caption}
        if self.latents is not None:
            z, w = self.latents[i], self.frames // 8  # encode_latents tiled short clips to >= w frames
            start = int(rng.integers(0, z.shape[-1] - w + 1)) if rng is not None else 0
            return {"mel": torch.zeros(1, MEL.n_mels, self.frames), "latent": z[..., start:start + w].float(), "cached": True,
                    "caption": self.captions[i]}
        mel = random_crop(self.mel(i), self.frames, rng)
        return {"mel": mel, "latent": self._zeros_latent(), "cached": False, "caption": self.captions[i]}

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)


def collate(items: list[dict]) -> dict:
    """Stack a batch of items (torch's default collate)."""
    return torch.utils.data.default_collate(items)


@torch.no_grad()
def encode_latents(vae, mels: list[np.ndarray], frames: int, progress=None) -> list[torch.Tensor]:
    """--cache-latents: each clip's whole mel (tiled up to the crop when shorter) -> unscaled latent (CPU, float16)."""

    device = next(vae.parameters()).device
    out = []
    for m in mels:
        length = max(m.shape[1], frames)
        length = -(-length // 8) * 8
        x = torch.from_numpy(tile_crop(m, length, 0).astype(np.float32))[None].to(device)
        out.append(vae.encode_mel(x)[0].to("cpu", torch.float16))
        if progress:
            progress(1)
    return out


def latent_key(row: dict, namespace: str = "") -> str:
    """A row's name in the latent cache: its id and its mel (or audio) file's name, not the folder,
    so the cache stays valid when the data moves to another machine; `namespace` keeps the rows of
    different manifests (training clips, reprogramming pool, held-out clips) apart."""
    return f"{namespace}{row.get('id', '')}:{Path(str(row.get('mel') or row.get('audio') or '')).name}"


def load_latent_cache(path: Path, tag: dict) -> dict[str, torch.Tensor]:
    """{latent_key: unscaled latent} from RUN/cache/latents.safetensors when it was made with the same
    VAE weights and crop (`tag`); {} otherwise."""

    return load_tensor_table(path, {"tag": tag})


def save_latent_cache(path: Path, tag: dict, table: dict[str, torch.Tensor]) -> None:
    """Save the latent table (float16) with the tag that says which VAE and mels made it."""
    save_tensor_table(path, table, {"tag": tag}, dtype=torch.float16)


def cache_dataset_latents(vae, datasets: dict[str, CaptionedMels], path: Path, tag: dict, write: bool = True,
                          progress=None) -> int:
    """--cache-latents: give every dataset its latents, reading RUN/cache/latents.safetensors and
    encoding (then saving) only the rows it lacks. `datasets` maps a key namespace ("" for the
    training clips, "pool/", "val/") to a dataset. Returns how many rows were encoded."""
    table = load_latent_cache(path, tag)
    datasets = list(datasets.items())
    keys = [[latent_key(r, ns) for r in ds.rows] for ns, ds in datasets]
    todo = [(k, i) for k, ks in enumerate(keys) for i, key in enumerate(ks) if key not in table]
    if progress:
        progress(sum(len(ks) for ks in keys) - len(todo))
    for k, i in todo:
        ds = datasets[k][1]
        table[keys[k][i]] = encode_latents(vae, [ds.mel(i)], ds.frames)[0]
        if progress:
            progress(1)
    for ks, (_, ds) in zip(keys, datasets):
        ds.latents = [table[key] for key in ks]
        ds._mels.clear()  # the latents replace the mels
    if todo and write:
        save_latent_cache(path, tag, table)
    return len(todo)


# ----------------------------------------------------------------------------- training


@dataclass
class LDMSetup:
    """What the LDM task trains: the UNet and diffusion configs and the text encoder spec."""
    unet: UNetConfig
    diffusion: DiffusionConfig
    text_encoder: str = "minilm"
    max_length: int = 77
    frames: int = 624  # training crop in mel frames


class LDMTask:
    """The Task maa.train.loop.train runs: one UNet, one AdamW, the DDPM loss."""

    name = "ldm"

    def __init__(self, setup: LDMSetup, vae, text_encoder):
        self.setup = setup
        self.dcfg = setup.diffusion
        self.unet = UNet(setup.unet)
        self.vae = vae.eval().requires_grad_(False)
        self.text = text_encoder
        self.ac = alphas_cumprod(self.dcfg)
        self.opt = None

    def modules(self) -> dict:
        return {"unet": self.unet}

    def optimizers(self, cfg) -> dict:
        self.opt = adamw(self.unet.parameters(), cfg)
        return {"unet": self.opt}

    def _follow(self, device: torch.device) -> None:
        """Keep the frozen VAE and text encoder on the UNet's device (torchrun picks it late)."""
        if next(self.vae.parameters()).device != device:
            self.vae.to(device)
        if getattr(self.text, "device", device) != device:
            self.text.to(device)

    @torch.no_grad()
    def latents(self, batch: dict) -> torch.Tensor:
        z = batch["latent"].float()
        todo = ~batch["cached"]
        if todo.any():
            z = z.clone()
            z[todo] = self.vae.encode_mel(batch["mel"][todo]).float()
        return z * self.dcfg.scale_factor

    def context(self, captions: list[str]):
        emb = self.text.encode(list(captions))
        return emb.tokens, emb.mask

    def train_step(self, batch: dict, step: int, cfg) -> dict:
        device = batch["latent"].device
        self._follow(device)
        z = self.latents(batch)
        drop = (torch.rand(len(batch["caption"])) < self.dcfg.cond_drop).tolist()
        tokens, mask = self.context(["" if d else c for c, d in zip(batch["caption"], drop)])
        with autocast(cfg):
            loss = diffusion_loss(self.unet, z, tokens, mask, self.dcfg, self.ac)
        norm = backward_step(loss, self.opt, self.unet.parameters(), cfg)
        return {"loss": float(loss.detach()), "grad_norm": norm}

    @torch.no_grad()
    def validate(self, batches, step: int, out_dir: Path) -> dict:
        """The loss at fixed timesteps and noise (the same for every validation), so curves are comparable."""
        g = torch.Generator().manual_seed(1234)
        losses = []
        for batch in batches:
            device = batch["latent"].device
            self._follow(device)
            z = self.latents(batch)
            tokens, mask = self.context(batch["caption"])
            t = torch.randint(0, self.dcfg.num_steps, (z.shape[0],), generator=g).to(device)
            noise = torch.randn(z.shape, generator=g).to(device)

            x_t = q_sample(z, t, noise, self.ac)
            target = noise if self.dcfg.prediction == "eps" else v_target(z, noise, self.ac.to(device)[t])
            pred = self.unet(x_t, t, tokens, mask)
            losses.append(float(torch.nn.functional.mse_loss(pred.float(), target.float())))
        return {"loss": float(np.mean(losses))} if losses else {}

    def export_config(self) -> dict:
        return {
            "kind": LDM_KIND,
            "unet": self.setup.unet.to_dict(),
            "diffusion": self.dcfg.to_dict(),
            "text_encoder": self.setup.text_encoder,
            "max_length": self.setup.max_length,
            "train_frames": self.setup.frames,
            "latent_channels": self.setup.unet.in_channels,
            "mel": MEL.to_dict(),
            "weights": "unet.safetensors",
        }


@torch.no_grad()
def measure_scale(vae, dataset: CaptionedMels, n: int = 64, batch_size: int = 16) -> float:
    """1 / std of the latents of the first n training items (deterministic crops from the start)."""
    device = next(vae.parameters()).device
    zs = []
    for i0 in range(0, min(n, len(dataset)), batch_size):
        items = [dataset[i] for i in range(i0, min(i0 + batch_size, n, len(dataset)))]
        b = collate(items)
        z = b["latent"].to(device)
        todo = ~b["cached"]
        if todo.any():
            z[todo.to(device)] = vae.encode_mel(b["mel"][todo].to(device)).float()
        zs.append(z.cpu())
    return measure_scale_factor(torch.cat(zs))


def copy_folder(src: Path, dst: Path, names: tuple[str, ...] | None = None) -> Path:
    """Copy folder `src` (or only its files `names`) to `dst` through a temporary sibling, so an
    interrupted copy never leaves a half folder where a model part is expected."""
    tmp = dst.parent / f".{dst.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    if names is None:
        shutil.copytree(src, tmp)
    else:
        tmp.mkdir(parents=True)
        for name in names:
            shutil.copy2(src / name, tmp / name)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def copy_vae(vae_dir: Path, run_dir: Path) -> Path:
    """Put the VAE next to the LDM (RUN/vae/) so RUN is a complete generation model folder."""
    dst = run_dir / "vae"
    if dst.resolve() == Path(vae_dir).resolve():
        return dst
    names = ("config.json", "vae.safetensors")  # generation needs no discriminator
    for name in names:
        if not (Path(vae_dir) / name).exists():
            raise MaaError(f"{Path(vae_dir) / name}: missing; pass the vae/ folder `maa train-vae` wrote")
    return copy_folder(Path(vae_dir), dst, names)


def ldm_dir_of(path: str | Path) -> Path:
    """The ldm/ folder of a model folder (or RUN), or the folder itself when it is one."""
    p = Path(path).expanduser()
    return p / "ldm" if (p / "ldm" / "config.json").exists() else p


def read_init_config(path: str | Path) -> dict:
    """config.json of the LDM that --init names, or a one-line error saying what to pass."""

    d = ldm_dir_of(path)
    try:
        cfg = json.loads((d / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    if cfg.get("kind") != LDM_KIND:
        raise MaaError(f"--init {path}: not an LDM folder (pass a model folder, RUN of `maa train-ldm`, or its ldm/)")
    return cfg


def init_from(path: str | Path, unet: UNet, cfg: dict | None = None) -> dict:
    """Load a trained LDM's weights into `unet` (float32) to continue from them; returns its config
    (`cfg`, when the caller has already read it with read_init_config).

    `unet` may add the position maps the saved one lacks: their input weights start at zero, so
    at step 0 the network computes exactly what the saved one did."""

    d, cfg = ldm_dir_of(path), cfg or read_init_config(path)
    state = {k: v.float() for k, v in load_safetensors(d / cfg.get("weights", "unet.safetensors")).items()}
    w, own = state.get("conv_in.weight"), unet.conv_in.weight
    if w is not None and w.shape[1] < own.shape[1] and w.shape[0] == own.shape[0]:
        state["conv_in.weight"] = torch.cat([w, w.new_zeros(w.shape[0], own.shape[1] - w.shape[1], *w.shape[2:])], 1)
    try:
        unet.load_state_dict(state)
    except RuntimeError as e:
        raise MaaError(f"--init {path}: weights do not fit ({str(e).strip().splitlines()[0]})") from None
    return cfg


def copy_companions(init: str | Path, run_dir: Path, names: tuple[str, ...] = ("vocoder", "clap")) -> list[str]:
    """A run started with --init from a model folder keeps that folder's vocoder/ and clap/, so
    RUN stays a complete model folder (the same VAE means the same mels to vocode). Returns what
    was copied; parts RUN already has are left alone."""
    root = ldm_dir_of(init).parent
    done = []
    for name in names:
        if (root / name / "config.json").exists() and not (run_dir / name).exists():
            copy_folder(root / name, run_dir / name)
            done.append(name)
    return done



# ----------------------------------------------------------------------------- `maa train-ldm`


@dataclass(kw_only=True)
class LDMTrainOptions(RunOptions):
    """Everything `maa train-ldm` takes; the defaults are the command's."""

    manifest: str
    vae_dir: Path | None = None  # None: --init's vae/ (a model folder has one)
    preset: str = "small"
    channels: int = 0  # 0: the preset's
    text_encoder: str = "minilm"
    prediction: str = "eps"
    steps: int = 20000
    batch_size: int = 16
    duration: float = 10.0
    cond_drop: float = 0.1
    reprogram_prob: float = 0.0
    reprogram_pool: str | None = None
    cache_latents: bool = False
    val_fraction: float = 0.05
    ema: float | None = 0.999
    grad_checkpoint: bool = False


def _captioned(src: str, ui: Reporter, main: bool) -> list[dict]:
    rows = read_manifest(src)
    good = [r for r in rows if caption_of(r)]
    if len(good) < len(rows) and main:
        ui.warn(f"{src}: {len(rows) - len(good)} rows have neither caption nor labels; skipped "
                "(caption them with `maa caption`)")
    if not good:
        raise MaaError(f"{src}: no row has a caption or labels; the LDM learns from text-audio pairs")
    return good


def train_ldm(o: LDMTrainOptions, ui: Reporter | None = None) -> dict:
    """`maa train-ldm`: the run-folder rule, resume/--init precedence, text and latent caches,
    reprogramming, the scale factor, then the loop. Returns the final metrics."""

    ui = ui or Reporter()
    if o.vae_dir is None:
        vae = ldm_dir_of(o.init).parent / "vae" if o.init is not None else None
        if vae is None or not (vae / "config.json").exists():
            raise MaaError("--vae: pass the VAE folder (`maa train-vae` RUN/vae), or --init a model folder that has vae/")
        o.vae_dir = vae
    if not 0.0 <= o.reprogram_prob <= 1.0:
        raise MaaError(f"--reprogram-prob {o.reprogram_prob}: must lie in [0, 1]")
    if o.reprogram_pool and o.reprogram_prob <= 0:
        raise MaaError("--reprogram-pool: also pass --reprogram-prob (the share of examples drawn from the pool), e.g. 0.3")
    if not 0.0 <= o.cond_drop < 1.0:
        raise MaaError(f"--cond-drop {o.cond_drop}: must lie in [0, 1)")
    run = begin(o, ui)
    out_dir, d = Path(o.out_dir), run.dist
    own = out_dir / "ldm" / "config.json"
    saved = read_config(out_dir / "ldm") if run.start.resume and own.exists() else None  # the run's own settings win
    icfg = read_init_config(o.init) if o.init is not None and saved is None else None  # resuming ignores --init
    for cfg, what in ((saved, "--resume: the run was trained"), (icfg, f"--init {o.init}: trained")):
        if cfg is not None and cfg.get("text_encoder") != o.text_encoder:
            raise MaaError(f"{what} with --text-encoder {cfg.get('text_encoder')}; pass that")

    rows = _captioned(o.manifest, ui, d.main)
    if o.val:
        val_rows = _captioned(o.val, ui, d.main)
    else:
        rows, val_rows = split_holdout(rows, o.val_fraction)
    pool_rows = _captioned(o.reprogram_pool, ui, d.main) if o.reprogram_pool else []

    frames = frames_for_duration(o.duration)
    vae = load_vae(o.vae_dir, run.device)
    # every caption known up front is encoded once and kept in RUN/cache/: reruns (and machines
    # without the encoder's weights) skip the text encoder; only fresh compositions need it
    text_cache = out_dir / "cache" / "text.safetensors"
    text = CachedTextEncoder(o.text_encoder, load_text_cache(text_cache, o.text_encoder), device=str(run.device))
    if text.add([""] + [caption_of(r) for r in rows + pool_rows + val_rows]) and d.main:
        save_text_cache(text_cache, o.text_encoder, text.table)
    unet_cfg = unet_preset(o.preset, context_dim=text.dim, in_channels=vae.cfg.z_channels,
                           out_channels=vae.cfg.z_channels, grad_checkpoint=o.grad_checkpoint,
                           **({"channels": o.channels} if o.channels else {}))
    dcfg = DiffusionConfig(prediction=o.prediction, cond_drop=o.cond_drop)
    if saved is not None:
        unet_cfg, dcfg = UNetConfig.from_dict(saved["unet"]), DiffusionConfig.from_dict(saved["diffusion"])
        frames = saved.get("train_frames", frames)
    elif icfg is not None:
        # new runs always get the position maps; init_from zero-initialises them if the model lacks them
        unet_cfg = UNetConfig.from_dict({**icfg["unet"], "coords": True, "grad_checkpoint": o.grad_checkpoint})
        dcfg = DiffusionConfig.from_dict({**icfg["diffusion"], "cond_drop": o.cond_drop})
        if unet_cfg.in_channels != vae.cfg.z_channels:
            raise MaaError(f"--init {o.init}: its UNet takes {unet_cfg.in_channels}-channel latents, the VAE "
                           f"{o.vae_dir} makes {vae.cfg.z_channels}; pass the VAE it was trained with")

    reprogrammer = None
    if o.reprogram_prob > 0 and not o.reprogram_pool:
        problems = []
        with ui.bar(len(rows), "load events", disable=o.quiet or not d.main) as bar:
            events = load_events(rows, on_problem=problems.append, progress=bar.update)
        for p in problems[:5]:
            ui.warn(p["reason"])
        reprogrammer = Reprogrammer(events, ComposeConfig(duration=seconds_for_frames(frames)))

    latent_shape = (vae.cfg.z_channels, vae.cfg.n_mels // vae.factor)
    pool_set = CaptionedMels(pool_rows, frames, latent_shape=latent_shape) if pool_rows else None
    train_set = CaptionedMels(rows, frames, latent_shape=latent_shape, reprogrammer=reprogrammer,
                              reprogram_prob=o.reprogram_prob, pool=pool_set)
    val_set = CaptionedMels(val_rows, frames, latent_shape=latent_shape) if val_rows else None
    if o.cache_latents:
        sets = {ns: ds for ns, ds in {"": train_set, "pool/": pool_set, "val/": val_set}.items() if ds is not None}
        tag = {"vae": sha256_file(Path(o.vae_dir) / "vae.safetensors"), "frames": frames}
        with ui.bar(sum(len(s.rows) for s in sets.values()), "encode latents", disable=o.quiet or not d.main) as bar:
            cache_dataset_latents(vae, sets, out_dir / "cache" / "latents.safetensors", tag, write=d.main,
                                  progress=bar.update)
    if saved is None and icfg is None:
        dcfg.scale_factor = measure_scale(vae, train_set)

    task = LDMTask(LDMSetup(unet=unet_cfg, diffusion=dcfg, text_encoder=o.text_encoder, frames=frames), vae, text)
    if icfg is not None:
        init_from(o.init, task.unet, icfg)
    if d.main:
        copy_vae(o.vae_dir, out_dir)
        if icfg is not None:
            copy_companions(o.init, out_dir)
        ui.info(f"train-ldm: {len(rows)} training clips, {len(val_rows)} held out; UNet "
                f"{num_params(task.unet) / 1e6:.2f} M parameters ({f'from {o.init}' if icfg is not None else o.preset}); "
                f"crops of {frames} mel frames ({seconds_for_frames(frames):.2f} s, latent "
                f"{latent_shape[0]}x{latent_shape[1]}x{frames // vae.factor}); scale factor {dcfg.scale_factor:.4f}; "
                f"text {text.name} ({text.dim}-d)"
                + (f"; reprogramming {o.reprogram_prob:.0%}" if reprogrammer or pool_set else "")
                + (f" from a pool of {len(pool_rows)}" if pool_set else "") + f"; device: {run.describe_device()}")
    final = train(task, train_set, val_set, o.train_config(run.device), resume=run.start.resume)
    if d.main:
        ui.info(f"train-ldm: step {final['step']}, model folder {out_dir} (generate with `maa generate \"...\" "
                f"--model {out_dir}`)" + (f"; held-out loss {final['val_loss']:.4f}" if "val_loss" in final else ""))
    return final
