"""Native inpainting with the official Make-An-Audio inpainting model (a folder of kind
"inpaint-ldm", `maa pull make-an-audio-inpaint`): the spans are regenerated from the context
alone, no text, as AudioGPT's `Inpaint` does.

    model = load_inpaint_model("make-an-audio-inpaint")
    wav, info = inpaint_audio(model, wav, [(1.5, 2.5)], seed=55, steps=100)

Recipe (tests/fixtures/official-golden-x2a/README.md, "Inpainting fixtures"):
  1. mel01 in [0, 1] (TRANSFORMS_16000), mask01 (1 = regenerate); masked = (1 - mask01) mel01;
     mel, mask, masked_mel mapped to [-1, 1] (masked frames become -1);
  2. c_latent = a posterior *sample* of encode(masked_mel) (scale factor 1);
  3. mask_ds = the +-1 mask, nearest-downsampled to the latent grid; c = [c_latent, mask_ds];
  4. DDIM (official grid, eta 0) on UNet([x, c]), no guidance;
  5. decoded -> clamp((decoded + 1) / 2, 0, 1), composited with mel01 outside the mask.
The audio outside the spans is the input's own (crossfaded over 10 ms at each edge); inside, the
vocoder's rendering of the composited mel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maa.core.audio import MelConfig, load_audio, mel_basis
from maa.core.checkpoint import load_weights, read_config, resolve_model, sha256_file, uninitialized
from maa.core.device import pick_device
from maa.core.errors import MaaError
from maa.core.version import __version__
from maa.infer.options import read_record, save_wav_with_record
from maa.models.diffusion import DiffusionConfig, alphas_cumprod
from maa.models.inpaint_unet import INPAINT_KIND, InpaintUNet, InpaintUNetConfig
from maa.models.vae import load_vae
from maa.parts.vocoders import for_domain, load_vocoder

OFFICIAL_FRAMES = 848  # AudioGPT pads/crops the input to 848 mel frames (10.85 s)
OFFICIAL_SEED, OFFICIAL_STEPS = 55, 100
METHOD = "native-inpaint"


@dataclass
class InpaintModel:
    """The official inpainting model's parts: 9-channel UNet, VAE, vocoder, its schedule and config."""

    unet: InpaintUNet
    vae: object
    vocoder: object
    dcfg: DiffusionConfig
    ac: torch.Tensor
    config: dict
    root: Path
    device: torch.device


def is_inpaint_model(path) -> bool:
    """Whether the folder (or pulled name) is a native inpainting model."""
    try:
        root = resolve_model(path)
        return json.loads((root / "ldm" / "config.json").read_text()).get("kind") == INPAINT_KIND
    except (OSError, ValueError, RecursionError, AttributeError, MaaError):
        return False  # not one; loading it as a text model says what is wrong


def load_inpaint_model(path, device: str = "cpu", gl_iters: int = 32) -> InpaintModel:
    """Load a native inpainting model folder (a path or a pulled name) on `device`."""
    root = resolve_model(path)
    cfg = read_config(root / "ldm")
    if cfg.get("kind") != INPAINT_KIND:
        raise MaaError(f"{root}: not a native inpainting model (ldm kind {cfg.get('kind')!r}); "
                       "get one with `maa pull make-an-audio-inpaint`")
    dev = torch.device(device)
    with uninitialized():
        unet = InpaintUNet(InpaintUNetConfig.from_dict(cfg["unet"])).to(dev)
    load_weights(root / "ldm", {"unet": unet})
    dcfg = DiffusionConfig.from_dict(cfg["diffusion"])
    vocoder = for_domain(load_vocoder(root, dev, gl_iters), cfg.get("mel_domain", "normdb"))
    return InpaintModel(unet.eval(), load_vae(root / "vae", dev), vocoder, dcfg, alphas_cumprod(dcfg), cfg, root, dev)


def mel01_of_audio(wav: np.ndarray, mel: dict) -> np.ndarray:
    """(80, N // hop) normalised-dB mel in [0, 1] of 16 kHz audio (AudioGPT's TRANSFORMS_16000:
    librosa.stft, centred, zero-padded, Hann; magnitude; Slaney mel 125-7600 Hz). torch.stft and
    maa's filterbank (equal to librosa's to 1e-7) instead of librosa, whose first call costs ~10 s."""

    cfg = MelConfig(sample_rate=mel["sample_rate"], n_fft=mel["n_fft"], win_length=mel["n_fft"],
                    hop_length=mel["hop_length"], n_mels=mel["n_mels"], fmin=mel["fmin"], fmax=mel["fmax"])
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft), center=True,
                      pad_mode="constant", return_complex=True).abs()
    m = torch.log10((mel_basis(cfg) @ spec).clamp(min=mel.get("floor", 1e-5)))
    return ((20 * m - 20 + 100) / 100).clamp(0.0, 1.0)[:, : len(wav) // cfg.hop_length].numpy()


@torch.no_grad()
def condition(model: InpaintModel, mel01: torch.Tensor, mask01: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(B, 5, H/8, W/8) = [posterior sample of the masked mel's latent, the +-1 mask nearest-downsampled]."""
    masked = (1 - mask01) * mel01
    post = model.vae.encode(masked * 2 - 1)
    c_latent = model.dcfg.scale_factor * (post.mean + post.std * noise)
    mask_ds = F.interpolate(mask01 * 2 - 1, size=c_latent.shape[-2:])  # default mode: nearest
    return torch.cat([c_latent, mask_ds], dim=1)


def ddim_grid(model: InpaintModel, steps: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The official DDIM grid range(0, T, T // S) + 1, a_t and a_prev (a_prev of the last step: a_0),
    as float32 values of the float32 schedule (the official sampler's arithmetic)."""
    ac = model.ac.float()
    ts = list(range(0, len(ac), len(ac) // steps))
    ts = [t + 1 for t in ts][:steps]
    a_t = ac[ts]
    a_prev = torch.cat([ac[:1], ac[ts[:-1]]])
    return ts, a_t, a_prev


@torch.no_grad()
def sample(model: InpaintModel, c: torch.Tensor, x_T: torch.Tensor, steps: int, on_step=None) -> torch.Tensor:
    """DDIM, eta 0, no guidance, from x_T, conditioned on c by concatenation."""
    ts, a_ts, a_prevs = ddim_grid(model, steps)
    x = x_T
    for i in reversed(range(len(ts))):
        t = torch.full((x.shape[0],), ts[i], device=x.device, dtype=torch.long)
        e = model.unet(torch.cat([x, c], dim=1), t)
        a_t, a_prev = a_ts[i].to(x.device), a_prevs[i].to(x.device)
        pred_x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * e
        if on_step:
            on_step(x, pred_x0)
    return x


@torch.no_grad()
def inpaint_mel(model: InpaintModel, mel01: torch.Tensor, mask01: torch.Tensor, seed: int = OFFICIAL_SEED,
                steps: int = OFFICIAL_STEPS) -> torch.Tensor:
    """(B, 1, 80, T) mel01 and mask01 (1 = regenerate; T a multiple of 16) -> the inpainted mel01."""
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = mel01.shape
    f = model.vae.factor
    shape = (b, model.unet.cfg.out_channels, h // f, w // f)
    noise = torch.randn(shape, generator=g).to(model.device)
    x_T = torch.randn(shape, generator=g).to(model.device)
    mel01, mask01 = mel01.to(model.device), mask01.to(model.device)
    latent = sample(model, condition(model, mel01, mask01, noise), x_T, steps)
    predicted01 = ((model.vae.decode(latent / model.dcfg.scale_factor) + 1) / 2).clamp(0, 1)
    return (1 - mask01) * mel01 + mask01 * predicted01


def inpaint_audio(model: InpaintModel, wav: np.ndarray, spans: list[tuple[float, float]], seed: int = OFFICIAL_SEED,
                  steps: int = OFFICIAL_STEPS, fade: float = 0.01, min_frames: int = OFFICIAL_FRAMES) -> tuple[np.ndarray, dict]:
    """16 kHz mono audio and spans in seconds -> the audio with the spans regenerated, and what ran.
    The mel is padded with silence to `min_frames` (the official 848: the length the model was
    trained on), or to the next multiple of 16 frames for longer input."""
    mel_cfg = model.config["mel"]
    sr, hop = mel_cfg["sample_rate"], mel_cfg["hop_length"]
    wav = np.asarray(wav, dtype=np.float32)
    n = len(wav)
    frames = max(-(-min_frames // 16) * 16, -(-(n // hop) // 16) * 16)
    padded = np.pad(wav, (0, frames * hop + hop - n))
    mel01 = torch.from_numpy(mel01_of_audio(padded, mel_cfg)[:, :frames])[None, None]
    mask01 = torch.zeros_like(mel01)
    for a, b in spans:
        if not 0 <= a < b or a * sr >= n:
            raise MaaError(f"--inpaint {a:g}-{b:g}: want START-END seconds inside the {n / sr:.2f} s input")
        mask01[..., int(a * sr) // hop: -(-int(min(b * sr, n)) // hop)] = 1
    out01 = inpaint_mel(model, mel01, mask01, seed=seed, steps=steps)
    voiced = model.vocoder(out01[0, 0] * 2 - 1)  # the domain adapter hands BigVGAN clamp((x+1)/2)
    voiced = voiced.detach().float().cpu().numpy().reshape(-1)[:n]
    voiced = np.pad(voiced, (0, n - len(voiced)))
    # keep the input outside the spans; fade between input and rendering at each edge
    w = np.zeros(n, dtype=np.float32)
    ramp = max(1, int(fade * sr))
    for a, b in spans:
        s, e = int(a * sr), min(int(b * sr), n)
        w[s:e] = 1
        w[max(0, s - ramp):s] = np.linspace(0, 1, s - max(0, s - ramp), endpoint=False)
        w[e:min(n, e + ramp)] = np.linspace(1, 0, min(n, e + ramp) - e, endpoint=False)
    out = (1 - w) * wav + w * voiced
    info = {"method": METHOD, "model": str(model.root), "seed": seed, "steps": steps, "frames": frames,
            "spans": [list(s) for s in spans], "vocoder": getattr(model.vocoder, "kind", "?")}
    return out.astype(np.float32), info


def inpaint_file(model_dir, init_audio, spans: list[tuple[float, float]], out, seed: int = OFFICIAL_SEED,
                 steps: int | None = None, device: str = "cpu", gl_iters: int = 32, prompt: str | None = None,
                 overwrite: bool = False, warn=None) -> dict:
    """`maa generate --init-audio X --inpaint A-B --model make-an-audio-inpaint -o OUT`: native
    inpainting of a file into a wav whose record says which method ran; returns the record. A
    prompt is ignored (one warning): this model fills the spans from the surrounding audio."""

    if init_audio is None or not spans:
        raise MaaError(f"--model {model_dir}: a native inpainting model; give --init-audio FILE and --inpaint START-END")
    if out is None or str(out) == "-":
        raise MaaError("native inpainting: give the output wav with -o FILE")
    if prompt and warn:
        warn(f"--model {model_dir} ignores text: it fills --inpaint spans from the surrounding audio, not from "
             f"\"{prompt}\" (text-conditioned inpainting: use a text-to-audio model)")

    # "prompt" is empty: this model takes none (read_record wants the key)
    record = {"prompt": "", "method": METHOD, "model": str(model_dir), "maa": __version__, "init_audio_sha256": sha256_file(init_audio),
              "inpaint": [list(s) for s in spans], "seed": seed, "steps": steps or OFFICIAL_STEPS,
              "prompt_ignored": prompt or None}
    out = Path(out)
    if out.exists() and not overwrite:
        old = read_record(out)
        if old is not None and {k: old.get(k) for k in record} == record:
            return old  # made already with these settings
        raise MaaError(f"{out}: exists (made with other settings or not by maa); pass --overwrite or another -o")
    model = load_inpaint_model(model_dir, device=str(pick_device(device)), gl_iters=gl_iters)
    wav = load_audio(init_audio)
    audio, info = inpaint_audio(model, wav, spans, seed=seed, steps=steps or OFFICIAL_STEPS)
    record.update(vocoder=info["vocoder"], frames=info["frames"], path=str(out))
    save_wav_with_record(out, audio, record)
    return record
