"""The official Make-An-Audio inpainting model (AudioGPT's `inpaint7_epoch00047.ckpt`, config
`configs/inpaint/txt2audio_args.yaml`) as a maa model folder for native inpainting.

    convert_inpaint("inpaint7_epoch00047.ckpt", "models/inpaint", vocoder="bigv16k53w/")

What the checkpoint holds (tests/fixtures/official-golden-x2a/README.md): `model.diffusion_model.*`
(openaimodel UNet, 9 input channels, no cross-attention), `first_stage_model.*` (the AutoencoderKL,
as in v1), the same VAE tensors again as `cond_stage_model.*` (the condition *is* the first stage;
ignored), 12 schedule buffers (linear 0.0015-0.0205; no `scale_factor`: 1.0).

The folder: ldm/ (config.json kind "inpaint-ldm" + unet.safetensors with the official names,
maa.models.inpaint_unet), vae/ (mapped as for v1), [vocoder/], README.md, and the mel domain
"normdb" with its front end (TRANSFORMS_16000: fmin 125, fmax 7600, librosa's centred STFT).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from maa.convert.make_an_audio import (
    check_target,
    staging_dir,
    CONVERTED_MARK,
    VAE,
    Progress,
    _check_fits,
    _convert_bigvgan,
    replace_dir,
    _save,
    map_vae,
    read_state_dict,
    vae_config,
    yaml_num_heads,
)
from maa.core.errors import MaaError
from maa.core.io import write_json_atomic, write_text_atomic
from maa.models.bigvgan import read_bigvgan_config
from maa.models.diffusion import DiffusionConfig, alphas_cumprod
from maa.models.inpaint_unet import INPAINT_KIND, InpaintUNet, inpaint_unet_config
from maa.parts.vocoders import load_bigvgan
from maa.models.vae import SpecVAE

UNET = "model.diffusion_model."
BETAS = (0.0015, 0.0205)
# AudioGPT's TRANSFORMS_16000 (ldm/data/extract_mel_spectrogram.py), the inpainting model's front end
NORMDB_MEL = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "n_mels": 80, "fmin": 125.0, "fmax": 7600.0,
              "center": True, "power": 1, "floor": 1e-5, "db": "clip((20 log10(max(mag, floor)) - 20 + 100) / 100, 0, 1)"}


def is_inpaint_state(state: dict) -> bool:
    """The official inpainting checkpoint: a 9-channel UNet input, plain attention blocks, no text tower."""
    w = state.get(UNET + "input_blocks.0.0.weight")
    return (w is not None and w.dim() == 4 and w.shape[1] == 9
            and not any(k.startswith("cond_stage_model.caption_encoder.") for k in state)
            and not any(".transformer_blocks." in k for k in state if k.startswith(UNET)))


def split_inpaint(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """The inpainting checkpoint's state dict -> (UNet, VAE without its training loss, top-level buffers)."""
    unet = {k[len(UNET):]: v for k, v in state.items() if k.startswith(UNET)}
    vae = {k[len(VAE):]: v for k, v in state.items() if k.startswith(VAE) and not k.startswith(VAE + "loss.")}
    buffers = {k: v for k, v in state.items() if "." not in k}
    return unet, vae, buffers


def inpaint_diffusion_config(buffers: dict[str, torch.Tensor]) -> DiffusionConfig:
    """Linear (in sqrt beta) 0.0015-0.0205, checked against the file; eps; scale 1; the official grid."""
    cfg = DiffusionConfig(beta_start=BETAS[0], beta_end=BETAS[1], scale_factor=float(buffers.get("scale_factor", 1.0)),
                          cond_drop=0.0, timestep_grid="official")
    if "alphas_cumprod" in buffers:
        ac = buffers["alphas_cumprod"].double()
        cfg.num_steps = len(ac)
        diff = float((alphas_cumprod(cfg) - ac).abs().max())
        if diff > 1e-6:
            raise MaaError(f"checkpoint schedule: alphas_cumprod differs from the linear 0.0015-0.0205 schedule by "
                           f"{diff:.2g}; not the Make-An-Audio inpainting schedule")
    return cfg


def _readme(ckpt: Path, digest: str, voc_digest: str | None, half: bool) -> str:
    voc = (f"* `vocoder/`: BigVGAN 16 kHz (generator sha256 `{voc_digest}`), fed `clamp((x+1)/2, 0, 1)`.\n" if voc_digest
           else "* no vocoder/: Griffin-Lim on the equivalent log10 mel.\n")
    return f"""# Make-An-Audio inpainting (inpaint7), converted

Converted by `maa convert make-an-audio` from AudioGPT's Make-An-Audio inpainting checkpoint
(Space DiffusionSpeech/Make_An_Audio_inpaint, `useful_ckpts/inpaint7_epoch00047.ckpt`).

* source: `{ckpt.name}`, {ckpt.stat().st_size:,} bytes, sha256 `{digest}`
* `ldm/`: the 9-channel UNet ([x, masked-mel latent, mask]; no text, no guidance), official names;
  schedule linear 0.0015-0.0205, official DDIM grid.
* `vae/`: the spectrogram autoencoder (`first_stage_model.*`).
* mel domain: normalised dB in [-1, 1] (`mel_domain: normdb`, AudioGPT's TRANSFORMS_16000 front end).
{voc}* weights: {"float16" if half else "float32, as released"}.

## Licence

unknown: the Space states none. The Make-An-Audio code is MIT (Text-to-Audio/Make-An-Audio).

Use: `maa generate --init-audio scene.wav --inpaint 1.5-2.5 --model <this folder> -o out.wav`
"""


def convert_inpaint(ckpt: str | Path, out: str | Path, vocoder: str | Path | None = None,
                    config: str | Path | None = None, half: bool = False, progress: Progress = None,
                    state: dict | None = None, digest: str | None = None) -> Path:
    """Write the inpainting model folder (ldm/, vae/, [vocoder/], README.md); whole or not at all."""
    ckpt, out = Path(ckpt), Path(out)
    voc_dir = check_target(out, vocoder)
    num_heads = yaml_num_heads(config)
    voc_cfg = read_bigvgan_config(voc_dir) if voc_dir is not None else None
    if state is None:
        state, digest = read_state_dict(ckpt, progress)
    if not is_inpaint_state(state):
        raise MaaError(f"{ckpt}: not the Make-An-Audio inpainting checkpoint (want a 9-channel UNet without text)")
    unet_sd, vae_sd, buffers = split_inpaint(state)
    del state
    ucfg, vcfg, dcfg = inpaint_unet_config(unet_sd, num_heads), vae_config(vae_sd), inpaint_diffusion_config(buffers)
    vae = map_vae(vae_sd, vcfg)
    with torch.device("meta"):
        _check_fits("inpainting UNet", InpaintUNet(ucfg).state_dict(), unet_sd)
        _check_fits("VAE", SpecVAE(vcfg).state_dict(), vae)

    tmp = staging_dir(out)
    try:
        _save(tmp / "ldm" / "unet.safetensors", unet_sd, half)
        write_json_atomic(tmp / "ldm" / "config.json", {
            "kind": INPAINT_KIND, "unet": ucfg.to_dict(), "diffusion": dcfg.to_dict(), "mel_domain": "normdb",
            "mel": NORMDB_MEL, "latent_channels": ucfg.out_channels, "weights": "unet.safetensors"})
        _save(tmp / "vae" / "vae.safetensors", vae, half)
        write_json_atomic(tmp / "vae" / "config.json", {
            "kind": "maa-vae", "vae": vcfg.to_dict(), "mel": NORMDB_MEL,
            "latent": {"channels": vcfg.z_channels, "downsample": vcfg.factor}})
        voc_digest = None
        if voc_dir is not None:
            voc_digest = _convert_bigvgan(voc_dir, voc_cfg, tmp / "vocoder", half)
            load_bigvgan(tmp / "vocoder")
        write_json_atomic(tmp / CONVERTED_MARK, {"format": "make-an-audio-inpaint", "checkpoint": ckpt.name,
                                                 "sha256": digest, "half": half, "unet_num_heads": num_heads,
                                                 "vocoder_sha256": voc_digest})
        write_text_atomic(tmp / "README.md", _readme(ckpt, digest, voc_digest, half))
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
