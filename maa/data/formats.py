"""Data-set file formats -> manifest rows: one reader per format, one id scheme for every entry point.

`read_manifest` (what every command reads a manifest with) and the importers
(maa.data.importers, `python -m recipes.datasets import ...`) both go through these readers, so the
same CSV gives the same rows and ids wherever it is read:

  AudioCaps CSV   audiocap_id,youtube_id,start_time,caption -> one row per YouTube clip, id
                  `ac_<youtube_id>`, `caption` the first listed, `captions` all; audio found below
                  the audio folder (any depth) as <ytid>, Y<ytid>, <ytid>_<start>[_<end>],
                  Y<ytid>_<start>[_<end>] or <audiocap_id>, any audio extension.
  Clotho CSV      file_name,caption_1..caption_5 -> one row per clip, id `clotho_<stem>`,
                  `caption` = caption_1, `captions` all five; audio <audio folder>/<file_name>.
  Make-An-Audio   name dataset audio_path caption mel_path [duration] (TSV) -> one row per line, id <name>.

A row per clip (not per caption) because `maa eval` pairs generated and reference clips by id and
a clip is one recording; training that wants every caption expands the rows
(maa.data.importers.expand_captions: ids <id>, <id>_c2, ...).

A clip whose audio is not on disk: with a `missing` list the reader appends {"id", "expected"}
there and leaves the clip out (the importers count them); without one the row keeps the path it
was looked for at, and the command that opens it reports it (as for a JSONL manifest).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from maa.core.errors import MaaError
from maa.core.io import clip_id, read_text
from maa.core.manifest import AUDIO_EXTS, TableFormat, read_rows

YT_ID = r"[A-Za-z0-9_-]{11}"
YT_STEM = re.compile(rf"^Y?(?P<yt>{YT_ID})(?:_(?P<start>\d+(?:\.\d+)?)(?:_\d+(?:\.\d+)?)?)?$")
AUDIOCAPS_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
CLOTHO_COLUMNS = ("file_name", "caption_1")


def read_csv_table(path: Path, need: tuple[str, ...], skipped: list[str] | None = None, **kw) -> list[dict]:
    """Rows of a CSV (or TSV with delimiter='\\t') as stripped dicts, each with its "_line"; a missing
    column is a MaaError. A row with another number of fields than the header is left out and named in
    `skipped` ("FILE line N: ..."); without `skipped` it is an error."""
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text), **kw)
    cols = [c.strip() for c in reader.fieldnames or []]
    lost = [c for c in need if c not in cols]
    if lost:
        raise MaaError(f"{path}: no column {', '.join(lost)} (found: {', '.join(cols) or 'none'}); "
                       "is this the data set's original CSV?")
    rows = []
    for r in reader:
        extra, short = len(r.get(None) or []), sum(v is None for k, v in r.items() if k is not None)
        if extra or short:  # DictReader puts surplus fields under None and fills missing ones with None
            why = (f"{path} line {reader.line_num}: {len(cols) + extra - short} fields, the header has {len(cols)} "
                   "(a broken or ragged row)")
            if skipped is None:
                raise MaaError(f"{why}; fix the CSV")
            skipped.append(why)
            continue
        rows.append({**{(k or "").strip(): (v or "").strip() for k, v in r.items() if k is not None},
                     "_line": reader.line_num})
    return rows


def _leave_out(why: str, skipped: list[str] | None) -> None:
    """A row that cannot be a clip: named in `skipped` (the importers report them), else an error."""
    if skipped is None:
        raise MaaError(f"{why}; fix or remove that row")
    skipped.append(why)


def inside(name: str, where: str) -> str:
    """A file name from a data set's CSV/JSON, refused when it leaves the data folder (absolute, ..)."""
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not name:
        raise MaaError(f"{where}: file name {name!r} points outside the data folder; the data set's files are "
                       "named relative to it (fix or remove that row)")
    return name


def audio_index(root: Path) -> dict[str, Path]:
    """stem -> path for every audio file below root (the first in sorted order wins)."""
    out: dict[str, Path] = {}
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in AUDIO_EXTS and not p.name.startswith(".") and p.is_file():
                out.setdefault(p.stem, p.resolve())
    return out


class YouTubeClips:
    """Finds AudioSet-derived clips however the downloader named them (see the module docstring)."""

    def __init__(self, root: Path):
        self.by_stem = audio_index(root)
        self.by_yt: dict[str, list[tuple[float | None, Path]]] = {}
        for stem, p in self.by_stem.items():
            m = YT_STEM.match(stem)
            if m:
                start = float(m["start"]) if m["start"] else None
                self.by_yt.setdefault(m["yt"], []).append((start, p))

    def find(self, yt: str, start: str | float | None = None, other: str | None = None) -> Path | None:
        """The clip of YouTube id `yt` (at `start` s when several), else the file named `other`, else None."""
        cands = self.by_yt.get(yt, [])
        if start not in (None, ""):
            exact = [p for s, p in cands if s is not None and abs(s - float(start)) < 1e-3]
            if exact:
                return exact[0]
        if len(cands) == 1:
            return cands[0][1]
        plain = [p for s, p in cands if s is None]
        if plain:
            return plain[0]
        return self.by_stem.get(other) if other else None


def read_audiocaps_csv(path: Path, clips: YouTubeClips, missing: list[dict] | None = None,
                       skipped: list[str] | None = None) -> list[dict]:
    """An AudioCaps CSV -> one row per YouTube clip (id ac_<ytid>), its audio found in `clips`. Rows
    without a caption or YouTube id, and ragged rows, are named in `skipped` (without it: an error)."""
    grouped: dict[str, dict] = {}
    for r in read_csv_table(path, AUDIOCAPS_COLUMNS, skipped):
        if not r["caption"] or not r["youtube_id"]:
            _leave_out(f"{path} line {r['_line']}: no {'caption' if r['youtube_id'] else 'youtube_id'}", skipped)
            continue
        g = grouped.setdefault(r["youtube_id"], {"start": r["start_time"], "ac": r["audiocap_id"], "caps": []})
        g["caps"].append(r["caption"])
    rows = []
    for yt, g in grouped.items():
        cid = clip_id(f"ac_{yt}")
        p = clips.find(yt, g["start"], g["ac"])
        if p is None:
            if missing is not None:
                missing.append({"id": cid, "expected": f"{yt} (start {g['start']})"})
                continue
            p = Path(path).parent / f"Y{yt}.wav"  # where a later step will report it missing
        rows.append({"id": cid, "audio": str(p), "caption": g["caps"][0], "captions": g["caps"],
                     "source": "audiocaps", "key": f"youtube:{yt}", "start_time": float(g["start"] or 0)})
    return rows


def read_clotho_csv(path: Path, audio_dir: Path, missing: list[dict] | None = None,
                    sound_ids: dict[str, str] | None = None, skipped: list[str] | None = None) -> list[dict]:
    """A Clotho captions CSV -> one row per clip (id clotho_<stem>), audio `audio_dir`/<file_name>.

    `sound_ids` (file_name -> Freesound id, from clotho_metadata_<split>.csv) sets the
    de-duplication key to freesound:<id>; otherwise it is clotho:<file_name>. Rows without a caption,
    and ragged rows, are named in `skipped` (without it: an error); a file name that leaves the audio
    folder is refused."""
    rows = []
    for r in read_csv_table(path, CLOTHO_COLUMNS, skipped):
        caps = [r[f"caption_{k}"] for k in range(1, 6) if r.get(f"caption_{k}")]
        if not caps:
            _leave_out(f"{path} line {r['_line']}: {r['file_name']} has no caption", skipped)
            continue
        cid = clip_id(f"clotho_{Path(r['file_name']).stem}")
        p = (Path(audio_dir) / inside(r["file_name"], f"{path} line {r['_line']}")).resolve()
        if not p.exists() and missing is not None:
            missing.append({"id": cid, "expected": str(Path(audio_dir) / r["file_name"])})
            continue
        key = f"freesound:{sound_ids[r['file_name']]}" if sound_ids and r["file_name"] in sound_ids \
            else f"clotho:{r['file_name']}"
        rows.append({"id": cid, "audio": str(p), "caption": caps[0], "captions": caps,
                     "source": "clotho", "key": key})
    return rows


def read_maa_tsv(path: Path, audio_dir: Path) -> list[dict]:
    """A Make-An-Audio TSV (name, dataset, audio_path, caption, mel_path[, duration]) -> one row per line."""
    rows = []
    for r in read_csv_table(path, ("name", "audio_path"), delimiter="\t"):
        row = {"id": clip_id(r["name"]), "audio": _resolve(r["audio_path"], audio_dir),
               "caption": r.get("caption", ""), "source": r.get("dataset", "")}
        if r.get("mel_path"):
            row["mel"] = _resolve(r["mel_path"], audio_dir)
        if r.get("duration"):
            row["duration"] = float(r["duration"])
        rows.append(row)
    return rows


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (Path(base) / p).resolve())


# The table formats read_manifest recognises (by suffix and header), in the order they are tried.
TABLES = (
    TableFormat("AudioCaps CSV", ".csv", lambda head: "youtube_id" in head,
                lambda path, base: read_audiocaps_csv(path, YouTubeClips(base))),
    TableFormat("Clotho CSV", ".csv", lambda head: "file_name" in head, read_clotho_csv),
    TableFormat("Make-An-Audio TSV", ".tsv", lambda head: True, read_maa_tsv),
)


def read_manifest(src: str | os.PathLike, on_problem=None, audio_dir: str | None = None) -> list[dict]:
    """Rows from a JSONL manifest, a folder of audio, an audio file, '-' (JSONL on stdin) or a data
    set's table (TABLES); `audio_dir` is where a table's audio lies (default: the table's folder).

    Bad lines raise MaaError, or, with `on_problem`, are reported to it and skipped (maa.core.manifest.read_rows).
    """
    return read_rows(src, on_problem=on_problem, audio_dir=audio_dir, tables=TABLES)
