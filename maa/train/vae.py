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

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from maa.core.io import atomic_path
from maa.core.mel import DEFAULT as MEL_DEFAULT
from maa.core.mel import MEL_MIN
from maa.models.vae import SpecVAE
from maa.train.discriminators import (
    MultiWindowDiscriminator,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
)
from maa.train.loop import TrainConfig, autocast, backward_step


@dataclass
class VAELossConfig:
    kl_weight: float = 1e-6
    disc_weight: float = 0.5
    disc_start: int = 50_001  # the paper's step; `maa train-vae` defaults to half the run
    adaptive: bool = True
    fm_weight: float = 0.0  # feature matching off by default, as in the paper
    betas: tuple[float, float] = (0.5, 0.9)

    def to_dict(self) -> dict:
        return asdict(self)


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
    from matplotlib.figure import Figure

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

