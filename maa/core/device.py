"""Which torch device a command runs on: `auto` is CUDA when there is one, else the CPU."""

from __future__ import annotations

import torch

from maa.core.errors import MaaError


def pick_device(spec: str | torch.device | None = "auto") -> torch.device:
    """`auto` (or None) -> cuda when available, else cpu; otherwise the named device, checked."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise MaaError(f"--device {spec!r}: want auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MaaError(f"--device {spec}: CUDA is not available on this machine; use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MaaError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def describe(dev: torch.device) -> str:
    """For the log line: `cuda:0 (NVIDIA H200)` or `cpu (2 threads)`."""
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
