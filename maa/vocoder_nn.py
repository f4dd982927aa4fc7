"""A small neural vocoder for maa's log-mels: a Vocos-style ConvNeXt backbone + iSTFT head.

Input: log10-mels of maa.mel (16 kHz, 80 bins, hop 256), shape (B, 80, F).
Output: (B, F * 256) samples at 16 kHz.

Why Vocos rather than HiFi-GAN: the generator runs at the frame rate (62.5 frames/s)
and leaves the upsampling to an inverse STFT, so it costs a few percent of a HiFi-GAN of
the same quality and trains in reasonable time on a CPU.

  mel -> Conv1d(k=7) -> LayerNorm -> N x ConvNeXt block -> LayerNorm
      -> Linear(dim, n_fft + 2) -> (log-magnitude, phase) per bin -> iSTFT (n_fft 1024, hop 256)

Framing: mel frame i of maa.mel covers samples [i*256 - 384, i*256 + 640) of the clip
(reflect padding of 384, no centring). The iSTFT places its frame i on the same window, so
output sample t lines up with input sample t: wav[:F*256] of a clip resynthesises to itself.

Training (`VocoderTask`, plugs into maa.trainer): a multi-period discriminator (periods
2, 3, 5, 7, 11, HiFi-GAN) and a multi-resolution spectrogram discriminator (BigVGAN's
resolutions), least-squares GAN losses, feature matching, mel L1 (x45, HiFi-GAN's weight)
and an auxiliary multi-resolution STFT loss (Parallel WaveGAN) that makes the first few
thousand CPU steps count. The discriminators can start late (`disc_start`).

Inference (`load_neural_vocoder`) can finish with a few `mel_refine` iterations: per-band
gains that pull the output's mel onto the input mel while keeping the network's phase
(config `refine`; `maa train-vocoder` stores 8). On the demo test split this is what beats
Griffin-Lim; the raw network, trained for minutes on a CPU, does not (benchmarks/bench_vocoder.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from maa.errors import MaaError
from maa.mel import DEFAULT as MEL, LOG_FLOOR, MelConfig, as_mel_batch, mel_basis, mel_spectrogram

KIND = "vocos"
WEIGHTS = "generator"  # RUN/vocoder/generator.safetensors is all inference needs


@dataclass(frozen=True)
class VocoderConfig:
    # generator
    n_mels: int = 80
    dim: int = 256
    intermediate: int = 768
    layers: int = 8
    kernel: int = 7
    n_fft: int = 1024
    hop: int = 256
    sample_rate: int = 16000
    refine: int = 0  # mel_refine iterations applied at inference (stored in config.json; 0: raw output)
    max_log_mag: float = 7.0  # exp(7) ~ 1100: a full-scale sine peaks at 256 with a 1024 Hann window
    # discriminators (training only)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (8, 32, 64, 128)  # HiFi-GAN's (32, 128, 512, 1024) / 4-8: CPU-sized
    mrd_resolutions: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    mrd_channels: int = 8  # BigVGAN's 32 / 4
    # losses
    lambda_mel: float = 45.0
    lambda_stft: float = 2.5
    lambda_fm: float = 2.0
    lambda_adv: float = 1.0
    stft_resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    disc_start: int = 0  # steps of reconstruction-only training before the GAN losses switch on
    lr_half_life: int = 0  # steps over which the learning rate halves (0: constant)
    # data
    segment_frames: int = 32  # mel frames per training crop (32 -> 0.51 s)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VocoderConfig":
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k, v in kw.items():  # JSON turns tuples into lists; keep the dataclass hashable
            if isinstance(v, list):
                kw[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        return cls(**kw)


PRESETS: dict[str, VocoderConfig] = {
    # tests: a few thousand parameters, trains in seconds
    "tiny": VocoderConfig(dim=32, intermediate=64, layers=2, mpd_periods=(2, 3), mpd_channels=(4, 8, 16),
                          mrd_resolutions=((512, 128, 512),), mrd_channels=4, segment_frames=16),
    # the bundled model: ~3.6 M generator parameters, ~7 MB in fp16
    "small": VocoderConfig(),
}


def preset(name: str, **overrides) -> VocoderConfig:
    if name not in PRESETS:
        raise MaaError(f"--preset {name!r}: choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


# ----------------------------------------------------------------------------- generator


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time mixing) -> LayerNorm -> MLP (channel mixing), scaled residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        # small residual scale: deep stacks start close to the identity and train stably
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):  # (B, C, T)
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse STFT whose frame i covers samples [i*hop - (n_fft-hop)/2, ...), as maa.mel frames do.

    spec: complex (B, n_fft/2+1, F) -> (B, F*hop). Overlap-add with squared-window
    normalisation; the edges, covered by fewer frames, are normalised by what covers them.
    """
    b, _, frames = spec.shape
    x = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (B, n_fft, F)
    full = (frames - 1) * hop + n_fft
    y = F.fold(x, output_size=(1, full), kernel_size=(1, n_fft), stride=(1, hop)).reshape(b, full)
    env = F.fold((window ** 2)[None, :, None].expand(1, n_fft, frames), output_size=(1, full),
                 kernel_size=(1, n_fft), stride=(1, hop)).reshape(1, full)
    start = (n_fft - hop) // 2
    y, env = y[:, start:start + frames * hop], env[:, start:start + frames * hop]
    return y / env.clamp(min=1e-8)


def stft_same(wav: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """The STFT that istft_same inverts: maa.mel's framing, (B, F*hop) -> complex (B, n_fft/2+1, F)."""
    pad = (n_fft - hop) // 2
    x = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # F*hop + 768 samples: F frames
    return torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=False, return_complex=True)


def mel_refine(wav: torch.Tensor, log_mel_target: torch.Tensor, iters: int, cfg: MelConfig = MEL) -> torch.Tensor:
    """Pull a waveform's mel onto the target mel, keeping its phase and fine spectral structure.

    Each iteration measures the mel of `wav` in maa.mel's framing, turns the per-band ratio
    target / measured into per-bin gains (the filterbank-weighted mean of the band ratios),
    scales the STFT and inverts it. A Griffin-Lim-like projection, but started from the
    neural vocoder's coherent phase and harmonic detail rather than from noise and the
    pseudo-inverse magnitude.
    """
    basis = mel_basis(cfg, wav.device, wav.dtype)  # (80, bins)
    weight = basis.sum(0)  # bins no band covers keep their gain of 1
    target = torch.pow(10.0, log_mel_target.to(wav.dtype))
    window = torch.hann_window(cfg.n_fft, device=wav.device, dtype=wav.dtype)
    for _ in range(iters):
        spec = stft_same(wav, cfg.n_fft, cfg.hop_length, window)
        measured = torch.matmul(basis, spec.abs()).clamp(min=LOG_FLOOR)
        ratio = target[..., :spec.shape[-1]] / measured
        gain = torch.matmul(basis.T, ratio) / weight.clamp(min=1e-12)[:, None]
        gain = torch.where(weight[:, None] > 1e-12, gain, torch.ones_like(gain))
        wav = istft_same(spec * gain, cfg.n_fft, cfg.hop_length, window)
    return wav


class VocosGenerator(nn.Module):
    """log-mel (B, 80, F) -> waveform (B, F * hop)."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel, padding=cfg.kernel // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            [ConvNeXtBlock(cfg.dim, cfg.intermediate, cfg.kernel, 1.0 / cfg.layers) for _ in range(cfg.layers)])
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.embed(mel)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        h = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()  # (B, n_fft+2, F)
        log_mag, phase = h.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=self.cfg.max_log_mag))
        spec = torch.polar(mag, phase)  # mag * (cos + i sin): phase wraps for free
        return istft_same(spec, self.cfg.n_fft, self.cfg.hop, self.window)


# ----------------------------------------------------------------------------- discriminators


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's sub-discriminator: the waveform folded into (T/p, p), convs along time only.

    A (k, 1) Conv2d over (B, C, T/p, p) is a Conv1d over (B*p, C, T/p); the Conv1d form is
    the same function and several times faster on CPU.
    """

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv1d(chans[i], chans[i + 1], 5, 3, padding=2)) for i in range(len(channels))]
            + [weight_norm(nn.Conv1d(chans[-1], chans[-1], 5, 1, padding=2))])
        self.post = weight_norm(nn.Conv1d(chans[-1], 1, 3, 1, padding=1))

    def forward(self, x):  # (B, T)
        b, t = x.shape
        p = self.period
        if t % p:
            x = F.pad(x, (0, p - t % p), mode="reflect")
        x = x.reshape(b, -1, p).transpose(1, 2).reshape(b * p, 1, -1)  # one sequence per phase
        x, fmap = _conv_stack(self.convs, self.post, x)
        return x.reshape(b, -1), fmap


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """LeakyReLU conv stack + output conv; every activation is kept for feature matching."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        fmap.append(x)
    x = post(x)
    return x, fmap + [x]


class ResolutionDiscriminator(nn.Module):
    """UnivNet/BigVGAN's sub-discriminator: 2-D convs over one STFT magnitude."""

    def __init__(self, resolution: tuple[int, int, int], channels: int):
        super().__init__()
        self.resolution = tuple(resolution)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x):  # (B, T)
        n_fft, hop, win = self.resolution
        x = stft_mag(x, n_fft, hop, win).transpose(1, 2).unsqueeze(1)  # (B, 1, frames, bins)
        x, fmap = _conv_stack(self.convs, self.post, x)
        return x.flatten(1), fmap


class MultiDiscriminator(nn.Module):
    def __init__(self, subs: list[nn.Module]):
        super().__init__()
        self.subs = nn.ModuleList(subs)

    def forward(self, x):
        return [d(x) for d in self.subs]


def multi_period(cfg: VocoderConfig) -> MultiDiscriminator:
    return MultiDiscriminator([PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.mpd_periods])


def multi_resolution(cfg: VocoderConfig) -> MultiDiscriminator:
    return MultiDiscriminator([ResolutionDiscriminator(r, cfg.mrd_channels) for r in cfg.mrd_resolutions])


# ----------------------------------------------------------------------------- losses and metrics


def stft_mag(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| of (B, T) audio (centred, Hann) -> (B, n_fft/2+1, frames)."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def log_mel(wav: torch.Tensor, cfg: MelConfig = MEL) -> torch.Tensor:
    """maa.mel's log-mel without its [-1, 1] clamp, so gradients reach loud generator samples."""
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
    return sum(torch.mean((1 - f) ** 2) for f, _ in fake_out) / len(fake_out)


def feature_matching(real_out, fake_out) -> torch.Tensor:
    loss, n = 0.0, 0
    for (_, fr), (_, ff) in zip(real_out, fake_out):
        for a, b in zip(fr, ff):
            loss = loss + F.l1_loss(b, a.detach())
            n += 1
    return loss / max(n, 1)


# ----------------------------------------------------------------------------- data


class AudioSegments(torch.utils.data.Dataset):
    """Random crops of (segment_frames + 1) * hop samples from manifest rows with `audio`.

    Audio is decoded once and kept in memory (a demo corpus is minutes, not hours);
    clips shorter than a crop are zero-padded. `get(index, rng)` is what maa.trainer calls:
    the crop offset and a random gain (-6..0 dB relative to a peak of 0.95) come from rng.
    """

    def __init__(self, rows: list[dict], segment_frames: int, hop: int = MEL.hop_length, gain: bool = True):
        from maa.audio import load_audio

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


# ----------------------------------------------------------------------------- training task


class VocoderTask:
    """maa.trainer Task: generator + multi-period and multi-resolution discriminators."""

    name = "vocoder"

    def __init__(self, cfg: VocoderConfig):
        self.cfg = cfg
        self.gen = VocosGenerator(cfg)
        self.mpd = multi_period(cfg)
        self.mrd = multi_resolution(cfg)

    def modules(self) -> dict[str, nn.Module]:
        return {WEIGHTS: self.gen, "mpd": self.mpd, "mrd": self.mrd}

    def optimizers(self, tcfg) -> dict[str, torch.optim.Optimizer]:
        from maa.trainer import adamw

        disc = list(self.mpd.parameters()) + list(self.mrd.parameters())
        # kept: train_step steps them itself (the loop only owns their learning rate and state)
        self._opts = {"gen": adamw(self.gen.parameters(), tcfg, betas=(0.8, 0.99)),
                      "disc": adamw(disc, tcfg, betas=(0.8, 0.99))}
        return self._opts

    def _discs(self, wav):
        return self.mpd(wav) + self.mrd(wav)

    def train_step(self, batch, step: int, tcfg) -> dict[str, float]:
        from maa.trainer import autocast, backward_step

        if not hasattr(self, "_opts"):
            raise MaaError("VocoderTask.train_step called before optimizers(); run it through maa.trainer.train")
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
        return {"kind": KIND, "vocoder": self.cfg.to_dict(), "mel": MEL.to_dict(), "weights": f"{WEIGHTS}.safetensors"}


# ----------------------------------------------------------------------------- inference


class NeuralVocoder:
    """Callable: log-mel (B, 80, F) or (80, F) -> waveform (B, F*256) or (F*256,), float32 in [-1, 1].

    `refine` > 0 runs that many mel_refine iterations on the output (off by default).
    """

    def __init__(self, model: nn.Module, kind: str, config: dict, device: torch.device, hop: int = 256,
                 sample_rate: int = 16000, refine: int = 0):
        self.model, self.kind, self.config, self.device = model.eval(), kind, config, device
        self.hop, self.sample_rate, self.refine = hop, sample_rate, refine

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        mel, squeeze = as_mel_batch(mel, self.device)
        wav = self.model(mel).float().reshape(mel.shape[0], -1)
        if self.refine > 0:
            wav = mel_refine(wav, mel, self.refine)
        wav = wav.clamp(-1.0, 1.0)
        return wav[0] if squeeze else wav


def resolve_vocoder_dir(path: str | Path) -> Path:
    """A vocoder folder itself, or a model/run folder that holds vocoder/."""
    path = Path(path)
    if (path / "vocoder" / "config.json").exists():
        return path / "vocoder"
    return path


def load_neural_vocoder(path: str | Path, device: str | torch.device = "cpu", refine: int | None = None) -> NeuralVocoder:
    """Load a vocoder folder written by `maa train-vocoder` (RUN/vocoder/ or RUN), or an official
    BigVGAN folder (best_netG.pt + args.yml / config.json). Weights may be float16 or float32.

    Returns a NeuralVocoder: call it with log-mels (B, 80, F) to get (B, F*256) audio;
    `.kind` ("vocos" or "bigvgan"), `.config`, `.sample_rate`, `.hop` describe it.
    `refine`: mel_refine iterations on the output; None takes the folder's config value.
    """
    from maa.trainer import load_weights

    device = torch.device(device)
    d = resolve_vocoder_dir(path)
    if not d.is_dir():
        raise MaaError(f"{d}: no such vocoder folder; pass RUN/vocoder (from `maa train-vocoder`) or a BigVGAN folder")
    from maa import bigvgan

    if bigvgan.is_bigvgan_dir(d):
        voc = bigvgan.load_bigvgan(d, device)
        voc.refine = refine or 0
        return voc
    cfg_path = d / "config.json"
    if not cfg_path.exists():
        raise MaaError(f"{d}: no config.json; pass a folder written by `maa train-vocoder` or a BigVGAN folder "
                       "(best_netG.pt + args.yml)")
    meta = json.loads(cfg_path.read_text())
    if meta.get("kind") != KIND:
        raise MaaError(f"{cfg_path}: kind {meta.get('kind')!r} is not a vocoder; pass the vocoder/ folder of a run")
    cfg = VocoderConfig.from_dict(meta["vocoder"])
    mel_cfg = meta.get("mel", MEL.to_dict())
    if MelConfig(**mel_cfg) != MEL:
        raise MaaError(f"{cfg_path}: trained on a different mel ({mel_cfg}); maa uses {MEL.to_dict()}")
    gen = VocosGenerator(cfg).to(device)
    load_weights(d, {WEIGHTS: gen})
    return NeuralVocoder(gen, KIND, meta, device, cfg.hop, cfg.sample_rate, cfg.refine if refine is None else refine)


def num_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
