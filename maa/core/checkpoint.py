"""Model folders on disk: safetensors weights + config.json, file hashes, parameter counts, and
the small helpers every checkpoint reader shares (a `module.` prefix off, configs read safely);
and where a model name leads: $MAA_HOME, the registry of pullable weights, `resolve_model` and the
integrity check of a pulled folder (see the section below)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import mmap
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from maa.core.config import tag_sources
from maa.core.errors import MaaError
from maa.core.io import atomic_path, write_json_atomic


def num_params(m: nn.Module) -> int:
    """The number of parameters of `m`."""
    return sum(p.numel() for p in m.parameters())


def sha256_file(*paths: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file's bytes (of several files' bytes end to end), read in chunks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


HASH_CACHE = Path.home() / ".cache" / "maa" / "file-sha256.json"


def folder_sha256(root: str | os.PathLike, parts: tuple[str, ...]) -> str:
    """Content hash (16 hex digits) of the files under root/part for each part (names and bytes;
    hidden files left out).

    Each file's sha256 is kept in HASH_CACHE under its path, size and mtime, so a 1.4 GB paper-size
    model folder is read once, not at every `maa generate` (~1.5 s each)."""
    root = Path(root)
    try:
        cache = json.loads(HASH_CACHE.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    h, changed = hashlib.sha256(), False
    for part in parts:
        for f in sorted((root / part).rglob("*")) if (root / part).is_dir() else []:
            if f.is_file() and not f.name.startswith("."):
                st = f.stat()
                key = f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
                if not isinstance(cache.get(key), str):
                    cache[key], changed = sha256_file(f), True
                h.update(f"{f.relative_to(root)}\0{cache[key]}\0".encode())
    if changed:
        try:
            write_json_atomic(HASH_CACHE, cache)
        except OSError:  # a read-only home: hash again next time
            pass
    return h.hexdigest()[:16]


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """Keys without `prefix` where they have it: DataParallel/DDP checkpoints save `module.`-prefixed keys."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def save_weights(dir: str | os.PathLike, modules: dict[str, nn.Module] | dict[str, dict], config: dict | None = None) -> None:
    """Write <key>.safetensors for every module (or state dict) and config.json, each atomically."""
    from safetensors.torch import save_file  # noqa: PLC0415  torch: slow import, kept off this module's import

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


_INIT_FNS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
             "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_")


@contextlib.contextmanager
def uninitialized():
    """Build modules without drawing their random initial weights (torch.nn.init is skipped inside).

    Only for modules whose every parameter is then loaded strictly (load_weights): a one-off
    `maa generate` spent ~0.3 s of 2-core CPU drawing weights it overwrote at once.
    """
    saved = {n: getattr(nn.init, n) for n in _INIT_FNS}
    for n in _INIT_FNS:
        setattr(nn.init, n, lambda tensor, *a, **k: tensor)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def load_weights(dir: str | os.PathLike, modules: dict[str, nn.Module], strict: bool = True, mmap: bool = False) -> dict:
    """Load <key>.safetensors into each module; returns config.json (or {} if absent).

    `mmap`: the module's tensors become views of the file's memory map (assign_weights), so the
    weights are neither read twice nor held twice; for modules built under `uninitialized`,
    whose own tensors are then never touched."""
    dir = Path(dir)
    if not dir.is_dir():
        raise MaaError(f"{dir}: no such model folder; pass the folder a train command wrote (e.g. RUN/vae)")
    for key, m in modules.items():
        path = dir / f"{key}.safetensors"
        if not path.exists():
            raise MaaError(f"{path}: missing weights file; is {dir} a complete model folder?")
        device = next(iter(m.parameters()), torch.empty(0)).device
        try:
            if mmap:
                assign_weights(m, mmap_safetensors(path), strict=strict)
            else:
                m.load_state_dict(load_safetensors(path, device=str(device)), strict=strict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise MaaError(f"{path}: weights do not fit the model in config.json ({first})") from None
    cfg_path = dir / "config.json"
    return parse_config(cfg_path) if cfg_path.exists() else {}


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or one MaaError naming it when the file is truncated, is
    something else under that name (a pickle), or has a header no real file has (a shape whose
    size overflows, a header length of 2^62): the library checks all of that before it allocates."""
    from safetensors.torch import load_file  # noqa: PLC0415  torch: slow import, kept off this module's import

    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OverflowError, ValueError, RuntimeError) as e:
        with open(path, "rb") as f:
            head = f.read(2)
        what = ("a pickle (torch.save) renamed .safetensors" if head[:1] == b"\x80" or head == b"PK"
                else f"damaged or truncated ({str(e).strip().splitlines()[0][:120]})")
        raise MaaError(f"{path}: not a readable safetensors file: {what}; re-export or re-download it") from None


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def mmap_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as views of a private (copy-on-write) memory map of it.

    Nothing is read until a tensor is used, and then from the page cache, with no copy: loading a
    1.7 GB model this way holds the weights once, where load_safetensors + load_state_dict held
    them twice per file for a moment (and read them into fresh memory). Writing to a tensor copies
    only the pages written; the file never changes. A file the header check refuses goes to
    load_safetensors, which names what is wrong with it."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or n > size - 8:
                raise ValueError("header length")
            header = json.loads(f.read(n))
            base = 8 + n
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size > base else None
        out = {}
        for key, e in header.items():
            if key == "__metadata__":
                continue
            dtype, shape = _ST_DTYPES[e["dtype"]], [int(s) for s in e["shape"]]
            begin, end = (int(o) for o in e["data_offsets"])
            count = math.prod(shape)
            if min(shape, default=0) < 0 or not 0 <= begin <= end <= size - base or \
                    end - begin != count * torch.empty((), dtype=dtype).element_size():
                raise ValueError(f"{key}: offsets")
            out[key] = (torch.frombuffer(mm, dtype=dtype, count=count, offset=base + begin).view(shape) if count
                        else torch.empty(shape, dtype=dtype))
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return load_safetensors(path)


def assign_weights(module: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> nn.Module:
    """Make `state`'s tensors the module's own (load_state_dict with assign): no copy, except where
    a tensor has another dtype or device than the module's (float16 files, CUDA modules), which is
    converted. Shapes and keys are checked as load_state_dict checks them (RuntimeError)."""
    own = module.state_dict(keep_vars=True)
    state = {k: (v.to(device=own[k].device, dtype=own[k].dtype)
                 if k in own and (v.dtype != own[k].dtype or v.device != own[k].device) else v)
             for k, v in state.items()}
    module.load_state_dict(state, strict=strict, assign=True)
    return module


def read_config(dir: str | os.PathLike) -> dict:
    """The `config.json` of a model folder (a MaaError naming the folder when it is missing or broken)."""
    if not Path(dir).is_dir():
        raise MaaError(f"{dir}: no such model folder; pass the folder a train command wrote (e.g. RUN/vae)")
    path = Path(dir) / "config.json"
    if not path.exists():
        raise MaaError(f"{path}: missing; pass a model folder written by a `maa train-*` command")
    return parse_config(path)


def parse_config(path: str | os.PathLike) -> dict:
    """A config.json as nested ConfigDicts that remember the file (so config errors can name it)."""
    try:
        obj = json.loads(Path(path).read_text())
    except ValueError as e:  # UnicodeDecodeError included
        raise MaaError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:  # json recurses once per level: 200k nested lists exhaust the stack
        raise MaaError(f"{path}: nested too deeply to be a config; is it the config.json a maa command wrote?") from None
    if not isinstance(obj, dict):
        raise MaaError(f"{path}: want a JSON object of settings, got a {type(obj).__name__}")
    return tag_sources(obj, str(path))


# -- model names: the registry, $MAA_HOME, pulled folders ------------------------------------------
#
# Model names: the registry of pullable weights (maa/assets/registry.json), the models directory
# `maa pull` fills ($MAA_HOME/models/NAME), the one resolver every `--model`/`--init` goes through,
# and the integrity check of a pulled folder.
#
#     resolve_model("make-an-audio")      # -> ~/.cache/maa/models/make-an-audio (once pulled)
#     resolve_model("runs/demo")          # a path wins over a name
#
# A pulled folder holds pull.json: the source of each downloaded file and the sha256 of every file
# of the folder; `verify_pulled` checks them before the folder is used (hashes cached per path,
# size and mtime, so a 1.4 GB folder is read once).

REGISTRY = Path(__file__).resolve().parents[1] / "assets" / "registry.json"
PULL_RECORD = "pull.json"
HF_PREFIX = "hf:"


def maa_home() -> Path:
    """$MAA_HOME, else the user cache ($XDG_CACHE_HOME or ~/.cache)/maa."""
    env = os.environ.get("MAA_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "maa"


def models_dir() -> Path:
    """Where pulled models live: $MAA_HOME/models."""
    return maa_home() / "models"


def registry() -> dict[str, dict]:
    """name -> entry (repo, repo_type, revision, files, converter, licence, unconfirmed, ...)."""
    data = json.loads(REGISTRY.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def folder_name(name: str) -> str:
    """The models/ sub-folder of a name: `hf:OWNER/REPO` -> `hf--OWNER--REPO`."""
    if name.startswith(HF_PREFIX):
        return "hf--" + name[len(HF_PREFIX):].strip("/").replace("/", "--")
    return name


def pulled_path(name: str) -> Path:
    """The folder a pulled `name` has (or will have)."""
    return models_dir() / folder_name(name)


def is_pulled(name: str) -> bool:
    """Whether `name` was pulled to the end (its pull record is written last)."""
    return (pulled_path(name) / PULL_RECORD).exists()


def pulled_names() -> list[str]:
    """The names pulled into models_dir(), sorted."""
    d = models_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if (p / PULL_RECORD).exists():
            try:
                out.append(json.loads((p / PULL_RECORD).read_text()).get("name", p.name))
            except (OSError, ValueError):
                out.append(p.name)
    return out


def _looks_like_name(spec: str) -> bool:
    return spec.startswith(HF_PREFIX) or (os.sep not in spec and "/" not in spec and not spec.startswith((".", "~")))


def resolve_model(spec: str | os.PathLike, flag: str = "--model") -> Path:
    """A model folder from what the user typed: an existing path wins, then a pulled name. An
    unknown name is one line listing the names and the `maa pull` command; a path that does not
    exist is returned as it is (the caller says what it wanted there)."""
    s = str(spec)
    p = Path(s).expanduser()
    if p.exists() or not _looks_like_name(s):
        return p
    if is_pulled(s):
        folder = pulled_path(s)
        verify_pulled(folder)
        return folder
    known = registry()
    if s in known or s.startswith(HF_PREFIX):
        raise MaaError(f"{flag} {s}: not pulled yet; run `maa pull {s}` (it downloads and converts the weights "
                       f"into {pulled_path(s)})")
    names = sorted({*(n for n, e in known.items() if e.get("converter") != "vocoder"), *pulled_names()})
    raise MaaError(f"{flag} {s}: no such folder and no such model name; names: {', '.join(names)} "
                   f"(get one with `maa pull NAME`, see `maa pull --list`), or pass a model folder")


# ----------------------------------------------------------------------------- integrity

HASH_CACHE_NAME = "file-sha256.json"


def cached_sha256(files: list[Path]) -> dict[Path, str]:
    """sha256 of each file, remembered under (path, size, mtime) in $MAA_HOME/file-sha256.json."""
    cache_path = maa_home() / HASH_CACHE_NAME
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    out, changed = {}, False
    for f in files:
        st = f.stat()
        key = f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
        if not isinstance(cache.get(key), str):
            cache[key], changed = sha256_file(f), True
        out[f] = cache[key]
    if changed:
        try:
            write_json_atomic(cache_path, cache)
        except OSError:  # a read-only cache: hash again next time
            pass
    return out


def folder_files(root: Path) -> list[Path]:
    """Every file of a model folder but the pull record, the README (which lists the hashes) and
    hidden files, sorted."""
    return sorted(f for f in root.rglob("*") if f.is_file() and f.name != PULL_RECORD
                  and f.relative_to(root) != Path("README.md")
                  and not any(part.startswith(".") for part in f.relative_to(root).parts))


def verify_pulled(root: str | os.PathLike) -> None:
    """Check every file pull.json lists against its recorded sha256; nothing to do without pull.json.
    A changed or missing file is one line naming it and the command that fetches it again."""
    root = Path(root)
    rec_path = root / PULL_RECORD
    if not rec_path.exists():
        return
    try:
        rec = json.loads(rec_path.read_text())
        want = rec["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise MaaError(f"{rec_path}: unreadable pull record; run `maa pull {root.name} --force`") from None
    name = rec.get("name", root.name)
    missing = [rel for rel in want if not (root / rel).is_file()]
    if missing:
        raise MaaError(f"{root}: {missing[0]} is missing ({len(missing)} of {len(want)} files); "
                       f"run `maa pull {name} --force`")
    got = cached_sha256([root / rel for rel in want])
    bad = [rel for rel in want if got[root / rel] != want[rel]]
    if bad:
        raise MaaError(f"{root / bad[0]}: sha256 differs from the one recorded when it was pulled "
                       f"({len(bad)} file(s) changed); run `maa pull {name} --force`")
