"""Model names: the registry of pullable weights (maa/assets/registry.json), the models directory
`maa pull` fills ($MAA_HOME/models/NAME), the one resolver every `--model`/`--init` goes through,
and the integrity check of a pulled folder.

    resolve_model("make-an-audio")      # -> ~/.cache/maa/models/make-an-audio (once pulled)
    resolve_model("runs/demo")          # a path wins over a name

A pulled folder holds pull.json: the source of each downloaded file and the sha256 of every file
of the folder; `verify_pulled` checks them before the folder is used (hashes cached per path,
size and mtime, so a 1.4 GB folder is read once).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from maa.core.errors import MaaError
from maa.core.checkpoint import sha256_file
from maa.core.io import write_json_atomic

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
