"""Training the Vocos-style vocoder: audio segments, the losses and the Task (plugs into maa.train.loop)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maa.core.audio import DEFAULT as MEL
from maa.core.audio import LOG_FLOOR, MelConfig, load_audio, mel_basis, mel_spectrogram
from maa.core.checkpoint import load_weights, num_params
from maa.core.errors import MaaError
from maa.core.progress import Reporter
from maa.data.formats import read_manifest
from maa.models.vocos import VOCOS_KIND, WEIGHTS, VocoderConfig, VocosGenerator
from maa.models.vocos import preset as get_preset
from maa.parts.vocoders import resolve_vocoder_dir
from maa.train.discriminators import multi_period, multi_resolution, stft_mag
from maa.train.loop import adamw, autocast, backward_step, train
from maa.train.run import RunOptions, begin, read_part_config


def log_mel(wav: torch.Tensor, cfg: MelConfig = MEL) -> torch.Tensor:
    """maa.core.audio's log-mel without its [-1, 1] clamp, so gradients reach loud generator samples."""
    n = wav.shape[-1]
    frames = max(n // cfg.hop_length - 1, 1)
    x = F.pad(wav.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
    window = torch.hann_window(cfg.win_length, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                      center=False, return_complex=True)
    spec = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-14)  # |.| with a finite gradient at 0
    mel = torch.matmul(mel_basis(cfg, x.device, x.dtype), spec)
    return torch.log10(mel.clamp(min=LOG_FLOOR))[..., :frames]


def mel_l1(wav_hat: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
    """L1 between the log-mels of two waveforms."""
    return F.l1_loss(log_mel(wav_hat), log_mel(wav))


def mr_stft_distance(wav_hat: torch.Tensor, wav: torch.Tensor,
                     resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))) -> torch.Tensor:
    """Multi-resolution STFT distance (Parallel WaveGAN): mean over resolutions of
    spectral convergence ||S - S^||_F / ||S||_F (over the whole batch, so a silent crop
    cannot blow it up) + L1 of log magnitudes (floored at 1e-5, as the mels are).

    The default resolutions are the common evaluation ones (auraloss / PWG defaults); the
    training loss uses a different set (VocoderConfig.stft_resolutions).
    """
    total = wav.new_zeros(())
    for n_fft, hop, win in resolutions:
        s, s_hat = stft_mag(wav, n_fft, hop, win), stft_mag(wav_hat, n_fft, hop, win)
        sc = torch.linalg.norm(s - s_hat) / torch.linalg.norm(s).clamp(min=1e-5)
        total = total + sc + F.l1_loss(torch.log(s_hat.clamp(min=LOG_FLOOR)), torch.log(s.clamp(min=LOG_FLOOR)))
    return total / len(resolutions)


def disc_loss(real_out, fake_out) -> torch.Tensor:
    """Least-squares GAN: real -> 1, fake -> 0."""
    loss = 0.0
    for (r, _), (f, _) in zip(real_out, fake_out):
        loss = loss + torch.mean((1 - r) ** 2) + torch.mean(f ** 2)
    return loss / len(real_out)


def gen_adv_loss(fake_out) -> torch.Tensor:
    """The generator's least-squares adversarial loss, averaged over discriminators."""
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake_out) / len(fake_out)


def feature_matching(real_out, fake_out) -> torch.Tensor:
    """L1 between the discriminators' features on real and generated audio, averaged."""
    loss, n = 0.0, 0
    for (_, fr), (_, ff) in zip(real_out, fake_out):
        for a, b in zip(fr, ff):
            loss = loss + F.l1_loss(b, a.detach())
            n += 1
    return loss / max(n, 1)


class AudioSegments(torch.utils.data.Dataset):
    """Random crops of (segment_frames + 1) * hop samples from manifest rows with `audio`.

    Audio is decoded once and kept in memory (a demo corpus is minutes, not hours);
    clips shorter than a crop are zero-padded. `get(index, rng)` is what maa.train.loop calls:
    the crop offset and a random gain (-6..0 dB relative to a peak of 0.95) come from rng.
    """

    def __init__(self, rows: list[dict], segment_frames: int, hop: int = MEL.hop_length, gain: bool = True):
        self.seg = (segment_frames + 1) * hop
        self.gain = gain
        self.clips = [load_audio(r["audio"]) for r in rows]
        self.ids = [r.get("id", str(i)) for i, r in enumerate(rows)]

    def __len__(self):
        return len(self.clips)

    def crop(self, index: int, offset: int | None, gain_db: float | None) -> dict:
        x = self.clips[index]
        if len(x) > self.seg:
            x = x[offset:offset + self.seg] if offset is not None else x[(len(x) - self.seg) // 2:][:self.seg]
        else:
            x = np.pad(x, (0, self.seg - len(x)))
        if gain_db is not None:
            peak = float(np.abs(x).max())
            if peak > 1e-4:
                x = x * (0.95 * 10 ** (gain_db / 20) / peak)
        return {"audio": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))}

    def get(self, index: int, rng: np.random.Generator) -> dict:
        x = self.clips[index]
        offset = None
        if len(x) > self.seg:
            # a few tries for a crop that is not silence (many clips have quiet tails)
            best = -1.0
            for _ in range(4):
                o = int(rng.integers(0, len(x) - self.seg + 1))
                rms = float(np.sqrt(np.mean(x[o:o + self.seg] ** 2)))
                if rms > best:
                    offset, best = o, rms
                if rms > 1e-2:
                    break
        return self.crop(index, offset, float(rng.uniform(-6.0, 0.0)) if self.gain else None)

    def __getitem__(self, index: int) -> dict:  # validation: the middle of the clip, no gain change
        return self.crop(index, None, None)


class VocoderTask:
    """maa.train.loop Task: generator + multi-period and multi-resolution discriminators."""

    name = "vocoder"

    def __init__(self, cfg: VocoderConfig):
        self.cfg = cfg
        self.gen = VocosGenerator(cfg)
        self.mpd = multi_period(cfg)
        self.mrd = multi_resolution(cfg)

    def modules(self) -> dict[str, nn.Module]:
        return {WEIGHTS: self.gen, "mpd": self.mpd, "mrd": self.mrd}

    def optimizers(self, tcfg) -> dict[str, torch.optim.Optimizer]:
        disc = list(self.mpd.parameters()) + list(self.mrd.parameters())
        # kept: train_step steps them itself (the loop only owns their learning rate and state)
        self._opts = {"gen": adamw(self.gen.parameters(), tcfg, betas=(0.8, 0.99)),
                      "disc": adamw(disc, tcfg, betas=(0.8, 0.99))}
        return self._opts

    def _discs(self, wav):
        return self.mpd(wav) + self.mrd(wav)

    def train_step(self, batch, step: int, tcfg) -> dict[str, float]:
        if not hasattr(self, "_opts"):
            raise MaaError("VocoderTask.train_step called before optimizers(); run it through maa.train.loop.train")
        cfg = self.cfg
        if cfg.lr_half_life > 0:  # the loop resets lr from base_lr every step, so this never compounds
            for opt in self._opts.values():
                for g in opt.param_groups:
                    g["lr"] = g["lr"] * 0.5 ** (step / cfg.lr_half_life)
        x = batch["audio"]
        frames = x.shape[-1] // cfg.hop - 1
        mel = mel_spectrogram(x)  # the input: exactly what `maa mel` writes
        y = x[:, :frames * cfg.hop]
        with autocast(tcfg):
            y_hat = self.gen(mel).float()
        gan = step >= cfg.disc_start
        out = {}
        if gan:
            with autocast(tcfg):
                d_loss = disc_loss(self._discs(y), self._discs(y_hat.detach()))
            backward_step(d_loss, self._opts["disc"], list(self.mpd.parameters()) + list(self.mrd.parameters()), tcfg)
            out["d_loss"] = d_loss.item()
        l_mel = mel_l1(y_hat, y)
        l_stft = mr_stft_distance(y_hat, y, cfg.stft_resolutions) if cfg.lambda_stft > 0 else y.new_zeros(())
        loss = cfg.lambda_mel * l_mel + cfg.lambda_stft * l_stft
        if gan:
            with autocast(tcfg):
                real, fake = self._discs(y), self._discs(y_hat)
                l_adv, l_fm = gen_adv_loss(fake), feature_matching(real, fake)
            loss = loss + cfg.lambda_adv * l_adv + cfg.lambda_fm * l_fm
            out.update(adv=l_adv.item(), fm=l_fm.item())
        backward_step(loss, self._opts["gen"], self.gen.parameters(), tcfg)
        out.update(loss=loss.item(), mel_l1=l_mel.item(), stft=l_stft.item())
        return out

    def validate(self, batches, step: int, out_dir: Path) -> dict[str, float]:
        mels, stfts = [], []
        for b in batches:
            x = b["audio"]
            frames = x.shape[-1] // self.cfg.hop - 1
            y = x[:, :frames * self.cfg.hop]
            y_hat = self.gen(mel_spectrogram(x)).float()
            mels.append(float(mel_l1(y_hat, y)))
            stfts.append(float(mr_stft_distance(y_hat, y)))
        return {"mel_l1": float(np.mean(mels)), "mr_stft": float(np.mean(stfts))}

    def export_config(self) -> dict:
        return {"kind": VOCOS_KIND, "vocoder": self.cfg.to_dict(), "mel": MEL.to_dict(), "weights": f"{WEIGHTS}.safetensors"}



# ----------------------------------------------------------------------------- `maa train-vocoder`


def _vocoder_config(folder: Path, what: str) -> VocoderConfig:
    return read_part_config(folder, what, VOCOS_KIND, "vocoder", VocoderConfig, "vocoder")


@dataclass(kw_only=True)
class VocoderTrainOptions(RunOptions):
    """Everything `maa train-vocoder` takes; the defaults are the command's."""

    manifest: str
    preset: str = "small"
    steps: int = 20000
    batch_size: int = 8
    segment_frames: int | None = None  # None: the preset's
    lr: float = 2e-4
    lr_half_life: int = 0
    disc_start: int | None = None  # None: a third of steps
    refine: int = 8
    grad_clip: float = 100.0


def train_vocoder(o: VocoderTrainOptions, ui: Reporter | None = None) -> dict:
    """`maa train-vocoder`: the run-folder rule, the preset (or --init / the run's own config), audio
    crops, the loop. Returns the final metrics."""

    ui = ui or Reporter()
    overrides = {"disc_start": o.disc_start if o.disc_start is not None else o.steps // 3,
                 "lr_half_life": o.lr_half_life, "refine": o.refine}
    if o.segment_frames is not None:
        overrides["segment_frames"] = o.segment_frames
    cfg = get_preset(o.preset, **overrides)
    run = begin(o, ui)
    out_dir, init = Path(o.out_dir), None
    if run.start.resume and (out_dir / "vocoder" / "config.json").exists():
        cfg = _vocoder_config(out_dir / "vocoder", str(out_dir / "vocoder"))  # the run's own settings win
    elif o.init is not None:
        init = resolve_vocoder_dir(o.init)  # its architecture; the schedule options still apply
        cfg = replace(_vocoder_config(init, f"--init {o.init}"), **overrides)

    rows = read_manifest(o.manifest)
    if o.val:
        val_rows = read_manifest(o.val)
    else:  # the last 5% of the training rows, at most 32
        n_val = min(32, max(1, len(rows) // 20)) if len(rows) > 1 else 0
        rows, val_rows = rows[:len(rows) - n_val], rows[len(rows) - n_val:]
    if not rows:
        raise MaaError(f"{o.manifest}: no training clips")
    ui.info(f"train-vocoder: decoding {len(rows)} training and {len(val_rows)} validation clips")
    train_set = AudioSegments(rows, cfg.segment_frames)
    # validation crops are 4x longer: a steadier figure, still cheap
    val_set = AudioSegments(val_rows, cfg.segment_frames * 4, gain=False) if val_rows else None

    task = VocoderTask(cfg)
    if init is not None:
        load_weights(init, {k: m for k, m in task.modules().items() if (init / f"{k}.safetensors").exists()})
    if run.main:
        ui.info(f"train-vocoder: {f'from {o.init}' if init is not None else f'preset {o.preset}'}, generator "
                f"{num_params(task.gen) / 1e6:.2f} M parameters, GAN from step {cfg.disc_start}; writing "
                f"{out_dir / 'vocoder'}; device: {run.describe_device()}")
    final = train(task, train_set, val_set, o.train_config(run.device, max_val_batches=4), resume=run.start.resume)
    shown = {k: round(v, 4) for k, v in final.items() if isinstance(v, float) and k in
             ("mel_l1", "stft", "val_mel_l1", "val_mr_stft")}
    if run.main:
        ui.info(f"train-vocoder: done at step {final.get('step')}; {shown}; weights in {out_dir / 'vocoder'}")
    return final
