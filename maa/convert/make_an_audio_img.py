"""The official Make-An-Audio image-to-audio release (AudioGPT's `ta54_epoch=000216.ckpt`,
`img2audio_args.yaml`) as a maa model folder: `maa convert make-an-audio` hands a checkpoint
with OpenCLIP towers (`cond_stage_model.model.*`) to this module.

    convert_make_an_audio_image("ta54_epoch=000216.ckpt", "models/maa-img", vocoder="bigvgan_16k/")

What differs from v1 (maa.convert.make_an_audio), as measured on the official-golden-x2a fixtures:
  * UNet (custom_openaimodel): the same key layout; heads from `num_head_channels` (32 per head,
    read from the yaml's unet params) and the one-token condition also added to the timestep
    embedding (UNetConfig.head_channels, context_in_time).
  * Condition: OpenCLIP (ViT-H-14 layout by default, or `--clip-config` for another model
    config) with its text AND image towers, written to clip/ as safetensors; the encoder spec is
    `openclip:clip`, one L2-normalised token.
  * Mel domain: the VAE works on normalised dB in [-1, 1]; log10 = 2.5 x - 1.5 exactly (mel01 =
    (x + 1) / 2 = (20 log10 m + 80) / 100), so the VAE's affine (mel_center -1.5, mel_scale 2.5)
    keeps maa's log10 mels everywhere, and the vocoder's config says it takes the official
    clamp((x + 1) / 2, 0, 1) (BigVGANConfig.input_domain "norm-db01").
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from maa.convert.make_an_audio import (
    CONVERTED_MARK,
    Progress,
    _check_fits,
    _convert_bigvgan,
    _save,
    check_target,
    diffusion_config,
    map_unet,
    map_vae,
    read_state_dict,
    replace_dir,
    split_parts,
    staging_dir,
    unet_config,
    vae_config,
    yaml_unet_params,
)
from maa.core.audio import DEFAULT as MEL
from maa.core.errors import MaaError
from maa.core.io import write_json_atomic, write_text_atomic
from maa.models.bigvgan import read_bigvgan_config
from maa.models.diffusion import LDM_KIND
from maa.models.unet import UNet
from maa.models.vae import SpecVAE
from maa.parts.openclip import KIND as OPENCLIP_KIND
from maa.parts.openclip import OPENAI_MEAN, OPENAI_STD, _open_clip, _read_json, build_model
from maa.parts.openclip import WEIGHTS as CLIP_WEIGHTS
from maa.parts.vocoders import load_bigvgan

CLIP = "cond_stage_model.model."
DEFAULT_CLIP = "ViT-H-14"  # FrozenGlobalNormOpenCLIPEmbedder's default arch (pretrained laion2b_s32b_b79k)
# the [-1, 1] normalised-dB mel as log10: log10 = MEL_SCALE * x + MEL_CENTER
MEL_SCALE, MEL_CENTER = 2.5, -1.5


def is_image_checkpoint(state: dict) -> bool:
    """A Make-An-Audio checkpoint whose condition is OpenCLIP (the image-to-audio variant)."""
    return any(k.startswith(CLIP) for k in state)


def split_image_parts(state: dict[str, torch.Tensor], path="checkpoint") -> dict[str, dict[str, torch.Tensor]]:
    """The image-to-audio state dict by part: unet, vae, clip (the OpenCLIP towers) and buffers."""
    return split_parts(state, path, "clip", CLIP, "image-to-audio")


def yaml_head_channels(path: str | Path | None) -> int:
    """Channels per attention head from img2audio_args.yaml's unet params (num_head_channels);
    32, the release's, without a yaml. A yaml giving num_heads instead is refused (not this UNet)."""
    if path is None:
        return 32
    params = yaml_unet_params(path)
    hc = params.get("num_head_channels", -1)
    if hc in (-1, None):
        raise MaaError(f"{path}: gives no num_head_channels; the image-to-audio UNet has 32 per head "
                       "(pass img2audio_args.yaml)")
    if params.get("use_context_project"):
        raise MaaError(f"{path}: use_context_project is true; only the released layout (no projection) is supported")
    return int(hc)


def clip_model_config(sd: dict[str, torch.Tensor], clip_config: str | Path | None) -> dict:
    """The open_clip model config the towers fit: `clip_config` (a JSON file) or ViT-H-14's,
    checked against every key and shape (on the meta device)."""

    if clip_config is not None:
        cfg, where = _read_json(Path(clip_config)), f"--clip-config {clip_config}"
    else:
        cfg, where = _open_clip().get_model_config(DEFAULT_CLIP), f"OpenCLIP {DEFAULT_CLIP} (the default)"
    with torch.device("meta"):
        model = build_model(cfg)
    if not any(k.startswith("visual.") for k in sd):
        raise MaaError("the checkpoint's OpenCLIP has no visual tower (trained with delvisual: True): "
                       "it cannot take images")
    own = {k: v for k, v in model.state_dict().items() if k != "attn_mask"}
    wrong = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if wrong or set(own) != set(sd):
        raise MaaError(f"the checkpoint's OpenCLIP towers do not fit {where} ({len(wrong)} tensors of another shape, "
                       f"{len(set(own) - set(sd))} missing, {len(set(sd) - set(own))} unexpected); pass the open_clip "
                       "model config they were made with as --clip-config")
    return cfg


def image_configs(parts: dict, head_channels: int, clip_cfg: dict):
    """The UNet and VAE configs of the image-to-audio model (token added to the time embedding, norm-dB VAE)."""
    ucfg = dataclasses.replace(unet_config(parts["unet"]), head_channels=head_channels, context_in_time=True)
    ucfg.check()
    vcfg = dataclasses.replace(vae_config(parts["vae"]), mel_center=MEL_CENTER, mel_scale=MEL_SCALE)
    if clip_cfg["embed_dim"] != ucfg.context_dim:
        raise MaaError(f"OpenCLIP embed_dim {clip_cfg['embed_dim']} differs from the UNet's context width {ucfg.context_dim}")
    return ucfg, vcfg


def _readme(ckpt: Path, digest: str, voc_digest: str | None, half: bool) -> str:
    voc = ("* `vocoder/`: BigVGAN (16 kHz, 80 mels), fed clamp((x + 1) / 2, 0, 1) as the official code does\n"
           if voc_digest else "* no vocoder/: Griffin-Lim; convert again with `--vocoder bigvgan_16k/`\n")
    return f"""# Make-An-Audio image-to-audio, converted

Converted by `maa convert make-an-audio` from the image-to-audio checkpoint of the official
Make-An-Audio code in AudioGPT (`text_to_audio/Make_An_Audio/`, config `img2audio_args.yaml`;
weights published in the Hugging Face Space DiffusionSpeech/Make_An_Audio_img, `useful_ckpts/`).

* source: `{ckpt.name}`, {ckpt.stat().st_size:,} bytes, sha256 `{digest}`
* `ldm/`: the UNet (32 channels per head, the condition added to the time embedding too),
  the schedule checked against maa's, `scale_factor` from the checkpoint.
* `vae/`: the autoencoder, on normalised dB in [-1, 1] (log10 = 2.5 x - 1.5).
* `clip/`: OpenCLIP text and image towers from the checkpoint (`cond_stage_model.model.*`).
{voc}* weights: {"float16" if half else "float32, as released"}.

Licences: the AudioGPT code is MIT; OpenCLIP ViT-H-14 laion2b_s32b_b79k is MIT; check the Space's
terms before redistributing these weights.

Generate with: `maa generate --image photo.jpg -o out.wav --model <this folder> --sampler ddim --steps 100`
"""


def convert_make_an_audio_image(ckpt: str | Path, out: str | Path, vocoder: str | Path | None = None,
                                config: str | Path | None = None, clip_config: str | Path | None = None,
                                half: bool = False, progress: Progress = None,
                                state: dict | None = None, digest: str | None = None) -> Path:
    """Write a maa model folder (ldm/, vae/, clip/, [vocoder/], README.md) from the image-to-audio
    checkpoint; whole or not at all, like convert_make_an_audio."""

    ckpt, out = Path(ckpt), Path(out)
    voc_dir = check_target(out, vocoder)
    head_channels = yaml_head_channels(config)
    voc_cfg = None if voc_dir is None else dataclasses.replace(read_bigvgan_config(voc_dir), input_domain="norm-db01")
    if state is None:
        state, digest = read_state_dict(ckpt, progress)
    parts = split_image_parts(state, ckpt)
    del state
    clip_cfg = clip_model_config(parts["clip"], clip_config)
    ucfg, vcfg = image_configs(parts, head_channels, clip_cfg)
    dcfg = diffusion_config(parts["buffers"])
    unet, vae = map_unet(parts["unet"]), map_vae(parts["vae"], vcfg)
    clip = {k: v for k, v in parts["clip"].items() if k != "attn_mask"}
    with torch.device("meta"):
        _check_fits("UNet", UNet(ucfg).state_dict(), unet)
        _check_fits("VAE", SpecVAE(vcfg).state_dict(), vae)

    tmp = staging_dir(out)
    try:
        _save(tmp / "ldm" / "unet.safetensors", unet, half)
        write_json_atomic(tmp / "ldm" / "config.json", {
            "kind": LDM_KIND, "unet": ucfg.to_dict(), "diffusion": dcfg.to_dict(), "text_encoder": "openclip:clip",
            "max_length": 77, "latent_channels": ucfg.in_channels, "mel": MEL.to_dict(), "weights": "unet.safetensors",
            # its VAE's output layer takes in the official normalised-dB range (log10 = 2.5 x - 1.5), so
            # the model speaks log10 like maa's own; its vocoder config feeds BigVGAN the official input
            "mel_domain": "log10", "official_mel": "norm-db [-1, 1], folded into the VAE (log10 = 2.5 x - 1.5)"})
        _save(tmp / "vae" / "vae.safetensors", vae, half)
        write_json_atomic(tmp / "vae" / "config.json", {
            "kind": "maa-vae", "vae": vcfg.to_dict(), "mel": MEL.to_dict(),
            "latent": {"channels": vcfg.z_channels, "downsample": vcfg.factor}})
        _save(tmp / "clip" / CLIP_WEIGHTS, clip, half)
        write_json_atomic(tmp / "clip" / "config.json", {
            "kind": OPENCLIP_KIND, "model": clip_cfg, "weights": CLIP_WEIGHTS,
            "preprocess": {"size": clip_cfg["vision_cfg"].get("image_size", 224), "mean": list(OPENAI_MEAN),
                           "std": list(OPENAI_STD), "resize": "shorter side, bicubic; centre crop"}})
        voc_digest = None
        if voc_dir is not None:
            voc_digest = _convert_bigvgan(voc_dir, voc_cfg, tmp / "vocoder", half)
            load_bigvgan(tmp / "vocoder")
        write_json_atomic(tmp / CONVERTED_MARK, {
            "format": "make-an-audio-image", "checkpoint": ckpt.name, "sha256": digest, "half": half,
            "unet_head_channels": head_channels, "vocoder_sha256": voc_digest})
        write_text_atomic(tmp / "README.md", _readme(ckpt, digest, voc_digest, half))
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
