"""The `openclip:` encoder kind: OpenCLIP's text and image towers, each giving ONE L2-normalised
token, so a model trained on captions can be prompted with a picture (Make-An-Audio's
visual-to-audio recipe: the official image-to-audio model was trained on `encode_text` of the
captions and is prompted with `encode_image`).

    enc = load_openclip("ViT-H-14/laion2b_s32b_b79k")    # hub weights (local cache only)
    enc.encode(["a dog barks"])                           # TextEmbedding: tokens (1, 1, D), all-True mask
    enc.encode_images([pil_image])                        # (1, D), unit norm

Specs (after `openclip:`):
  * `DIR`: a folder with config.json (kind "openclip": the open_clip model config, the image
    preprocessing) and openclip.safetensors, as `maa convert make-an-audio` writes for the
    image-to-audio checkpoint (a relative DIR is taken from the model folder);
  * `MODEL/PRETRAINED`: an open_clip model name and pretrained tag, weights from the Hugging Face
    cache (never downloaded here: HF_HUB_OFFLINE);
  * `MODEL/FILE`: the model's weights from a local .safetensors/.bin/.pt file (read with
    weights_only=True);
  * `CONFIG.json/FILE` or `CONFIG.json/random`: an open_clip model config file (the tiny
    test configs), with a file's weights or a fixed seeded random initialisation (tests and
    toy runs: the same tower in every process).

Preprocessing is open_clip's own validation transform (shorter side to the image size, bicubic,
centre crop, OpenAI mean/std unless the config names others). Images reach it as RGB PIL images
that maa.data.visual has checked and converted.

Version: written against open_clip_torch 3.3.0; it reproduces the official fixtures (made with
the official pin 2.0.2) to 6e-7, far inside their 1e-5 tolerance (tests/models/test_openclip.py).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file

from maa.core.checkpoint import strip_prefix, uninitialized
from maa.core.errors import MaaError
from maa.core.safe_pickle import load_pickle_checkpoint
from maa.parts.registry import CACHE_SIZE, TextEmbedding

KIND = "openclip"
WEIGHTS = "openclip.safetensors"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RANDOM = "random"
RANDOM_SEED = 0


def _open_clip():
    # imported on first use only: open_clip pulls in timm and torchvision (about a second)
    try:
        import open_clip  # noqa: PLC0415  open_clip: the optional `vision` extra, imported only when an openclip model loads
    except ImportError:
        raise MaaError("openclip encoder: the package open_clip_torch is not installed; "
                       "pip install 'maa[vision]' (or open_clip_torch)") from None
    return open_clip


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation, as the official FrozenGlobalNormOpenCLIPEmbedder does."""
    return x / x.norm(dim=-1, keepdim=True)


class OpenClipEncoder:
    """Frozen OpenCLIP towers behind the text-encoder interface: `encode(texts)` gives one
    normalised token per caption (cached); `encode_images(images)` the same for images.
    `register(key, vector)` stores a precomputed condition (an image, a video, a mix) under a key
    string, so generation can pass that key where a caption would go."""

    def __init__(self, name: str, model, preprocess, device: str = "cpu", context_length: int = 77):
        self.name = name
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.preprocess = preprocess
        self.max_length = context_length
        self.dim = int(model.text_projection.shape[1])
        self.has_image_tower = getattr(model, "visual", None) is not None
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._registered: dict[str, torch.Tensor] = {}

    def to(self, device) -> "OpenClipEncoder":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return _open_clip().tokenize(texts, context_length=self.max_length)

    def n_tokens(self, text: str) -> int:
        """BPE tokens of `text` plus start and end, before truncation."""
        from open_clip.tokenizer import _tokenizer  # noqa: PLC0415  open_clip: the optional `vision` extra

        return len(_tokenizer.encode(text)) + 2

    def is_truncated(self, text: str) -> bool:
        return self.n_tokens(text) > self.max_length

    @torch.no_grad()
    def encode_text_features(self, texts: list[str]) -> torch.Tensor:
        """(B, D) unit vectors: the EOT row of the text transformer, projected, normalised."""
        return normalise(self.model.encode_text(self.tokenize(texts).to(self.device)).float())

    @torch.no_grad()
    def encode_images(self, images: list) -> torch.Tensor:
        """(B, D) unit vectors of RGB PIL images: preprocessing, class token, projection, normalised."""
        if not self.has_image_tower:
            raise MaaError(f"{self.name}: this OpenCLIP tower has no image encoder (visual weights)")
        px = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        return normalise(self.model.encode_image(px).float())

    def register(self, key: str, vector: torch.Tensor) -> None:
        """Make `encode([key])` return `vector` (D,) as the one-token condition."""
        self._registered[key] = vector.detach().float().reshape(-1).cpu()

    def encode(self, texts) -> TextEmbedding:
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache and t not in self._registered))
        for i in range(0, len(todo), 64):
            chunk = todo[i: i + 64]
            for t, e in zip(chunk, self.encode_text_features(chunk).cpu()):
                self._cache[t] = e
        items = []
        for t in texts:
            if t in self._registered:
                items.append(self._registered[t])
            else:
                self._cache.move_to_end(t)
                items.append(self._cache[t])
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        pooled = torch.stack(items).to(self.device)
        tokens = pooled[:, None, :]
        return TextEmbedding(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=self.device), pooled)


# ----------------------------------------------------------------------------- loading


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MaaError(f"{path}: not a readable open_clip model config JSON ({str(e)[:80]})") from None
    if not isinstance(d, dict) or "vision_cfg" not in d or "text_cfg" not in d or "embed_dim" not in d:
        raise MaaError(f"{path}: not an open_clip model config (wants embed_dim, vision_cfg, text_cfg)")
    return d


def build_model(model_cfg: dict, seed: int | None = None):
    """open_clip's CLIP from a model config dict; `seed` fixes the random initialisation."""
    open_clip = _open_clip()
    cfg = {k: v for k, v in model_cfg.items() if k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")}
    if seed is None:  # every parameter is loaded strictly afterwards: skip drawing the initial weights

        with uninitialized():
            return open_clip.CLIP(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(**cfg)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A flat OpenCLIP state dict from .safetensors or a torch pickle (weights_only, allow-list);
    `module.` prefixes (DDP) and a `state_dict` wrapper are taken off."""

    if not path.is_file():
        raise MaaError(f"{path}: no such OpenCLIP weights file")
    if path.suffix == ".safetensors":

        return load_file(str(path))
    obj = load_pickle_checkpoint(path)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise MaaError(f"{path}: not an OpenCLIP state dict of tensors")
    return strip_prefix(sd)


def load_state(model, sd: dict[str, torch.Tensor], where: str) -> None:
    """Strict load; the non-persistent attn_mask and an absent visual tower are tolerated."""
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items() if k != "attn_mask"}
    if not any(k.startswith("visual.") for k in sd):
        model.visual = None  # a text-only tower (official `delvisual: True`)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        bad = (missing or unexpected or wrong)[:2]
        raise MaaError(f"{where}: the weights do not fit the OpenCLIP config ({len(missing)} missing, "
                       f"{len(unexpected)} unexpected, {len(wrong)} of another shape, e.g. {', '.join(bad)}); "
                       "pass the model config the weights were made with")
    model.load_state_dict(sd)


def preprocess_for(model_cfg: dict, pre: dict | None = None):
    """open_clip's validation transform for this model (size from the vision config)."""
    pre = pre or {}
    size = pre.get("size") or model_cfg["vision_cfg"].get("image_size", 224)
    return _open_clip().image_transform(size, is_train=False, mean=tuple(pre.get("mean") or OPENAI_MEAN),
                                        std=tuple(pre.get("std") or OPENAI_STD))


def _from_folder(folder: Path, spec: str, device: str) -> OpenClipEncoder:
    cfg = _read_folder_config(folder)
    model = build_model(cfg["model"])

    weights = folder / cfg.get("weights", WEIGHTS)
    if not weights.is_file():
        raise MaaError(f"{weights}: missing; the openclip folder {folder} is incomplete (convert again)")
    load_state(model, load_file(str(weights)), f"openclip:{folder}")
    return OpenClipEncoder(spec, model, preprocess_for(cfg["model"], cfg.get("preprocess")), device,
                           cfg["model"]["text_cfg"].get("context_length", 77))


def _read_folder_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        raise MaaError(f"openclip:{folder}: no readable config.json; pass a folder `maa convert` wrote, "
                       "or MODEL/PRETRAINED") from None
    if cfg.get("kind") != KIND:
        raise MaaError(f"{path}: kind {cfg.get('kind')!r} is not {KIND!r}")
    return cfg


def _split(rest: str, names: list[str]) -> tuple[str, str | None]:
    """MODEL[/WEIGHTS]: MODEL is an open_clip name or a .json config path (either may hold '/')."""
    for i in [j for j, c in enumerate(rest) if c == "/"] + [len(rest)]:
        left = rest[:i]
        if left in names or (left.endswith(".json") and Path(left).expanduser().is_file()):
            return left, (rest[i + 1:] or None)
    raise MaaError(f"openclip:{rest}: not a folder, an open_clip model name or a model config .json; "
                   "use openclip:ViT-H-14/laion2b_s32b_b79k, openclip:MODEL/weights.safetensors or openclip:DIR")


def load_openclip(rest: str, device: str = "cpu") -> OpenClipEncoder:
    """The encoder of the spec `openclip:{rest}` (see the module docstring)."""
    spec = f"openclip:{rest}"
    path = Path(rest).expanduser()
    if path.is_dir():
        return _from_folder(path, spec, device)
    open_clip = _open_clip()
    model_name, weights = _split(rest, open_clip.list_models())
    if model_name.endswith(".json"):
        model_cfg = _read_json(Path(model_name).expanduser())
    else:
        model_cfg = open_clip.get_model_config(model_name)
    if weights is None:
        raise MaaError(f"{spec}: no weights named; add /PRETRAINED (e.g. ViT-H-14/laion2b_s32b_b79k), "
                       f"/path/to/weights.safetensors, or /{RANDOM} for a seeded random tower (tests only)")
    if weights == RANDOM:
        model = build_model(model_cfg, seed=RANDOM_SEED)
    elif Path(weights).expanduser().suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt") or "/" in weights:
        model = build_model(model_cfg)
        load_state(model, read_weights(Path(weights).expanduser()), spec)
    else:
        if model_name.endswith(".json"):
            raise MaaError(f"{spec}: a pretrained tag needs an open_clip model name, not a config file; "
                           "pass a weights file instead")
        model = _from_hub(open_clip, model_name, weights, spec)
    return OpenClipEncoder(spec, model, preprocess_for(model_cfg), device,
                           model_cfg["text_cfg"].get("context_length", 77))


def absolute_spec(spec: str) -> str:
    """`openclip:` specs with local paths made absolute, so a model folder trained from one
    working directory finds its encoder from any other (hub names and tags are unchanged)."""
    if not spec.startswith("openclip:"):
        return spec
    rest = spec[len("openclip:"):]
    if Path(rest).expanduser().is_dir():
        return f"openclip:{Path(rest).expanduser().resolve()}"
    model, weights = _split(rest, _open_clip().list_models())
    if model.endswith(".json"):
        model = str(Path(model).expanduser().resolve())
    if weights and weights != RANDOM and Path(weights).expanduser().exists():
        weights = str(Path(weights).expanduser().resolve())
    return f"openclip:{model}" + (f"/{weights}" if weights else "")


def _from_hub(open_clip, name: str, tag: str, spec: str):
    """open_clip's pretrained weights from the local Hugging Face cache only (looked up before
    anything is built, so a missing file costs no time)."""
    tags = [t for m, t in open_clip.list_pretrained() if m == name]
    if tag not in tags:
        raise MaaError(f"{spec}: {tag!r} is not a pretrained tag of {name} (open_clip knows: {', '.join(tags) or 'none'})")
    cfg = open_clip.get_pretrained_cfg(name, tag)
    try:
        path = open_clip.download_pretrained(cfg)
    except Exception:  # offline: huggingface_hub raises one of several error types
        where = cfg.get("hf_hub") or cfg.get("url") or "?"
        raise MaaError(f"{spec}: the weights ({where}) are not in the local Hugging Face cache; on a machine with "
                       f"internet run `python -c \"import open_clip; open_clip.create_model('{name}', "
                       f"pretrained='{tag}')\"` and copy ~/.cache/huggingface here, or pass "
                       f"openclip:{name}/path/to/open_clip_pytorch_model.bin") from None
    if not path:
        raise MaaError(f"{spec}: open_clip found no file for {name}/{tag}; pass openclip:{name}/path/to/weights")
    model = build_model(open_clip.get_model_config(name))
    load_state(model, read_weights(Path(path)), spec)
    return model
