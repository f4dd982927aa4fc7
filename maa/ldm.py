"""Text-conditioned latent diffusion: the training Task, the model folder, and generation.

Training (`LDMTask`, plugs into maa.trainer): mel crops -> frozen VAE -> latents times the scale
factor (1 / std of the training latents, measured once and stored in the config) -> DDPM loss of
the UNet, conditioned on the frozen text encoder's token states. 10% of captions are replaced by
"" so the same model also predicts unconditionally (classifier-free guidance). Optional dynamic
reprogramming replaces a share of the examples with new compositions of single-event clips
(maa.reprogram), drawn afresh at every step.

A generation model folder holds vae/ (maa train-vae), ldm/ (config.json + unet.safetensors,
the EMA weights when training used EMA) and optionally vocoder/ and clap/. `maa train-ldm`
copies the VAE into RUN/vae/, so RUN is such a folder.

Generation (`generate`): per sample a seeded Gaussian latent (or, for audio-to-audio, the init
audio's latent noised to the strength's timestep), a sampler over the guided denoiser, the VAE
decoder, then the vocoder (Griffin-Lim unless the folder has a neural vocoder). A prompt with
order words ("A, then B") is sampled part by part, each part a shorter clip of its own, and the
parts are joined end to end (maa.temporal).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from maa.audio import SAMPLE_RATE, fit_length
from maa.diffusion import DiffusionConfig, alphas_cumprod, diffusion_loss, measure_scale_factor
from maa.errors import MaaError
from maa.mel import DEFAULT as MEL, mel_spectrogram, num_frames, samples_for_frames
from maa.samplers import SAMPLERS, SPACING, guided, model_denoiser, sdedit_timesteps, timesteps
from maa.temporal import join, part_span, split_sequence
from maa.unet import UNet, UNetConfig

KIND = "ldm"
BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "model"


# ----------------------------------------------------------------------------- lengths


def frames_for_duration(seconds: float, factor: int = 8) -> int:
    """Mel frames for `seconds`, rounded to a whole number of latent frames (a multiple of 8).

    10 s -> 624 frames (the paper's crop); output audio has (frames + 1) * 256 samples.
    """
    if not seconds > 0:
        raise MaaError(f"--duration {seconds}: must be positive")
    exact = num_frames(int(round(seconds * SAMPLE_RATE)))
    return max(factor, int(round(exact / factor)) * factor)


def seconds_for_frames(frames: int) -> float:
    return samples_for_frames(frames) / SAMPLE_RATE


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
        from maa.manifest import caption_of

        self.rows, self.frames = rows, frames
        self.captions = [caption_of(r) or "" for r in rows]
        self.latents, self.latent_shape = latents, latent_shape
        self.reprogrammer, self.reprogram_prob, self.pool = reprogrammer, reprogram_prob, pool
        self._mels: dict[int, np.ndarray] = {}

    def __len__(self):
        return len(self.rows)

    def mel(self, i: int) -> np.ndarray:
        if i not in self._mels:
            row = self.rows[i]
            if row.get("mel"):
                from maa.mel_data import load_mel

                m = np.asarray(load_mel(row["mel"]), dtype=np.float32)
            else:
                from maa.audio import load_audio

                m = mel_spectrogram(load_audio(row["audio"], max_seconds=60.0)).numpy()
            if not np.isfinite(m).all():
                raise MaaError(f"{row.get('mel') or row['audio']}: NaN or infinite mel values; recompute it")
            self._mels[i] = m.astype(np.float16)  # the demo corpus fits in memory many times over
        return self._mels[i]

    def _zeros_latent(self):
        c, h = self.latent_shape
        return torch.zeros(c, h, self.frames // 8)

    def get(self, i: int, rng: np.random.Generator | None) -> dict:
        from maa.mel_data import tile_crop

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
        m = self.mel(i)
        t = m.shape[1]
        start = 0
        if rng is not None:
            start = int(rng.integers(0, max(t - self.frames, 0) + 1 if t >= self.frames else t))
        mel = torch.from_numpy(tile_crop(m, self.frames, start).astype(np.float32))[None]
        return {"mel": mel, "latent": self._zeros_latent(), "cached": False, "caption": self.captions[i]}

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)


def collate(items: list[dict]) -> dict:
    return torch.utils.data.default_collate(items)


@torch.no_grad()
def encode_latents(vae, mels: list[np.ndarray], frames: int, progress=None) -> list[torch.Tensor]:
    """--cache-latents: each clip's whole mel (tiled up to the crop when shorter) -> unscaled latent (CPU, float16)."""
    from maa.mel_data import tile_crop

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
    from maa.io import load_tensor_table

    return load_tensor_table(path, {"tag": tag})


def save_latent_cache(path: Path, tag: dict, table: dict[str, torch.Tensor]) -> None:
    from maa.io import save_tensor_table

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
    unet: UNetConfig
    diffusion: DiffusionConfig
    text_encoder: str = "minilm"
    max_length: int = 77
    frames: int = 624  # training crop in mel frames


class LDMTask:
    """The Task maa.trainer.train runs: one UNet, one AdamW, the DDPM loss."""

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
        from maa.trainer import adamw

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
        from maa.trainer import autocast, backward_step

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
            from maa.diffusion import q_sample, v_target

            x_t = q_sample(z, t, noise, self.ac)
            target = noise if self.dcfg.prediction == "eps" else v_target(z, noise, self.ac.to(device)[t])
            pred = self.unet(x_t, t, tokens, mask)
            losses.append(float(torch.nn.functional.mse_loss(pred.float(), target.float())))
        return {"loss": float(np.mean(losses))} if losses else {}

    def export_config(self) -> dict:
        return {
            "kind": KIND,
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
    import json

    d = ldm_dir_of(path)
    try:
        cfg = json.loads((d / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    if cfg.get("kind") != KIND:
        raise MaaError(f"--init {path}: not an LDM folder (pass a model folder, RUN of `maa train-ldm`, or its ldm/)")
    return cfg


def init_from(path: str | Path, unet: UNet, cfg: dict | None = None) -> dict:
    """Load a trained LDM's weights into `unet` (float32) to continue from them; returns its config
    (`cfg`, when the caller has already read it with read_init_config).

    `unet` may add the position maps the saved one lacks: their input weights start at zero, so
    at step 0 the network computes exactly what the saved one did."""
    from safetensors.torch import load_file

    d, cfg = ldm_dir_of(path), cfg or read_init_config(path)
    state = {k: v.float() for k, v in load_file(str(d / cfg.get("weights", "unet.safetensors"))).items()}
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


# ----------------------------------------------------------------------------- model folder


@dataclass
class LDMModel:
    unet: UNet
    vae: object
    text: object
    vocoder: object
    dcfg: DiffusionConfig
    ac: torch.Tensor
    config: dict
    root: Path
    device: torch.device


def resolve_model_dir(path: str | Path | None) -> Path:
    """The folder given (or RUN for RUN/ldm), or the bundled model; a clear error when there is none."""
    if path is None:
        if (BUNDLED_MODEL / "ldm" / "config.json").exists():
            return BUNDLED_MODEL
        raise MaaError("no bundled model yet; train one with `maa train-vae MELS -o RUN` then "
                       "`maa train-ldm MELS --vae RUN/vae -o RUN`, or pass --model DIR")
    p = Path(path).expanduser()
    if (p / "config.json").exists() and not (p / "ldm").exists() and (p.parent / "vae").exists():
        p = p.parent  # RUN/ldm given
    if not (p / "ldm" / "config.json").exists():
        raise MaaError(f"{p}: not a generation model folder (no ldm/config.json); pass the -o folder of `maa train-ldm`")
    if not (p / "vae" / "config.json").exists():
        raise MaaError(f"{p}: has ldm/ but no vae/; copy the VAE folder (from `maa train-vae`) to {p / 'vae'}")
    return p


def load_model(path: str | Path | None = None, device: str = "cpu", text_encoder: str | None = None,
               gl_iters: int = 32) -> LDMModel:
    from maa.text import load_text_encoder
    from maa.trainer import load_weights, read_config
    from maa.vae import load_vae
    from maa.vocoder import load_vocoder

    root = resolve_model_dir(path)
    dev = torch.device(device)
    cfg = read_config(root / "ldm")
    if cfg.get("kind") != KIND:
        raise MaaError(f"{root / 'ldm' / 'config.json'}: kind {cfg.get('kind')!r} is not an LDM config")
    unet = UNet(UNetConfig.from_dict(cfg["unet"])).to(dev)
    load_weights(root / "ldm", {"unet": unet})
    text = load_text_encoder(text_encoder or cfg["text_encoder"], device=device, max_length=cfg.get("max_length", 77))
    if text.dim != unet.cfg.context_dim:
        raise MaaError(f"text encoder {text.name}: width {text.dim}, but the UNet was trained with {unet.cfg.context_dim}")
    dcfg = DiffusionConfig.from_dict(cfg["diffusion"])
    return LDMModel(unet.eval(), load_vae(root / "vae", dev), text, load_vocoder(root, dev, gl_iters), dcfg,
                    alphas_cumprod(dcfg), cfg, root, dev)


# ----------------------------------------------------------------------------- generation


@dataclass
class GenerateOptions:
    steps: int = 25
    sampler: str = "dpm++"
    guidance: float = 3.0
    negative: str = ""  # the unconditional prompt; "" is the paper's
    duration: float = 10.0
    batch_size: int = 4
    eta: float = 0.0  # DDIM only
    init_audio: np.ndarray | None = None  # audio-to-audio (SDEdit): 16 kHz mono
    strength: float = 0.5
    compose: bool = True  # "A, then B": A over the first half, B over the second (maa.temporal)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise MaaError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise MaaError(f"--steps {self.steps}: must be at least 1")
        if not 0.0 <= self.strength <= 1.0:
            raise MaaError(f"--strength {self.strength}: must lie in [0, 1]")
        if self.batch_size < 1:
            raise MaaError(f"--batch-size {self.batch_size}: must be at least 1")


@dataclass
class Generated:
    audio: np.ndarray  # float32 16 kHz
    mel: np.ndarray  # (80, frames) log-mel before vocoding
    latent: torch.Tensor  # scaled latent the sampler returned (a split prompt: its parts' latents end to end)
    prompt: str
    seed: int
    parts: list[str] | None = None  # the prompt's parts in time order, when it was split


def _noise(shape, seed: int) -> torch.Tensor:
    """Per-sample noise from its own seeded CPU generator: the same seed gives the same sample
    whatever the batch size or device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))


JOIN_SECONDS = 0.25  # crossfade between the parts of an "A, then B" prompt


@dataclass
class _Job:
    """One clip to sample: a whole prompt, or part k of a prompt split in time (maa.temporal)."""
    index: int  # which prompt
    part: int
    text: str
    seed: int
    frames: int
    init: np.ndarray | None  # audio-to-audio: the init audio under this clip


def _layout(prompts: list[str], seeds: list[int], opts: GenerateOptions, factor: int) -> tuple[list[list[str]], list[_Job], list[int]]:
    """Each prompt's parts, the clips to sample (sorted by length, so equal lengths batch together)
    and each prompt's crossfade in samples. A part's clip covers its equal share of the duration
    plus the crossfade, in samples and in mel frames; part k > 0 gets its own seed, derived from
    the prompt's."""
    frames = frames_for_duration(opts.duration, factor)
    length = samples_for_frames(frames)
    init = None if opts.init_audio is None else np.asarray(opts.init_audio, np.float32)
    parts = [split_sequence(p) if opts.compose else [p] for p in prompts]
    jobs, overlaps = [], []
    for i, (q, seed) in enumerate(zip(parts, seeds)):
        n = len(q)
        ov = min(int(JOIN_SECONDS * SAMPLE_RATE), length // (2 * n)) if n > 1 else 0
        overlaps.append(ov)
        f = frames
        if n > 1:
            span = max(e - s for s, e in (part_span(k, n, length, ov) for k in range(n)))
            span_f = max(e - s for s, e in (part_span(k, n, frames, _frames_of(ov)) for k in range(n)))
            need = max(math.ceil(span / MEL.hop_length) - 1, span_f)  # samples_for_frames(f) >= span
            f = math.ceil(need / factor) * factor
        for k, text in enumerate(q):
            s0 = part_span(k, n, length, ov)[0]
            piece = None if init is None else fit_length(init[s0:], samples_for_frames(f))
            jobs.append(_Job(i, k, text, int(seed) + 1_000_003 * k, f, piece))
    jobs.sort(key=lambda j: j.frames)  # stable: prompt order within a length
    return parts, jobs, overlaps


def _frames_of(samples: int) -> int:
    """A crossfade of `samples` in mel frames (at least one)."""
    return max(1, samples // MEL.hop_length)


def _timesteps(opts: GenerateOptions, ac: torch.Tensor) -> list[int]:
    """The sampler's timesteps; for audio-to-audio only the last `strength` share of them."""
    ts = timesteps(opts.steps, ac, SPACING.get(opts.sampler, "uniform"))
    return sdedit_timesteps(ts, opts.strength) if opts.init_audio is not None else ts


def _batches(jobs: list[_Job], size: int) -> list[list[_Job]]:
    """Consecutive jobs of one length, at most `size` at a time."""
    out: list[list[_Job]] = []
    for j in jobs:
        if out and len(out[-1]) < size and out[-1][0].frames == j.frames:
            out[-1].append(j)
        else:
            out.append([j])
    return out


@torch.no_grad()
def _sample(model: LDMModel, jobs: list[_Job], opts: GenerateOptions, on_step) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Audio, mels and latents of a batch of clips of one length."""
    frames = jobs[0].frames
    c, h, w = model.vae.latent_shape(frames)
    ts = _timesteps(opts, model.ac)
    noise = torch.stack([_noise((c, h, w), j.seed) for j in jobs]).to(model.device)
    x = noise
    if opts.init_audio is not None:  # SDEdit: the init latent, noised to the first timestep
        mel = torch.stack([mel_spectrogram(torch.from_numpy(j.init)) for j in jobs]).to(model.device)
        z_init = model.vae.encode_mel(mel).float() * model.dcfg.scale_factor
        a = float(model.ac[ts[0]]) if ts else 1.0
        x = math.sqrt(a) * z_init + math.sqrt(1 - a) * noise
    if ts:
        den = model_denoiser(model.unet, model.dcfg.prediction, model.ac)
        cond, uncond = model.text.encode([j.text for j in jobs]), model.text.encode([opts.negative] * len(jobs))
        eps = guided(den, (cond.tokens, cond.mask), (uncond.tokens, uncond.mask), opts.guidance)
        x = SAMPLERS[opts.sampler](eps, x, ts, model.ac, eta=opts.eta, generator=torch.Generator().manual_seed(jobs[0].seed),
                                   callback=(lambda i, _x: on_step()) if on_step else None)
    mels = model.vae.decode_latent(x / model.dcfg.scale_factor, frames=frames).float()
    wavs = model.vocoder(mels).float().cpu().numpy()
    n = samples_for_frames(frames)
    return np.stack([fit_length(wv, n) for wv in wavs]), mels.cpu().numpy(), x.cpu()


@torch.no_grad()
def generate(model: LDMModel, prompts: list[str], seeds: list[int], opts: GenerateOptions,
             on_step: Callable[[], None] | None = None) -> list[Generated]:
    """One sample per (prompt, seed) pair, in batches of opts.batch_size. A prompt with order words
    ("A, then B") is sampled part by part and joined (maa.temporal), unless opts.compose is off."""
    opts.check()
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    for p in prompts:
        if not str(p).strip():
            raise MaaError("empty prompt; describe the sound, e.g. \"a dog barks while rain falls\"")
    frames = frames_for_duration(opts.duration, model.vae.factor)
    length = samples_for_frames(frames)
    parts, jobs, overlaps = _layout(prompts, seeds, opts, model.vae.factor)
    done: dict[tuple[int, int], tuple] = {}
    for batch in _batches(jobs, opts.batch_size):
        for j, *result in zip(batch, *_sample(model, batch, opts, on_step)):
            done[j.index, j.part] = result
    keep_input = opts.init_audio is not None and not _timesteps(opts, model.ac)  # strength ~0: nothing to change
    out = []
    for i, (prompt, seed, q) in enumerate(zip(prompts, seeds, parts)):
        got = [done[i, k] for k in range(len(q))]
        if len(q) == 1:
            audio, mel, z = got[0]
        else:  # the parts end to end; the mel (for --png) crossfaded the same way, linearly
            audio = join([g[0] for g in got], length, overlaps[i])
            mel = join([g[1] for g in got], frames, _frames_of(overlaps[i]), equal_power=False)
            z = torch.cat([g[2] for g in got], dim=-1)
        if keep_input:
            audio = fit_length(np.asarray(opts.init_audio, np.float32), length)
        out.append(Generated(audio.astype(np.float32), mel, z, prompt, int(seed), q if len(q) > 1 else None))
    return out


def sampler_calls(opts: GenerateOptions, prompts: list[str], factor: int = 8) -> int:
    """Progress-bar total: sampler steps over all batches (a split prompt samples each part)."""
    ts = _timesteps(opts, alphas_cumprod(DiffusionConfig()))
    _, jobs, _ = _layout(prompts, list(range(len(prompts))), opts, factor)
    return len(ts) * len(_batches(jobs, opts.batch_size))


def save_png(path: Path, mel, title: str = "") -> Path:
    """The log-mel as an image (vmin -5, vmax 1.5, as Make-An-Audio plots them), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maa.io import atomic_path

    fig, ax = plt.subplots(figsize=(max(4.0, mel.shape[-1] / 80), 2.6), dpi=100)
    ax.imshow(mel, origin="lower", aspect="auto", vmin=-5, vmax=1.5, cmap="magma",
              extent=(0, mel.shape[-1] / 62.5, 0, mel.shape[0]))
    ax.set_xlabel("s")
    ax.set_ylabel("mel bin")
    ax.set_title(title[:80], fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
