"""Training the spectrogram VAE: losses, the trainer Task, evaluation and spectrogram plots.

Generator loss (per step, on a batch of mel crops x):
    L1(x, G(z)) + kl_weight * KL(q(z|x) || N(0, I)) / pixels
        + [step >= disc_start] * (lambda * hinge_g(D(G(z))) + fm_weight * FM)
The KL is summed over latent elements and divided by the mel's pixel count: the same balance
as latent-diffusion's summed-NLL + 1e-6 * summed-KL, with the L1 kept per pixel. lambda is
disc_weight, times (when `adaptive`) the latent-diffusion adaptive weight
||grad L1|| / ||grad hinge_g|| at the decoder's last layer, which keeps the adversarial term
at the reconstruction term's scale whatever the model size. The discriminator (hinge loss)
trains from disc_start on. Not ported: the learned log-variance on the reconstruction term
(with one global scalar it only rescales the loss, which AdamW ignores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL_DEFAULT
from maa.core.audio import MEL_MIN
from maa.core.checkpoint import load_weights, num_params, read_config
from maa.core.config import ConfigMixin, Range
from maa.core.device import describe
from maa.core.errors import MaaError
from maa.core.io import atomic_path
from maa.core.manifest import split_holdout
from maa.core.progress import Reporter
from maa.data.mels import FullMels, MelCrops, band_means, mel_rows
from maa.models.vae import SpecVAE, VAEConfig, load_vae
from maa.models.vae import preset as get_preset
from maa.train.discriminators import (
    DiscConfig,
    MultiWindowDiscriminator,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
)
from maa.train.loop import TrainConfig, autocast, backward_step, resolve_device, seed_everything, train
from maa.train.run import RunOptions, begin


@dataclass
class VAELossConfig(ConfigMixin):
    """The VAE's loss settings: KL and adversarial weights, the step the discriminator starts, feature matching, Adam betas."""
    kl_weight: float = 1e-6
    disc_weight: float = 0.5
    disc_start: int = 50_001  # the paper's step; `maa train-vae` defaults to half the run
    adaptive: bool = True
    fm_weight: float = 0.0  # feature matching off by default, as in the paper
    betas: tuple[float, float] = (0.5, 0.9)

    limits: ClassVar[dict] = {"kl_weight": Range(0.0, 1e6), "disc_weight": Range(0.0, 1e6), "disc_start": Range(0, 10**12),
                              "fm_weight": Range(0.0, 1e6), "betas": Range(0.0, 0.9999)}


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last: torch.nn.Parameter) -> torch.Tensor:
    """||d rec / d last|| / ||d g / d last||, clamped to [0, 1e4] and detached."""
    rg = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    gg = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    return (rg.norm() / (gg.norm() + 1e-4)).clamp(0.0, 1e4).detach()


class VAETask:
    """The VAE + multi-window discriminator as a trainer Task (weights land in RUN/vae/)."""

    name = "vae"

    def __init__(self, vae: SpecVAE, disc: MultiWindowDiscriminator, loss: VAELossConfig,
                 frames: int, band_mean: np.ndarray | None = None, decoder_only: bool = False):
        self.vae, self.disc, self.loss, self.frames = vae, disc, loss, frames
        self.band_mean = None if band_mean is None else torch.as_tensor(band_mean, dtype=torch.float32)
        # decoder-only fine-tuning keeps the encoder, hence the latent space an LDM was trained on
        self.decoder_only = decoder_only
        if decoder_only:
            self.vae.encoder.requires_grad_(False)
        self.gen_params = [p for p in self.vae.parameters() if p.requires_grad]

    def modules(self):
        return {"vae": self.vae, "disc": self.disc}

    def optimizers(self, cfg: TrainConfig):
        b = tuple(self.loss.betas)
        self.opt_g = torch.optim.AdamW(self.gen_params, lr=cfg.lr, betas=b, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=b, weight_decay=cfg.weight_decay)
        return {"gen": self.opt_g, "disc": self.opt_d}

    def train_step(self, batch, step: int, cfg: TrainConfig) -> dict[str, float]:
        x = batch
        lc = self.loss
        gan = step >= lc.disc_start
        out: dict[str, float] = {}
        self.disc.requires_grad_(False)  # the generator step must not leave gradients in D
        with autocast(cfg):
            rec, post = self.vae(x)
            rec = rec.float()
            rec_loss = (x - rec).abs().mean()
            kl = post.kl().float().mean() / x[0].numel()
            loss = rec_loss + lc.kl_weight * kl
            if gan:
                starts = self.disc.starts(x.shape[-1])
                if lc.fm_weight > 0:
                    real, fake = self.disc(x, rec, starts=starts)
                    fm = feature_matching_loss(real, fake)
                    loss = loss + lc.fm_weight * fm
                    out["fm"] = fm.item()
                else:
                    (fake,) = self.disc(rec, starts=starts)
                g_loss = hinge_g_loss(fake)
                w = (adaptive_weight(rec_loss, g_loss, self.vae.decoder.conv_out.weight)
                     if lc.adaptive else torch.tensor(1.0))
                loss = loss + lc.disc_weight * w * g_loss
                out.update(g_loss=g_loss.item(), d_weight=float(w))
        self.disc.requires_grad_(True)
        out["grad_norm"] = backward_step(loss, self.opt_g, self.gen_params, cfg)
        out.update(loss=loss.item(), rec_l1=rec_loss.item(), kl=kl.item(), post_std=post.std.mean().item())
        if gan:
            with autocast(cfg):
                real, fake = self.disc(x, rec.detach())
                d_loss = hinge_d_loss(real, fake)
            backward_step(d_loss, self.opt_d, self.disc.parameters(), cfg)
            out.update(d_loss=d_loss.item(),
                       logits_real=float(sum(l.detach().float().mean() for l, _ in real) / len(real)),
                       logits_fake=float(sum(l.detach().float().mean() for l, _ in fake) / len(fake)))
        return out

    def validate(self, batches, step: int, out_dir: Path) -> dict[str, float]:
        l1, base, n = 0.0, 0.0, 0
        firsts, first_batch = [], []  # (input, reconstruction) pairs to plot
        for x in batches:
            rec = self.vae.reconstruct(x[:, 0]).float()
            l1 += (rec - x[:, 0]).abs().sum().item()
            if self.band_mean is not None:
                base += (x[:, 0] - self.band_mean.to(x.device)[:, None]).abs().sum().item()
            n += x[:, 0].numel()
            pairs = [(x[j, 0].cpu().numpy(), rec[j].cpu().numpy()) for j in range(min(len(x), 4))]
            firsts.append(pairs[0])
            first_batch = first_batch or pairs
        metrics = {"mel_l1": l1 / n}
        if self.band_mean is not None:
            metrics["band_mean_l1"] = base / n
        # the first clip of each batch (batches span the set), topped up from the first batch
        shown = (firsts + first_batch[1:])[:4]
        if shown:
            panels = [(f"input {i}", a) for i, (a, _) in enumerate(shown)]
            panels += [(f"reconstruction {i}", b) for i, (_, b) in enumerate(shown)]
            plot_mels(Path(out_dir) / f"step_{step:07d}.png", panels, cols=len(shown),
                      title=f"step {step}: held-out mel L1 {metrics['mel_l1']:.3f}")
        return metrics

    def export_config(self) -> dict:
        return {"kind": "maa-vae", "vae": self.vae.cfg.to_dict(), "disc": self.disc.cfg.to_dict(),
                "loss": self.loss.to_dict(), "frames": self.frames, "mel": MEL_DEFAULT.to_dict(),
                "latent": {"channels": self.vae.cfg.z_channels, "downsample": self.vae.factor}}


def plot_mels(path: Path, panels: list[tuple[str, np.ndarray]], cols: int = 4, title: str | None = None) -> None:
    """Log-mels in a grid (rows of `cols`), colour scale fixed at [-5, 1.5], written atomically."""
    from matplotlib.figure import Figure  # noqa: PLC0415  matplotlib: slow import, kept off this module's import

    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.0 * rows), dpi=100)
    for i, (name, m) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(m, origin="lower", aspect="auto", vmin=MEL_MIN, vmax=1.5, cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


@torch.no_grad()
def evaluate(vae: SpecVAE, dataset, device="cpu", batch_size: int = 8, band_mean: np.ndarray | None = None,
             progress=None) -> dict:
    """Mean absolute log-mel error of whole-clip reconstructions (posterior mean) over a FullMels set.

    Also the error of the per-band-mean baseline: `band_mean` if given, else the evaluated set's
    own band means (an optimistic baseline, since it has seen the answers).
    """
    vae.eval()
    items = [dataset[i] for i in range(len(dataset))]
    if band_mean is None:
        cat = np.concatenate([m.numpy() for _, m in items], axis=1)
        band_mean = cat.mean(1)
    bm = torch.as_tensor(band_mean, dtype=torch.float32)
    by_len: dict[int, list] = {}
    for clip_id, m in items:
        by_len.setdefault(m.shape[-1], []).append((clip_id, m))
    err, base, pixels, per_clip = 0.0, 0.0, 0, []
    for group in by_len.values():
        for s in range(0, len(group), batch_size):
            chunk = group[s:s + batch_size]
            x = torch.stack([m for _, m in chunk]).to(device)
            rec = vae.reconstruct(x).float().cpu()
            x = x.cpu()
            e = (rec - x).abs()
            err += e.sum().item()
            base += (x - bm[:, None]).abs().sum().item()
            pixels += x.numel()
            per_clip += [{"id": cid, "mel_l1": float(e[j].mean()), "frames": int(x.shape[-1])}
                         for j, (cid, _) in enumerate(chunk)]
            if progress:
                progress(len(chunk))
    return {"mel_l1": err / max(pixels, 1), "band_mean_l1": base / max(pixels, 1), "clips": len(items),
            "frames": pixels // (bm.numel() or 1), "per_clip": per_clip}


# ----------------------------------------------------------------------------- `maa train-vae`


@dataclass(kw_only=True)
class VAETrainOptions(RunOptions):
    """Everything `maa train-vae` takes; the defaults are the command's."""

    manifest: str
    preset: str | None = None  # None: small (a resumed run keeps its own)
    steps: int = 20000
    batch_size: int = 8
    lr: float = 1.5e-4
    frames: int = 624
    val_fraction: float = 0.05
    kl_weight: float = 1e-6
    disc_weight: float = 0.5
    disc_start: int | None = None  # None: half of steps
    adaptive: bool = True
    fm_weight: float = 0.0
    windows: str = "32,64,128"
    disc_channels: int | None = None
    decoder_only: bool = False


def _init_configs(init: Path, vae_cfg, disc_cfg):
    """--init DIR: the architecture (and discriminator) of a trained VAE folder, or a one-line error."""

    if not (init / "config.json").exists() or not (init / "vae.safetensors").exists():
        raise MaaError(f"--init {init}: not a VAE folder (config.json + vae.safetensors from `maa train-vae`)")
    saved = read_config(init)
    if "vae" not in saved:
        raise MaaError(f"--init {init}: config.json has no 'vae' section; pass the vae/ folder of a run")
    return VAEConfig.from_dict(saved["vae"]), DiscConfig.from_dict(saved["disc"]) if "disc" in saved else disc_cfg


def train_vae(o: VAETrainOptions, ui: Reporter | None = None) -> dict:
    """`maa train-vae`: the run-folder rule, --init / the run's own architecture, mel crops, the loop."""

    ui = ui or Reporter()
    if o.frames % 8:
        raise MaaError(f"--frames {o.frames}: must be a multiple of 8 (the VAE downsamples time by 8)")
    try:
        win = tuple(int(w) for w in o.windows.split(","))
    except ValueError:
        raise MaaError(f"--windows {o.windows!r}: want frame counts separated by commas, e.g. 32,64,128") from None
    if o.decoder_only and not o.init:
        raise MaaError("--decoder-only: pass --init DIR, the trained VAE whose decoder to fine-tune")
    vae_cfg = get_preset(o.preset or "small")
    disc_cfg = DiscConfig(windows=win, channels=o.disc_channels or {"base": 128, "tiny": 32}.get(o.preset or "small", 64))
    run = begin(o, ui, seed=False)
    out_dir, init = Path(o.out_dir), Path(o.init) if o.init else None
    own = out_dir / "vae" / "config.json"
    if run.start.resume and own.exists():
        saved = read_config(out_dir / "vae")  # the run's own architecture wins over --preset and --init
        vae_cfg, disc_cfg = VAEConfig.from_dict(saved["vae"]), DiscConfig.from_dict(saved["disc"])
        if o.preset and vae_cfg != get_preset(o.preset):
            ui.warn(f"{own}: resuming with the run's own architecture, not --preset {o.preset}")
        init = None
    elif init:
        vae_cfg, disc_cfg = _init_configs(init, vae_cfg, disc_cfg)

    rows = mel_rows(o.manifest)
    if o.val:
        val_rows = mel_rows(o.val)
    else:
        rows, val_rows = split_holdout(rows, o.val_fraction)
    cache = (len(rows) + len(val_rows)) * 80 * o.frames * 2 < 2 * 1024**3  # keep mels in RAM below ~2 GB
    loss = VAELossConfig(kl_weight=o.kl_weight, disc_weight=o.disc_weight, adaptive=o.adaptive, fm_weight=o.fm_weight,
                         disc_start=o.steps // 2 if o.disc_start is None else o.disc_start)
    if o.disc_weight <= 0:
        loss.disc_start = 10**12

    seed_everything(o.seed)
    train_set = MelCrops(rows, frames=o.frames, cache=cache)
    val_set = MelCrops(val_rows, frames=o.frames, cache=cache) if val_rows else None
    bm = band_means(MelCrops(rows[:: max(1, len(rows) // 500)], frames=o.frames, cache=False))  # a spread sample
    vae_model, disc_model = SpecVAE(vae_cfg), MultiWindowDiscriminator(disc_cfg)
    if init:
        load_weights(init, {"vae": vae_model})
        if (init / "disc.safetensors").exists():
            load_weights(init, {"disc": disc_model})
    task = VAETask(vae_model, disc_model, loss, o.frames, band_mean=bm, decoder_only=o.decoder_only)
    if run.main:
        ui.info(f"train-vae: {len(rows)} training mels, {len(val_rows)} held out; VAE {num_params(task.vae) / 1e6:.2f} M "
                f"parameters, discriminator {num_params(task.disc) / 1e6:.2f} M; GAN from step {loss.disc_start}; "
                f"device: {run.describe_device()}")
    final = train(task, train_set, val_set, o.train_config(run.device), resume=run.start.resume)
    if run.main:
        ui.info(f"train-vae: step {final['step']}, model in {out_dir / 'vae'}" + (
            f"; held-out mel L1 {final['val_mel_l1']:.3f} (per-band mean: "
            f"{final.get('val_band_mean_l1', float('nan')):.3f})" if "val_mel_l1" in final else ""))
    return final


def eval_vae(manifest: str, vae_dir: Path | None, device: str = "auto", batch_size: int = 8,
             ui: Reporter | None = None, quiet: bool = False) -> dict:
    """`maa train-vae --eval-only`: the reconstruction error of a VAE folder on a mel manifest
    (summary fields plus `per_clip`)."""

    ui = ui or Reporter()
    if vae_dir is None:
        raise MaaError("--eval-only: pass the model folder with --vae DIR (or -o RUN to use RUN/vae)")
    dev = resolve_device(device)
    vae = load_vae(vae_dir, dev)
    rows = mel_rows(manifest)
    with ui.bar(len(rows), "eval", disable=quiet) as bar:
        res = evaluate(vae, FullMels(rows), dev, batch_size=batch_size, progress=bar.update)
    res["vae"] = str(vae_dir)
    ui.info(f"eval: {res['clips']} clips, mel L1 {res['mel_l1']:.4f} (per-band mean of the same clips: "
            f"{res['band_mean_l1']:.4f}); device: {describe(dev)}")
    return res
