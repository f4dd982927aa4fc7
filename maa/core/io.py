"""Files on disk: atomic writes (a temp file in the target's folder, then os.replace) and the safe
file names ids are stored under (`clip_id`, `safe_stem`).

A crash or Ctrl-C never leaves a half-written output behind, so reruns can trust
that any file that exists is complete. A kill -9 can still leave the temp file
(`.NAME.XXXXXXXX.EXT`); the writer holds an exclusive lock on it while it writes, so the
next write into the same folder can tell a dead writer's leftover from a live one and
removes only the former.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from safetensors import safe_open

from maa.core.errors import MaaError, warn

try:
    import fcntl
except ImportError:  # Windows: no flock, so leftovers are kept rather than guessed at
    fcntl = None

# mkstemp's names: prefix + 8 characters from this alphabet + suffix
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9_]+)$")
_swept: set[str] = set()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    if path.is_dir():  # else os.replace would fail after the work, naming the temp file
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    tmp = Path(tmp)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 less the umask)
        # before anything is written, so a leftover is no harder to inspect than the output
        os.chmod(fd if os.chmod in os.supports_fd else tmp, 0o666 & ~_umask())
        if fcntl is None:  # Windows cannot replace a file that is still open
            os.close(fd)
            fd = None
        else:
            with contextlib.suppress(OSError):  # no locks on this file system: leftovers are just kept
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until close: "its writer is alive"
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
        if fd is not None:
            os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def is_temp_name(name: str) -> bool:
    """Whether `name` is one atomic_path makes: `.TARGET.XXXXXXXX.EXT` with EXT the target's own
    suffix or .tmp (so a user's hidden file that merely looks similar is never touched)."""
    m = _TEMP_NAME.match(name)
    return bool(m) and (m["suffix"] == ".tmp" or m["target"].endswith(m["suffix"]))


def sweep_stale_temps(folder: str | os.PathLike, force: bool = False) -> list[Path]:
    """Remove the temp files that killed writers left in `folder` (once per folder and process
    unless `force`); a temp file whose writer still holds its lock is kept. Returns what went."""
    folder = Path(folder)
    key = str(folder.resolve())
    if fcntl is None or (key in _swept and not force):
        return []
    _swept.add(key)
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and is_temp_name(e.name)]
    except OSError:
        return []
    for e in entries:
        try:
            fd = os.open(e.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:  # locked: its writer is alive (or the file went meanwhile)
            pass
        finally:
            os.close(fd)
    return removed


def read_text(path: str | os.PathLike, data: bytes | None = None) -> str:
    """A text file (or its bytes `data`) as UTF-8. Bytes that are not UTF-8 become U+FFFD, as
    before, but never silently: a warning names the file, the first bad line and the count."""

    if data is None:
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError:
            raise MaaError(f"{path}: is a folder, want a text file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data.decode("utf-8", errors="replace")
        line = data[: e.start].count(b"\n") + 1
        bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
        warn(f"{path}: not UTF-8 (line {line}, byte 0x{data[e.start]:02x}); {bad} undecodable byte sequence(s) read as "
             "U+FFFD in ids and captions; re-save the file as UTF-8 to keep them")
        return text


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented, key-sorted JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write `rows` as JSON Lines, atomically."""
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def save_npy_atomic(path: str | os.PathLike, array) -> None:
    """Save `array` as `.npy`, atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def save_tensor_table(path: str | os.PathLike, table: dict, meta: dict, dtype=None) -> None:
    """{str key: tensor} -> one safetensors file (atomically); the keys and `meta` (JSON values)
    go into its metadata, since safetensors names must be plain strings."""
    from safetensors.torch import save_file  # noqa: PLC0415  torch: slow import, kept off this module's import

    keys = list(table)
    tensors = {str(i): (table[k] if dtype is None else table[k].to(dtype)).detach().cpu().contiguous()
               for i, k in enumerate(keys)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys), **{k: json.dumps(v) for k, v in meta.items()}})


def load_tensor_table(path: str | os.PathLike, meta: dict) -> dict:
    """The table save_tensor_table wrote with the same `meta`; {} when the file is missing,
    unreadable or was written with other meta (a cache that no longer applies)."""

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


# -- safe file names for ids -----------------------------------------------------------------------

def clip_id(text: str) -> str:
    """A file-name-safe id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "clip"


STEM_CHARS = 80  # of the readable part; the full name stays far below any file system's 255 bytes


def safe_stem(clip_id: str) -> str:
    """The file name stem under which a command stores what it derives from clip `clip_id`.

    Ids are data, not paths: `../x`, `/abs/x`, separators, NUL or 300 characters must all land
    inside the output folder, one file per id. Plain lower-case ids ([a-z0-9._-], not starting
    with a dot) are their own stem; anything else keeps a readable sanitised prefix plus 16 hex
    digits of the id's SHA-1, so the name is stable across runs and unique even where the file
    system ignores case (`Dog` and `dog` are different ids, hence different files).
    """
    clip_id = str(clip_id)
    # a plain id that itself ends like a hashed stem is hashed too, so the two kinds never meet
    if re.fullmatch(rf"[a-z0-9_-][a-z0-9._-]{{0,{STEM_CHARS - 1}}}", clip_id) and not _HASHED.search(clip_id):
        return clip_id

    prefix = re.sub(r"[^A-Za-z0-9_-]+", "_", clip_id)[:STEM_CHARS].strip("_") or "clip"
    return f"{prefix}-{hashlib.sha1(clip_id.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


_HASHED = re.compile(r"-[0-9a-f]{16}$")
