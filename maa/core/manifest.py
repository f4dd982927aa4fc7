"""Manifests: JSON Lines, one clip per line.

Fields: `id` (unique), `audio` (path; relative paths are relative to the manifest's folder),
and optionally `caption`, `labels` (list of str), `duration` (s), `sr`, `mel` (path to .npy),
`frames`, `source`, `license`. Unknown fields are kept as they are.

Readers turn common inputs into rows: a single audio file, a folder of audio (recursive; a file in a subfolder
gets the subfolder's name as its label), AudioCaps CSV, Clotho CSV, Make-An-Audio TSV, JSONL,
and `-` for JSONL on stdin. Paths are made absolute on reading, and written relative to the
output manifest's folder where they lie below it, so a data folder can be moved whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from maa.core.errors import MaaError
from maa.core.io import atomic_path, read_text

AUDIO_EXTS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif", ".au"}
PATH_FIELDS = ("audio", "mel")
Problem = Callable[[dict], None]


def read_manifest(src: str | os.PathLike, on_problem: Problem | None = None, audio_dir: str | None = None) -> list[dict]:
    """Rows from a manifest file, a folder of audio, or '-' (JSONL on stdin).

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
    elif suffix == ".tsv":
        rows = _read_maa_tsv(head, base)
    elif suffix == ".csv" and "youtube_id" in first:
        rows = _read_audiocaps(head, base)
    elif suffix == ".csv" and "file_name" in first:
        rows = _read_clotho(head, base)
    else:
        raise MaaError(
            f"{path}: unknown manifest format; use JSONL (.jsonl), AudioCaps/Clotho CSV, Make-An-Audio TSV or a folder"
        )
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
    import hashlib

    prefix = re.sub(r"[^A-Za-z0-9_-]+", "_", clip_id)[:STEM_CHARS].strip("_") or "clip"
    return f"{prefix}-{hashlib.sha1(clip_id.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


_HASHED = re.compile(r"-[0-9a-f]{16}$")


def read_folder(root: Path) -> list[dict]:
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


def _find_audio(base: Path, stems: list[str]) -> str:
    for stem in stems:
        for ext in (".wav", ".flac", ".mp3", ".ogg"):
            p = base / f"{stem}{ext}"
            if p.exists():
                return str(p.resolve())
    return str((base / f"{stems[0]}.wav").resolve())


def _read_audiocaps(text: str, base: Path) -> list[dict]:
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        yt, start = r["youtube_id"], r.get("start_time", "0")
        stems = [f"Y{yt}", yt, r["audiocap_id"], f"{yt}_{start}", f"Y{yt}_{start}"]
        rows.append({"id": clip_id(r["audiocap_id"]), "audio": _find_audio(base, stems),
                     "caption": r["caption"], "source": "audiocaps"})
    return rows


def _read_clotho(text: str, base: Path) -> list[dict]:
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        audio = _resolve(r["file_name"], base)
        for k in range(1, 6):
            cap = r.get(f"caption_{k}")
            if cap:
                rows.append({"id": clip_id(f"{Path(r['file_name']).stem}_{k}"), "audio": audio,
                             "caption": cap, "source": "clotho"})
    return rows


def _read_maa_tsv(text: str, base: Path) -> list[dict]:
    rows = []
    for r in csv.DictReader(io.StringIO(text), delimiter="\t"):
        row = {"id": clip_id(r["name"]), "audio": _resolve(r["audio_path"], base), "caption": r.get("caption", ""),
               "source": r.get("dataset", "")}
        if r.get("mel_path"):
            row["mel"] = _resolve(r["mel_path"], base)
        if r.get("duration"):
            row["duration"] = float(r["duration"])
        rows.append(row)
    return rows

