"""Manifests: JSON Lines, one clip per line.

Fields: `id` (unique), `audio` (path; relative paths are relative to the manifest's folder),
and optionally `caption`, `labels` (list of str), `duration` (s), `sr`, `mel` (path to .npy),
`frames`, `source`, `license`. Unknown fields are kept as they are.

`read_rows` turns common inputs into rows: a single audio file, a folder of audio (recursive; a file in a
subfolder gets the subfolder's name as its label), JSONL, `-` for JSONL on stdin, and the tables
it is handed (`TableFormat`s: the data-set formats live in maa.data.formats, whose
`read_manifest` is what commands call). Paths are made absolute on reading, and written relative to the
output manifest's folder where they lie below it, so a data folder can be moved whole.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from maa.core.errors import MaaError
from maa.core.io import atomic_path, clip_id, read_text

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif", ".au"}
PATH_FIELDS = ("audio", "mel")
Problem = Callable[[dict], None]


@dataclass(frozen=True)
class TableFormat:
    """A table format `read_rows` may be handed: its name, file suffix, a test of its header line, and
    `read(path, audio_dir) -> rows` (relative audio paths taken from `audio_dir`)."""

    name: str
    suffix: str
    matches: Callable[[str], bool]
    read: Callable[[Path, Path], list[dict]]


def read_rows(src: str | os.PathLike, on_problem: Problem | None = None, audio_dir: str | None = None,
              tables: Sequence[TableFormat] = ()) -> list[dict]:
    """Rows from a manifest file, a folder of audio, '-' (JSONL on stdin) or one of `tables`.

    Bad lines (malformed JSON, missing `audio`, duplicate ids) raise MaaError, or, when
    `on_problem` is given, are reported to it as {"id", "audio", "reason"} and skipped.
    """
    report = on_problem or _raise
    if str(src) == "-":
        rows = _read_jsonl(io.StringIO(read_text("<stdin>", sys.stdin.buffer.read())), "<stdin>", Path.cwd(), report)
        return _check_ids(rows, "<stdin>", report)
    path = Path(src)
    if path.is_dir():
        return _check_ids(read_folder(path), str(path), report)
    if not path.exists():
        raise MaaError(f"{path}: no such manifest or folder")
    if path.suffix.lower() in AUDIO_EXTS:  # a single clip stands for a one-line manifest
        return [{"id": clip_id(path.stem), "audio": str(path.resolve())}]
    base = Path(audio_dir) if audio_dir else path.parent
    head = read_text(path)
    if not head.strip():
        raise MaaError(f"{path}: the manifest is empty; point at a folder of audio or a JSONL file with one clip per line")
    suffix = path.suffix.lower()
    first = head.lstrip().splitlines()[0]
    if suffix in (".jsonl", ".json", ".ndjson") or first.startswith("{"):
        rows = _read_jsonl(io.StringIO(head), str(path), path.parent, report)
    else:
        table = next((t for t in tables if t.suffix == suffix and t.matches(first)), None)
        if table is None:
            known = "".join(f", {t.name}" for t in tables)
            raise MaaError(f"{path}: unknown manifest format; use JSONL (.jsonl){known} or a folder")
        rows = table.read(path, base)
    return _check_ids(rows, str(path), report)


def write_manifest(dst: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write rows as JSONL atomically; '-' writes to stdout."""
    if str(dst) == "-":
        for r in rows:
            sys.stdout.write(json.dumps(_relativize(r, Path.cwd())) + "\n")
        sys.stdout.flush()
        return
    dst = Path(dst)
    base = dst.parent.resolve()
    with atomic_path(dst, suffix=".jsonl") as tmp:
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(_relativize(r, base)) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one line (for logs such as failed.jsonl, where a partial file is still useful)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def split_holdout(rows: list[dict], fraction: float, min_rows: int = 4) -> tuple[list[dict], list[dict]]:
    """(train, held_out): every k-th row held out (k = 1/fraction), a fixed spread-out slice."""
    if fraction <= 0 or len(rows) < min_rows:
        return rows, []
    k = max(2, round(1 / fraction))
    return [r for i, r in enumerate(rows) if i % k], rows[::k]


def read_folder(root: Path) -> list[dict]:
    """Rows for every audio file below `root` (ids from the relative path; a subfolder's name is the label)."""
    files = [p for p in sorted(root.rglob("*"))
             if p.is_file() and p.suffix.lower() in AUDIO_EXTS and not p.name.startswith(".")]
    stems = [clip_id("__".join(p.relative_to(root).with_suffix("").parts)) for p in files]
    uses = Counter(stems)
    rows = []
    for p, stem in zip(files, stems):
        rel = p.relative_to(root)
        # clip.flac beside clip.ogg: both are clips, so the extension joins the id of each
        cid = stem if uses[stem] == 1 else clip_id(f"{stem}.{p.suffix[1:]}")
        row = {"id": cid, "audio": str(p.resolve())}
        if len(rel.parts) > 1:
            row["labels"] = [rel.parts[-2]]
        rows.append(row)
    if not rows:
        raise MaaError(f"{root}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTS))}, recursively)")
    return rows


def caption_of(row: dict) -> str | None:
    """The caption of a row, or a natural phrase from its labels, or None."""
    if row.get("caption"):
        return str(row["caption"])
    labels = row.get("labels")
    if labels:
        return " and ".join(str(l).replace("_", " ") for l in labels)
    return None


def _raise(problem: dict) -> None:
    raise MaaError(problem["reason"])


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _relativize(row: dict, base: Path) -> dict:
    out = dict(row)
    for k in PATH_FIELDS:
        if isinstance(out.get(k), str) and os.path.isabs(out[k]):
            try:
                out[k] = str(Path(out[k]).relative_to(base))
            except ValueError:
                pass
    return out


def _read_jsonl(f, name: str, base: Path, report: Problem) -> list[dict]:
    rows = []
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as e:
            report({"id": None, "audio": None, "reason": f"{name} line {n}: malformed JSON ({e}); fix or delete the line"})
            continue
        if not row.get("audio"):
            report({"id": row.get("id"), "audio": None, "reason": f"{name} line {n}: no 'audio' field; every clip needs a path"})
            continue
        for k in PATH_FIELDS:
            if isinstance(row.get(k), str):
                row[k] = _resolve(row[k], base)
        row.setdefault("id", clip_id(Path(row["audio"]).stem))
        row["id"] = str(row["id"])
        row["_line"] = n
        rows.append(row)
    return rows


def _check_ids(rows: list[dict], name: str, report: Problem) -> list[dict]:
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        line = r.pop("_line", None)
        where = f"line {line}" if line else r["audio"]
        if r["id"] in seen:
            report({"id": r["id"], "audio": r.get("audio"),
                    "reason": f"{name} {where}: duplicate id {r['id']!r} (first at {seen[r['id']]}); ids must be unique"})
            continue
        seen[r["id"]] = where
        out.append(r)
    return out
