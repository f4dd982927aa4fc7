"""LoRA adapters for the UNet: small low-rank updates of chosen layers, trained while the base stays frozen.

An adapter holds, for each target layer W (a Linear or a Conv2d), two small weights: `down`
(rank x in, or a rank-channel conv with W's kernel) and `up` (out x rank, zero at the start), and
adds `scale * alpha / rank * up(down(x))` to the layer's output. The base UNet is never changed:
adapters are switched on with forward hooks (`attach`), so several stack (each with its scale),
scale 0 leaves the base model's function untouched, and `merge_into` folds them into the weights
(`maa lora merge`).

An adapter folder (`maa train-ldm --init MODEL --lora RANK` writes RUN/lora/):

    lora.safetensors   the down/up weights, keys "<layer>.down.weight" / "<layer>.up.weight"
    lora.json          {"kind": "maa-lora", rank, alpha, targets, base: {model, unet_sha256}, data: {...}}

The base model is named by the sha256 of its UNet weights (ldm/unet.safetensors): an adapter only
makes sense on the weights it was trained against, so loading it on another base is refused
unless forced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maa.core.errors import MaaError
from maa.models.unet import GEGLU, Attention, ResBlock
from maa.core.checkpoint import load_safetensors
from safetensors.torch import save_file
from maa.core.io import atomic_path, write_json_atomic
from maa.core.checkpoint import sha256_file
import shutil

LORA_KIND = "maa-lora"
WEIGHTS = "lora.safetensors"
META = "lora.json"
TARGETS = ("attn", "ff", "conv")
DEFAULT_TARGETS = ("attn", "ff")


def parse_targets(text: str | list | tuple) -> tuple[str, ...]:
    """'attn,ff' -> ('attn', 'ff'); one line naming the bad part otherwise."""
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if str(p).strip()]
    bad = [p for p in parts if p not in TARGETS]
    if bad or not parts:
        raise MaaError(f"--lora-targets {','.join(map(str, parts)) or repr(text)}: want a comma-separated list of "
                       f"{', '.join(TARGETS)} (e.g. attn,ff)")
    return tuple(t for t in TARGETS if t in parts)


def target_layers(unet: nn.Module, targets: tuple[str, ...]) -> dict[str, nn.Module]:
    """The UNet's layers an adapter with these targets changes, by name: attention's q/k/v/out
    (self and cross), the feed-forward's two linears, the residual blocks' 3x3 convolutions."""
    kinds = {"attn": (Attention, ("q", "k", "v", "out")), "ff": (GEGLU, ("proj", "out")),
             "conv": (ResBlock, ("conv1", "conv2"))}
    out = {}
    for name, m in unet.named_modules():
        for t in targets:
            cls, children = kinds[t]
            if isinstance(m, cls):
                for c in children:
                    out[f"{name}.{c}"] = getattr(m, c)
    return out


class LoRALayer(nn.Module):
    """up(down(x)) shaped like `base`'s output; `up` starts at zero, so a new adapter changes nothing."""

    def __init__(self, base: nn.Module, rank: int):
        super().__init__()
        if isinstance(base, nn.Linear):
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                  base.dilation, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA: cannot adapt a {type(base).__name__}")
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.up(self.down(x))

    def delta(self) -> torch.Tensor:
        """The change of the base weight this layer stands for (before alpha / rank and scale)."""
        up, down = self.up.weight.float(), self.down.weight.float()
        if down.dim() == 2:
            return up @ down
        return torch.einsum("or,rikl->oikl", up[:, :, 0, 0], down)


def _key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot hold dots


class LoRA(nn.Module):
    """One adapter: a LoRALayer per target layer of a UNet; `scaling` = alpha / rank."""

    def __init__(self, layers: dict[str, nn.Module], rank: int, alpha: float | None = None,
                 targets: tuple[str, ...] = DEFAULT_TARGETS):
        super().__init__()
        check_rank(rank)
        self.rank, self.alpha, self.targets = int(rank), float(alpha if alpha is not None else rank), tuple(targets)
        self.names = list(layers)
        self.layers = nn.ModuleDict({_key(n): LoRALayer(m, rank) for n, m in layers.items()})

    @classmethod
    def for_unet(cls, unet: nn.Module, rank: int, alpha: float | None = None,
                 targets: tuple[str, ...] = DEFAULT_TARGETS) -> "LoRA":
        layers = target_layers(unet, targets)
        if not layers:
            raise MaaError(f"--lora-targets {','.join(targets)}: the UNet has no such layers")
        return cls(layers, rank, alpha, targets)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights under their file keys, "<layer>.down.weight" / "<layer>.up.weight"."""
        return {f"{n}.{part}.weight": getattr(self.layers[_key(n)], part).weight.detach().cpu().contiguous()
                for n in self.names for part in ("down", "up")}

    def state_dict(self, *args, **kwargs):  # the file keys, also in trainer_state.pt and the EMA
        sd = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        return {prefix + _unkey(k[len(prefix):]): v for k, v in sd.items()}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict({_rekey(k): v for k, v in state_dict.items()}, strict=strict, assign=assign)

    def meta(self) -> dict:
        return {"kind": LORA_KIND, "rank": self.rank, "alpha": self.alpha, "targets": list(self.targets),
                "weights": WEIGHTS}


def _unkey(k: str) -> str:
    # "layers.<a__b>.down.weight" -> "<a.b>.down.weight"
    body = k.removeprefix("layers.")
    name, _, rest = body.partition(".")
    return f"{name.replace('__', '.')}.{rest}"


def _rekey(k: str) -> str:
    name, part, w = k.rsplit(".", 2)
    return f"layers.{_key(name)}.{part}.{w}"


def check_rank(rank) -> int:
    """`rank` when it is a whole number >= 1; one line naming --lora otherwise."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise MaaError(f"--lora {rank}: the rank must be a whole number >= 1 (e.g. --lora 8)")
    return rank


# ----------------------------------------------------------------------------- using adapters


class Attached:
    """Hook handles of adapters attached to a UNet; `remove()` restores the base function."""

    def __init__(self):
        self.handles = []

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def attach(unet: nn.Module, lora: LoRA, scale: float = 1.0, into: Attached | None = None) -> Attached:
    """Add `scale * alpha / rank * up(down(x))` to each target layer's output (a forward hook; the
    UNet's weights are untouched). Scale 0 attaches nothing, so the base function stays bit for bit."""
    into = into or Attached()
    if scale == 0:
        return into
    factor = float(scale) * lora.scaling
    for n in lora.names:
        try:
            base = unet.get_submodule(n)
        except AttributeError:
            raise MaaError(f"LoRA layer {n}: not in this UNet (the adapter was made for another architecture)") from None
        layer = lora.layers[_key(n)]

        def hook(module, args, out, layer=layer):
            return out + factor * layer(args[0])

        into.handles.append(base.register_forward_hook(hook))
    return into


@torch.no_grad()
def merge_into(unet: nn.Module, lora: LoRA, scale: float = 1.0) -> None:
    """Fold `scale` x the adapter into the UNet's weights (in place)."""
    for n in lora.names:
        base = unet.get_submodule(n)
        d = lora.layers[_key(n)].delta() * (float(scale) * lora.scaling)
        base.weight.add_(d.to(base.weight.dtype))


# ----------------------------------------------------------------------------- folders and specs


@dataclass
class AdapterSpec:
    """`DIR[:SCALE]` of --lora."""
    path: Path
    scale: float = 1.0

    def to_dict(self) -> dict:
        return {"path": str(self.path), "scale": self.scale}


def parse_spec(text: str, flag: str = "--lora") -> AdapterSpec:
    """'runs/mine' or 'runs/mine:0.5' -> AdapterSpec; one line for a bad scale or a missing folder."""
    text = str(text)
    path, scale = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and "/" not in tail:
        try:
            scale = float(tail)
        except ValueError:
            raise MaaError(f"{flag} {text}: the scale after ':' must be a number, e.g. {head}:0.8") from None
        if scale != scale or scale in (float("inf"), float("-inf")):
            raise MaaError(f"{flag} {text}: the scale must be a finite number, e.g. {head}:0.8")
        path = head
    folder = adapter_dir(path, flag)
    return AdapterSpec(folder, scale)


def adapter_dir(path: str | Path, flag: str = "--lora") -> Path:
    """The folder holding lora.json: PATH itself or PATH/lora (a RUN of `maa train-ldm --lora`)."""
    p = Path(path).expanduser()
    for d in (p, p / "lora"):
        if (d / META).is_file() and (d / WEIGHTS).is_file():
            return d
    if not p.exists():
        raise MaaError(f"{flag} {path}: no such folder; pass the -o folder of `maa train-ldm --lora` (or its lora/)")
    raise MaaError(f"{flag} {path}: no {META} + {WEIGHTS} in it (nor in {p / 'lora'}); "
                   "pass the -o folder of `maa train-ldm --lora`")


def read_meta(folder: Path) -> dict:
    """An adapter folder's lora.json, checked to be one."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("kind") != LORA_KIND:
        raise MaaError(f"{folder / META}: not a maa LoRA adapter description (kind {LORA_KIND!r})")
    return meta


def load_lora(folder: str | Path, unet: nn.Module | None = None) -> tuple[LoRA, dict]:
    """An adapter folder -> (LoRA, its lora.json). With `unet`, the layers are checked against it."""
    folder = adapter_dir(folder)
    meta = read_meta(folder)
    state = load_safetensors(folder / meta.get("weights", WEIGHTS))
    names = sorted({k.rsplit(".", 2)[0] for k in state})
    shapes = {}
    for n in names:
        down, up = state.get(f"{n}.down.weight"), state.get(f"{n}.up.weight")
        if down is None or up is None:
            raise MaaError(f"{folder / WEIGHTS}: layer {n} lacks its down or up weight")
        shapes[n] = (down, up)
    if unet is not None:
        layers = {}
        for n in names:
            try:
                layers[n] = unet.get_submodule(n)
            except AttributeError:
                raise MaaError(f"{folder}: adapts layer {n}, which this UNet does not have (made for another "
                               "architecture)") from None
    else:  # rebuild stand-in layers from the shapes alone
        layers = {n: _standin(d, u) for n, (d, u) in shapes.items()}
    lora = LoRA(layers, int(meta.get("rank", 0)), meta.get("alpha"), tuple(meta.get("targets", DEFAULT_TARGETS)))
    try:
        lora.load_state_dict(state)
    except RuntimeError as e:
        raise MaaError(f"{folder / WEIGHTS}: does not fit this UNet ({str(e).strip().splitlines()[0]})") from None
    return lora.eval().requires_grad_(False), meta


def save_lora(lora: LoRA, folder: str | Path, base_model: str | Path, **extra) -> Path:
    """Write an adapter folder (lora.safetensors + lora.json) for the base model folder `base_model`."""


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.clone() for k, v in lora.tensors().items()}, str(tmp))
    write_json_atomic(folder / META, {**lora.meta(), "base": {"model": str(Path(base_model).resolve()),
                                                              "unet_sha256": unet_sha256(base_model)}, **extra})
    return folder


def _standin(down: torch.Tensor, up: torch.Tensor) -> nn.Module:
    if down.dim() == 2:
        return nn.Linear(down.shape[1], up.shape[0], bias=False)
    k = down.shape[-1]
    return nn.Conv2d(down.shape[1], up.shape[0], k, padding=k // 2, bias=False)


def unet_sha256(model_root: str | Path) -> str:
    """The base model's name for adapters: sha256 (16 hex) of its ldm/ UNet weights."""
    root = Path(model_root)
    ldm = root / "ldm" if (root / "ldm" / "config.json").exists() else root
    try:
        name = json.loads((ldm / "config.json").read_text()).get("weights", "unet.safetensors")
    except (OSError, ValueError):
        name = "unet.safetensors"
    return sha256_file(ldm / name)[:16]


def file_sha256(folder: Path) -> str:
    """An adapter's own hash (16 hex of lora.safetensors): what a generation record names it by."""
    return sha256_file(Path(folder) / WEIGHTS)[:16]


def check_base(meta: dict, folder: Path, base_sha: str, force: bool = False, warn=None) -> None:
    """Refuse an adapter trained on another base model (its recorded UNet hash) unless `force`."""
    want = (meta.get("base") or {}).get("unet_sha256")
    if want == base_sha:
        return
    msg = (f"--lora {folder}: made for another base model (UNet hash {want}, this model's {base_sha}; "
           f"trained on {(meta.get('base') or {}).get('model', '?')})")
    if not force:
        raise MaaError(msg + "; pass the model it was trained on, or --force to apply it anyway")
    if warn:
        warn(msg + "; applied anyway (--force)")


def load_adapters(unet: nn.Module, specs: list, base_sha: str, force: bool = False, warn=None,
                  device=None) -> tuple[Attached, list[dict]]:
    """Load every `DIR[:SCALE]` (strings or AdapterSpec), check its base, attach it to `unet`.
    Returns the hook handles and, per adapter, what a record keeps: path, sha256, scale."""
    handles, info = Attached(), []
    for s in specs:
        spec = s if isinstance(s, AdapterSpec) else parse_spec(s)
        lora, meta = load_lora(spec.path, unet)
        check_base(meta, spec.path, base_sha, force, warn)
        if device is not None:
            lora.to(device)
        attach(unet, lora, spec.scale, handles)
        info.append({"path": str(Path(spec.path).resolve()), "sha256": file_sha256(spec.path), "scale": spec.scale})
        handles.__dict__.setdefault("loras", []).append(lora)  # keep them alive with their hooks
    return handles, info


# ----------------------------------------------------------------------------- merging


def merge_model(model_dir: str | Path, specs: list, out: str | Path, force: bool = False, overwrite: bool = False,
                warn=None) -> Path:
    """`maa lora merge`: a copy of the model folder with the adapters folded into its UNet weights
    (each times its scale, in the stored dtype). Written whole or not at all (a temporary sibling
    renamed at the end); the folder's merged.json lists the base and the adapters."""



    root = Path(model_dir).expanduser()
    if (root / "config.json").exists() and (root.parent / "vae").exists() and not (root / "ldm").exists():
        root = root.parent  # RUN/ldm given
    if not (root / "ldm" / "config.json").exists():
        raise MaaError(f"{model_dir}: not a model folder (no ldm/config.json); pass the model the adapters were trained on")
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise MaaError(f"-o {out}: exists; choose another folder or pass --overwrite to replace it")
    if out.resolve() == root.resolve():
        raise MaaError(f"-o {out}: is the base model folder; write the merged model elsewhere")
    specs = [s if isinstance(s, AdapterSpec) else parse_spec(s, "merge") for s in specs]
    if not specs:
        raise MaaError("lora merge: name at least one adapter folder DIR[:SCALE]")
    ldm_cfg = json.loads((root / "ldm" / "config.json").read_text())
    wname = ldm_cfg.get("weights", "unet.safetensors")
    state = load_safetensors(root / "ldm" / wname)
    base_sha = unet_sha256(root)
    merged = []
    for spec in specs:
        lora, meta = load_lora(spec.path)
        check_base(meta, spec.path, base_sha, force, warn)
        for n in lora.names:
            key = f"{n}.weight"
            if key not in state:
                raise MaaError(f"{spec.path}: adapts layer {n}, which {root} does not have (made for another architecture)")
            d = lora.layers[_key(n)].delta() * (spec.scale * lora.scaling)
            if d.shape != state[key].shape:
                raise MaaError(f"{spec.path}: layer {n} has shape {tuple(d.shape)}, {root}'s {tuple(state[key].shape)}")
            state[key] = (state[key].float() + d).to(state[key].dtype)
        merged.append({"path": str(Path(spec.path).resolve()), "sha256": file_sha256(spec.path), "scale": spec.scale})
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root, tmp, ignore=shutil.ignore_patterns(".*"))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "ldm" / wname))
    write_json_atomic(tmp / "merged.json", {"base": {"model": str(root.resolve()), "unet_sha256": base_sha},
                                            "lora": merged})
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
