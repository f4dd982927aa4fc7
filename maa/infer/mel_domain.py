"""Mel domains of model folders, and the vocoder each one needs.

maa's own models and the official v1 release decode to log10 mels (maa.core.audio). AudioGPT's
Make-An-Audio models (ta40multi text-to-audio, image-to-audio, inpaint7) decode to the
normalised-dB mel mapped to [-1, 1]: mel01 = clip((20 log10(max(mag, 1e-5)) - 20 + 100) / 100, 0, 1),
x = 2 mel01 - 1 (AudioGPT's TRANSFORMS_16000), and hand the vocoder clamp((x + 1) / 2, 0, 1).
ldm/config.json's "mel_domain" says which ("log10" when absent).

Between the two: log10(mag) = 5 mel01 - 4 = 2.5 x - 1.5 (inside the clip range), which is what
Griffin-Lim (it inverts log10 mels) gets for a normalised-dB model.
"""

from __future__ import annotations

import torch

from maa.core.errors import MaaError

LOG10, NORMDB = "log10", "normdb"


def _check(domain: str | None) -> None:
    if domain not in (None, LOG10, NORMDB):
        raise MaaError(f"ldm/config.json: mel_domain {domain!r} is unknown; want {LOG10!r} or {NORMDB!r}")


def normdb_to_log10(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] normalised-dB mel -> log10 magnitude mel (clipped like the official vocoder input)."""
    return 2.5 * x.clamp(-1.0, 1.0) - 1.5


def log10_to_normdb(mel: torch.Tensor) -> torch.Tensor:
    """log10 magnitude mel -> the [-1, 1] normalised-dB mel (the clip of TRANSFORMS_16000 included)."""
    return ((mel + 4.0) / 2.5 - 1.0).clamp(-1.0, 1.0)


class DomainVocoder:
    """A vocoder fed from a normalised-dB model: the neural vocoder gets clamp((x+1)/2, 0, 1) (what
    the official BigVGAN takes), Griffin-Lim the equivalent log10 mel. Attributes pass through."""

    def __init__(self, inner, domain: str):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "domain", domain)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)

    def __call__(self, mel):
        mel = torch.as_tensor(mel)
        if getattr(self._inner, "kind", None) == "griffin-lim":
            return self._inner(normdb_to_log10(mel))
        return self._inner(((mel + 1.0) / 2.0).clamp(0.0, 1.0))


def for_domain(vocoder, domain: str | None):
    """The vocoder as a model of `domain` needs it (unchanged for log10)."""
    _check(domain)
    return vocoder if domain in (None, LOG10) else DomainVocoder(vocoder, domain)


def to_model_domain(log10_mel: torch.Tensor, domain: str | None) -> torch.Tensor:
    """maa's log10 mel of an input clip (audio-to-audio, inpainting) in the domain the model's VAE takes."""
    _check(domain)
    return log10_mel if domain in (None, LOG10) else log10_to_normdb(log10_mel)
