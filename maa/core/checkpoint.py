"""Model folders on disk: safetensors weights + config.json, file hashes, parameter counts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from maa.core.errors import MaaError
from maa.core.io import atomic_path, write_json_atomic


def num_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(dir: str | os.PathLike, modules: dict[str, nn.Module] | dict[str, dict], config: dict | None = None) -> None:
    """Write <key>.safetensors for every module (or state dict) and config.json, each atomically."""
    from safetensors.torch import save_file

    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    for key, m in modules.items():
        sd = m.state_dict() if isinstance(m, nn.Module) else m
        # clone: safetensors refuses tensors that share storage (tied weights, views)
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
        with atomic_path(dir / f"{key}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    if config is not None:
        write_json_atomic(dir / "config.json", config)


def load_weights(dir: str | os.PathLike, modules: dict[str, nn.Module], strict: bool = True) -> dict:
    """Load <key>.safetensors into each module; returns config.json (or {} if absent)."""
    from safetensors.torch import load_file

    dir = Path(dir)
    if not dir.is_dir():
        raise MaaError(f"{dir}: no such model folder; pass the folder a train command wrote (e.g. RUN/vae)")
    for key, m in modules.items():
        path = dir / f"{key}.safetensors"
        if not path.exists():
            raise MaaError(f"{path}: missing weights file; is {dir} a complete model folder?")
        device = next(iter(m.parameters()), torch.empty(0)).device
        try:
            m.load_state_dict(load_file(str(path), device=str(device)), strict=strict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise MaaError(f"{path}: weights do not fit the model in config.json ({first})") from None
    cfg_path = dir / "config.json"
    return json.loads(cfg_path.read_text()) if cfg_path.exists() else {}


def read_config(dir: str | os.PathLike) -> dict:
    if not Path(dir).is_dir():
        raise MaaError(f"{dir}: no such model folder; pass the folder a train command wrote (e.g. RUN/vae)")
    path = Path(dir) / "config.json"
    if not path.exists():
        raise MaaError(f"{path}: missing; pass a model folder written by a `maa train-*` command")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise MaaError(f"{path}: not valid JSON ({e})") from None

