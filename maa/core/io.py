"""Atomic file writes: a temp file in the target's folder, then os.replace.

A crash or Ctrl-C never leaves a half-written output behind, so reruns can trust
that any file that exists is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 less the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def save_npy_atomic(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_tensor_table(path: str | os.PathLike, table: dict, meta: dict, dtype=None) -> None:
    """{str key: tensor} -> one safetensors file (atomically); the keys and `meta` (JSON values)
    go into its metadata, since safetensors names must be plain strings."""
    from safetensors.torch import save_file

    keys = list(table)
    tensors = {str(i): (table[k] if dtype is None else table[k].to(dtype)).detach().cpu().contiguous()
               for i, k in enumerate(keys)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), **{k: json.dumps(v) for k, v in meta.items()}})


def load_tensor_table(path: str | os.PathLike, meta: dict) -> dict:
    """The table save_tensor_table wrote with the same `meta`; {} when the file is missing,
    unreadable or was written with other meta (a cache that no longer applies)."""
    from safetensors import safe_open

    if not Path(path).exists():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = f.metadata() or {}
            if any(json.loads(stored.get(k, "null")) != v for k, v in meta.items()):
                return {}
            return {k: f.get_tensor(str(i)) for i, k in enumerate(json.loads(stored["keys"]))}
    except Exception:  # a damaged cache only costs the time to rebuild it
        return {}

