"""Log-mel -> waveform: one callable interface, two implementations.

    voc = load_vocoder(model_dir, device)   # neural vocoder in model_dir/vocoder/ if there, else Griffin-Lim
    wav = voc(mel)                          # (B, 80, F) log10-mels -> (B, F * 256) samples at 16 kHz

Griffin-Lim (fast variant, Perraudin et al. 2013, momentum 0.99) in torch, so it runs batched
on the GPU: the magnitude comes from the mel's least-squares inverse (maa.mel.mel_to_linear),
the phase from alternating projections. Framing matches maa.mel: mel frame i is the window
[i*256 - 384, i*256 + 640), centred on sample i*256 + 128, and F frames give F * 256 samples
(like the neural vocoder in maa.vocoder_nn, so the two are interchangeable).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maa.mel import DEFAULT as MEL, MelConfig, as_mel_batch, mel_to_linear


class GriffinLim:
    kind = "griffin-lim"

    def __init__(self, n_iter: int = 32, momentum: float = 0.99, device: str | torch.device = "cpu",
                 cfg: MelConfig = MEL, seed: int = 0):
        self.n_iter, self.momentum, self.cfg, self.seed = n_iter, momentum, cfg, seed
        self.device = torch.device(device)
        self.sample_rate, self.hop = cfg.sample_rate, cfg.hop_length

    def _stft(self, x, window):
        c = self.cfg
        return torch.stft(x, c.n_fft, c.hop_length, c.win_length, window, center=True, return_complex=True)

    def _istft(self, spec, window, length):
        c = self.cfg
        return torch.istft(spec, c.n_fft, c.hop_length, c.win_length, window, center=True, length=length)

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        mel, squeeze = as_mel_batch(mel, self.device)
        c, frames = self.cfg, mel.shape[-1]
        mag = mel_to_linear(mel, c)  # (B, n_fft/2 + 1, F)
        window = torch.hann_window(c.win_length, device=self.device)
        length = frames * c.hop_length
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        angles = torch.polar(torch.ones(mag.shape), 2 * np.pi * torch.rand(mag.shape, generator=g)).to(self.device)
        prev = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            rebuilt = self._stft(self._istft(mag * angles, window, length), window)[..., :frames]
            t = rebuilt - (self.momentum / (1 + self.momentum)) * prev  # fast GLA, as parametrised in torchaudio
            angles = t / t.abs().clamp(min=1e-16)
            prev = rebuilt
        wav = self._istft(mag * angles, window, length)
        # centre of frame i: i*hop here, i*hop + (win - 2*pad)/2 = i*hop + 128 in maa.mel's framing
        shift = c.win_length // 2 - c.pad
        wav = F.pad(wav, (shift, 0))[..., :length].clamp(-1.0, 1.0)
        return wav[0] if squeeze else wav


def has_neural_vocoder(model_dir: str | Path | None) -> bool:
    return model_dir is not None and (Path(model_dir) / "vocoder" / "config.json").exists()


def load_vocoder(model_dir: str | Path | None = None, device: str | torch.device = "cpu", gl_iters: int = 32):
    """The neural vocoder stored in model_dir/vocoder/ if there is one, else Griffin-Lim.

    Both are callables mapping log-mels (B, 80, F) to (B, F * 256) waveforms with `.kind`,
    `.sample_rate` and `.hop`.
    """
    if has_neural_vocoder(model_dir):
        from maa.vocoder_nn import load_neural_vocoder

        return load_neural_vocoder(Path(model_dir) / "vocoder", device)
    return GriffinLim(n_iter=gl_iters, device=device)
