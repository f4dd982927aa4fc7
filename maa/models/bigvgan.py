"""The official BigVGAN generator (the vocoder Make-An-Audio ships), for loading its weights.

Make-An-Audio's BigVGAN: 16 kHz, 80 mel bands, hop 256. Architecture (BigVGAN v1, the
`bigvgan_args.yaml` of Make-An-Audio):

  conv_pre    Conv1d(80 -> 1536, k 7)
  ups[i][0]   ConvTranspose1d(C/2^i -> C/2^(i+1), kernel k_i, stride u_i, padding (k_i-u_i)/2)
              u = [4, 4, 2, 2, 2, 2] (product 256 = hop), k = [8, 8, 4, 4, 4, 4]
  resblocks   after each upsampler, one AMP block per kernel in [3, 7, 11] (dilations
              [1, 3, 5]); their outputs are averaged. Block type 1: three pairs of
              (activation -> dilated conv -> activation -> conv) with a residual each.
  activation_post -> conv_post Conv1d(24 -> 1, k 7) -> tanh

Every activation is anti-aliased: upsample x2 (Kaiser-windowed sinc, 12 taps) ->
SnakeBeta x + 1/beta * sin^2(alpha x) per channel (alpha, beta stored as logs when
snake_logscale) -> low-pass and downsample x2 (same filter). All convs are weight-normed
in the checkpoint (weight_g / weight_v, or the newer parametrizations.weight.original0/1);
we fold them into plain weights at load time, as remove_weight_norm does.

A folder holds `best_netG.pt` (or another *.pt/*.pth; the state dict sits under the key
'generator') and `args.yml` (or config.json). Loading uses torch.load(weights_only=True).
The mel it expects is Make-An-Audio's, which is maa.core.audio's: log10, 80 bins, hop 256.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from maa.core.checkpoint import assign_weights, uninitialized
from maa.core.config import ConfigMixin, OneOf, Range
from maa.core.errors import MaaError

CONFIG_NAMES = ("args.yml", "args.yaml", "config.json", "config.yml", "config.yaml")
# bigvgan.safetensors: what `maa convert` writes (weight norm folded, filters included)
WEIGHT_NAMES = ("best_netG.pt", "bigvgan_generator.pt", "generator.pt", "g_best.pt", "bigvgan.safetensors")


@dataclass(frozen=True)
class BigVGANConfig(ConfigMixin):
    """BigVGAN's generator settings, as the official args.yml / config.json give them."""
    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_bias_at_final: bool = True
    use_tanh_at_final: bool = True
    sampling_rate: int = 16000
    hop_size: int = 256
    # What the generator was trained on. maa's mels are log10 magnitudes; "norm-db01" is the
    # official image-to-audio recipe's [0, 1] normalised dB, (20 log10(m) - 20 + 100) / 100, which
    # forward() computes from log10 as clamp((log10 + 4) / 5, 0, 1).
    input_domain: str = "log10"

    # the 16 kHz model has 1536 initial channels, 6 upsamplers and 3 kernels; BigVGAN v2's largest fit too
    optional: ClassVar[tuple[str, ...]] = ("input_domain",)  # the image/inpainting models' vocoder input
    limits: ClassVar[dict] = {
        "num_mels": Range(8, 512), "upsample_rates": Range(1, 32, count=(1, 8)),
        "upsample_kernel_sizes": Range(1, 64, count=(1, 8)), "upsample_initial_channel": Range(16, 4096),
        "resblock": OneOf("1", "2"), "resblock_kernel_sizes": Range(1, 63, count=(1, 8)),
        "resblock_dilation_sizes": Range(1, 64, count=(1, 8)), "activation": OneOf("snake", "snakebeta"),
        "sampling_rate": Range(1000, 192_000), "hop_size": Range(1, 4096),
        "input_domain": OneOf("log10", "norm-db01"),
    }

    def check_relations(self) -> None:
        if len(self.upsample_kernel_sizes) != len(self.upsample_rates):
            self.fail("upsample_kernel_sizes", f"{len(self.upsample_kernel_sizes)} kernels for "
                                               f"{len(self.upsample_rates)} upsample rates")
        if len(self.resblock_dilation_sizes) != len(self.resblock_kernel_sizes):
            self.fail("resblock_dilation_sizes", f"{len(self.resblock_dilation_sizes)} dilation lists for "
                                                 f"{len(self.resblock_kernel_sizes)} kernels")
        if self.upsample_initial_channel >> len(self.upsample_rates) < 1:
            self.fail("upsample_initial_channel", f"{self.upsample_initial_channel} cannot be halved "
                                                  f"{len(self.upsample_rates)} times")

    @classmethod
    def from_dict(cls, d: dict, *, file=None, key=None, unknown: str = "ignore") -> "BigVGANConfig":
        """Keys beyond the generator's are ignored by default: args.yml holds the training settings too."""
        file = file if file is not None else getattr(d, "file", None)
        key = key if key is not None else getattr(d, "key", None)
        if isinstance(d, dict) and isinstance(d.get("resblock"), int):  # YAML reads resblock: 1 as a number
            d = {**d, "resblock": str(d["resblock"])}
        return super().from_dict(d, file=file, key=key, unknown=unknown)


# ----------------------------------------------------------------------------- anti-aliased activation


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Low-pass FIR (1, 1, kernel_size): a sinc at `cutoff` (cycles/sample) under a Kaiser window
    whose beta follows Kaiser's formula for the attenuation that `half_width` allows; sums to 1."""
    even = kernel_size % 2 == 0
    half = kernel_size // 2
    atten = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if atten > 50.0:
        beta = 0.1102 * (atten - 8.7)
    elif atten >= 21.0:
        beta = 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    t = (torch.arange(-half, half) + 0.5) if even else (torch.arange(kernel_size) - half)
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """Anti-aliased upsampling: zero-stuffing by transposed conv with a windowed-sinc filter."""
    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio, self.kernel_size = ratio, kernel_size
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # the gain folded into the filter: a power of two scales exactly, so the same bits, one pass less
        w = self.filter * self.ratio if self.ratio & (self.ratio - 1) == 0 else self.filter
        x = F.conv_transpose1d(x, w.expand(c, -1, -1), stride=self.ratio, groups=c)
        x = x if self.ratio & (self.ratio - 1) == 0 else self.ratio * x
        return x[..., self.crop_left:x.shape[-1] - self.crop_right]


class LowPassFilter1d(nn.Module):
    """A windowed-sinc (Kaiser) low-pass filter applied as a strided conv."""
    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int = 12):
        super().__init__()
        self.stride = stride
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class DownSample1d(nn.Module):
    """Anti-aliased downsampling: low-pass, then keep every `ratio`-th sample."""
    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, kernel_size)

    def forward(self, x):
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha * x), per channel; alpha and beta stored as logs when logscale."""

    def __init__(self, channels: int, logscale: bool = True, beta: bool = True):
        super().__init__()
        self.logscale, self.has_beta = logscale, beta
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        if beta:
            self.beta = nn.Parameter(init.clone())

    def forward(self, x):
        a = self.alpha[None, :, None]
        b = self.beta[None, :, None] if self.has_beta else a
        if self.logscale:
            a, b = a.exp(), b.exp()
        if torch.is_grad_enabled() and (x.requires_grad or self.alpha.requires_grad):
            return x + 1.0 / (b + 1e-9) * torch.sin(x * a) ** 2
        # inference: the same operations in place on one temporary (the same bits; 1.1-2.5x faster,
        # these passes over the upsampled signal are a tenth of the vocoder's time on a CPU)
        return torch.mul(x, a).sin_().square_().mul_(1.0 / (b + 1e-9)).add_(x)


class Activation1d(nn.Module):
    """Upsample x2 -> activation -> low-pass + downsample x2 (keeps aliasing out of the band)."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.act = act
        self.upsample = UpSample1d(2, 12)
        self.downsample = DownSample1d(2, 12)

    def forward(self, x):
        return self.downsample(self.act(self.upsample(x)))


def _pad(k: int, d: int) -> int:
    return (k * d - d) // 2


class AMPBlock1(nn.Module):
    """BigVGAN's AMP block (type 1): dilated convs with anti-aliased snake activations, two per dilation."""
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...], act):
        super().__init__()
        self.convs1 = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d)) for d in dilations])
        self.convs2 = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=1, padding=_pad(k, 1)) for _ in dilations])
        self.activations = nn.ModuleList([Activation1d(act(ch)) for _ in range(2 * len(dilations))])

    def forward(self, x):
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations[::2], self.activations[1::2]):
            x = x + c2(a2(c1(a1(x))))
        return x


class AMPBlock2(nn.Module):
    """BigVGAN's AMP block (type 2): one dilated conv per dilation with an anti-aliased activation."""
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...], act):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d)) for d in dilations])
        self.activations = nn.ModuleList([Activation1d(act(ch)) for _ in dilations])

    def forward(self, x):
        for c, a in zip(self.convs, self.activations):
            x = x + c(a(x))
        return x


class BigVGAN(nn.Module):
    """log-mel (B, 80, F) -> waveform (B, 1, F * 256), module names as in the official checkpoint."""

    def __init__(self, cfg: BigVGANConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.activation not in ("snake", "snakebeta"):
            raise MaaError(f"BigVGAN activation {cfg.activation!r}: only snake and snakebeta exist")
        act = lambda ch: SnakeBeta(ch, cfg.snake_logscale, beta=cfg.activation == "snakebeta")  # noqa: E731
        block = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        c0 = cfg.upsample_initial_channel
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(cfg.num_mels, c0, 7, 1, padding=3)
        self.ups = nn.ModuleList([
            nn.ModuleList([nn.ConvTranspose1d(c0 // 2 ** i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))])
        self.resblocks = nn.ModuleList([
            block(c0 // 2 ** (i + 1), k, tuple(d), act)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)])
        ch = c0 // 2 ** len(self.ups)
        self.activation_post = Activation1d(act(ch))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=cfg.use_bias_at_final)

    def forward(self, mel):
        if self.cfg.input_domain == "norm-db01":
            mel = ((mel + 4.0) / 5.0).clamp(0.0, 1.0)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            for layer in up:
                x = layer(x)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(b(x) for b in blocks) / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.cfg.use_tanh_at_final else x.clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------- loading


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace weight-norm pairs by plain weights: w = g * v / ||v||, the norm over all dims but 0.

    Handles the old hooks (`x.weight_g`, `x.weight_v`) and the parametrizations
    (`x.parametrizations.weight.original0` = g, `original1` = v). Other keys pass through.
    """
    out, pairs = {}, {}
    for k, v in state.items():
        if k.endswith(".weight_g") or k.endswith(".weight_v"):
            pairs.setdefault(k[:-len(".weight_g")], {})[k[-1]] = v
        elif k.endswith(".parametrizations.weight.original0") or k.endswith(".parametrizations.weight.original1"):
            base = k[:-len(".parametrizations.weight.original0")]
            pairs.setdefault(base, {})["g" if k.endswith("0") else "v"] = v
        else:
            out[k] = v
    for base, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            raise MaaError(f"{base}: weight-norm tensors come in pairs (g and v); one is missing")
        g, v = gv["g"].float(), gv["v"].float()
        norm = v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
        out[base + ".weight"] = g * v / norm
    return out


def bigvgan_from_state(cfg: BigVGANConfig, state: dict[str, torch.Tensor], source: str | Path) -> BigVGAN:
    """BigVGAN of `cfg` holding `state` (weight norm folded here when the state has it), checked key
    for key and shape for shape (one MaaError naming `source`). Built without a random init and
    with the state's tensors assigned, not copied (memory-mapped files stay mapped); the
    anti-aliasing filters are fixed buffers, computed when the state leaves them out."""
    with uninitialized():
        model = BigVGAN(cfg)
    state = fold_weight_norm(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(".filter")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise MaaError(f"{source}: does not match the BigVGAN in its config "
                       f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise MaaError(f"{source}: {k} has shape {tuple(v.shape)}, the config wants {tuple(own[k].shape)}")
    return assign_weights(model, state, strict=False).eval()


def is_bigvgan_dir(path: Path) -> bool:
    """Whether `path` is an official BigVGAN folder (generator weights and a config file)."""
    path = Path(path)
    return path.is_dir() and any((path / n).exists() for n in WEIGHT_NAMES) and any(
        (path / n).exists() for n in CONFIG_NAMES)


def read_bigvgan_config(path: Path) -> BigVGANConfig:
    """The BigVGANConfig from a folder's args.yml or config.json."""
    path = Path(path)
    for name in CONFIG_NAMES:
        p = path / name
        if p.exists():
            try:
                if p.suffix == ".json":
                    d = json.loads(p.read_text())
                else:
                    import yaml  # noqa: PLC0415  PyYAML: optional, only for an args.yml

                    d = yaml.safe_load(p.read_text())
            except Exception as e:
                raise MaaError(f"{p}: cannot parse the BigVGAN config ({str(e).splitlines()[0]})") from None
            if not isinstance(d, dict):
                raise MaaError(f"{p}: want a mapping of BigVGAN hyper-parameters")
            cfg = BigVGANConfig.from_dict(d, file=p)
            if cfg.num_mels != 80 or math.prod(cfg.upsample_rates) != 256:
                raise MaaError(f"{p}: this BigVGAN takes {cfg.num_mels} mels at hop {math.prod(cfg.upsample_rates)}; "
                               "maa's mels are 80 bins at hop 256 (use the 16 kHz / 80-band model)")
            return cfg
    raise MaaError(f"{path}: no BigVGAN config ({' or '.join(CONFIG_NAMES)}); copy args.yml next to the weights")

