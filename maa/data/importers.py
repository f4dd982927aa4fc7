"""Importers: public audio-text and label-only data sets on disk -> maa manifests.

Each importer reads one data set in the layout its distributors ship and returns an `Imported`:
rows (one per clip; `split` is train, val or test), the clips its metadata lists that are not on
disk (counted and listed, never fatal), and a canonical key per clip for de-duplication across
sets (`youtube:<id>` for AudioSet-derived clips, `freesound:<id>` for Freesound-derived ones).

  audiocaps   ROOT/{train,val,test}.csv (audiocap_id,youtube_id,start_time,caption) + audio under
              ROOT (any depth) named by YouTube id: <ytid>, Y<ytid>, <ytid>_<start>[_<end>],
              Y<ytid>_<start>[_<end>] or <audiocap_id>, any audio extension.
  clotho      ROOT/clotho_captions_{development,validation,evaluation}.csv (file_name,caption_1..5)
              + ROOT/{development,validation,evaluation}/<file_name>; the optional
              clotho_metadata_<split>.csv gives each clip's Freesound id (sound_id).
  wavcaps     ROOT/json_files/{FreeSound,BBC_Sound_Effects,SoundBible,AudioSet_SL}/*.json
              ({"data": [{"id", "caption", ...}]} or a bare list) + audio named <id> under
              ROOT/audio/<subset>/ (any depth; ids of AudioSet_SL are Y<ytid>.wav).
  audioset    ROOT/*_segments.csv (# YTID, start_seconds, end_seconds, positive_labels) + names from
              ROOT/ontology.json or ROOT/class_labels_indices.csv; audio as for audiocaps.
  fsd50k      ROOT/FSD50K.ground_truth/{dev,eval}.csv (fname,labels,mids[,split]) +
              ROOT/FSD50K.{dev,eval}_audio/<fname>.wav.
  esc50       ROOT/meta/esc50.csv (filename,fold,target,category,...) + ROOT/audio/<filename>.
  urbansound8k ROOT/metadata/UrbanSound8K.csv (slice_file_name,fsID,...,fold,classID,class) +
              ROOT/audio/fold<N>/<slice_file_name>.

Captioned sets give `caption` (the first caption) and `captions` (all of them); label-only sets
give `labels` only, and `maa caption` picks their caption among label phrasings and retrieved
captions (the paper's expert distillation). `combine` merges sets into one training manifest,
drops duplicates by key and by content hash, and keeps every clip of the AudioCaps and Clotho
test splits out of training.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maa.core.checkpoint import sha256_file
from maa.core.errors import MaaError
from maa.core.io import clip_id, read_text, write_json_atomic, write_jsonl_atomic
from maa.core.manifest import AUDIO_EXTS, write_manifest
from maa.data.formats import YT_STEM, YouTubeClips, audio_index, read_audiocaps_csv, read_clotho_csv
from maa.data.formats import read_csv_table as _read_csv

SPLITS = ("train", "val", "test")
TEST_SETS = ("audiocaps", "clotho")   # whose test clips are kept out of training


@dataclass
class Imported:
    """One imported data set: its rows, the clips its metadata lists but the disk lacks, and counts."""
    name: str
    rows: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)   # {"set", "id", "expected", "split"}
    skipped: list[str] = field(default_factory=list)    # rows left out, each "FILE line N: why"

    def counts(self) -> dict:
        by = {s: sum(1 for r in self.rows if r["split"] == s) for s in SPLITS}
        return {"clips": len(self.rows), **{k: v for k, v in by.items() if v}, "missing": len(self.missing),
                **({"skipped": len(self.skipped)} if self.skipped else {})}


# ----------------------------------------------------------------------------------------------
# shared helpers


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise MaaError(f"{path}: not found; {what}")
    return path


def _missing(name: str, cid: str, expected: str, split: str) -> dict:
    return {"set": name, "id": cid, "expected": expected, "split": split}


# ----------------------------------------------------------------------------------------------
# captioned sets


def import_audiocaps(root: str | os.PathLike) -> Imported:
    """One row per YouTube clip (maa.data.formats.read_audiocaps_csv: id ac_<ytid>), per split CSV."""
    root = Path(root)
    clips = YouTubeClips(root)
    out = Imported("audiocaps")
    found = False
    for split in SPLITS:
        path = root / f"{split}.csv"
        if not path.exists():
            continue
        found = True
        lost: list[dict] = []
        out.rows += [{**r, "split": split} for r in read_audiocaps_csv(path, clips, missing=lost, skipped=out.skipped)]
        out.missing += [_missing("audiocaps", m["id"], m["expected"], split) for m in lost]
    if not found:
        raise MaaError(f"{root}: no train.csv, val.csv or test.csv; the AudioCaps folder holds the three "
                       "CSVs (audiocap_id,youtube_id,start_time,caption) and the clips")
    return out


CLOTHO_SPLITS = {"development": "train", "validation": "val", "evaluation": "test"}


def import_clotho(root: str | os.PathLike) -> Imported:
    """One row per clip (maa.data.formats.read_clotho_csv: id clotho_<stem>), per split CSV and audio folder."""
    root = Path(root)
    out = Imported("clotho")
    found = False
    for folder, split in CLOTHO_SPLITS.items():
        path = root / f"clotho_captions_{folder}.csv"
        if not path.exists():
            continue
        found = True
        sound_ids = {}
        meta = root / f"clotho_metadata_{folder}.csv"
        if meta.exists():
            sound_ids = {r["file_name"]: r["sound_id"] for r in _read_csv(meta, ("file_name",)) if r.get("sound_id")}
        lost: list[dict] = []
        out.rows += [{**r, "split": split} for r in read_clotho_csv(path, root / folder, missing=lost, sound_ids=sound_ids,
                                                                 skipped=out.skipped)]
        out.missing += [_missing("clotho", m["id"], m["expected"], split) for m in lost]
    if not found:
        raise MaaError(f"{root}: no clotho_captions_development/validation/evaluation.csv; the Clotho folder holds "
                       "those CSVs and the development/, validation/, evaluation/ audio folders")
    return out


WAVCAPS_SUBSETS = {"FreeSound": "freesound", "BBC_Sound_Effects": "bbc", "SoundBible": "soundbible",
                   "AudioSet_SL": "audioset"}


def import_wavcaps(root: str | os.PathLike) -> Imported:
    """All four subsets as training rows (WavCaps has no test split)."""
    root = Path(root)
    out = Imported("wavcaps")
    jdir = _need(root / "json_files", "the WavCaps folder holds json_files/<subset>/*.json and audio/<subset>/")
    for subset, short in WAVCAPS_SUBSETS.items():
        files = sorted((jdir / subset).glob("*.json"))
        files = [f for f in files if not f.stem.endswith("_2s")] or files  # fsd_final_2s.json: a subset of fsd_final
        if not files:
            continue
        index = audio_index(root / "audio" / subset)
        clips = YouTubeClips(root / "audio" / subset) if short == "audioset" else None
        for f in files:
            try:
                data = json.loads(read_text(f))
            except ValueError as e:
                raise MaaError(f"{f}: not JSON ({e}); use the file WavCaps ships") from None
            items = data.get("data", []) if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise MaaError(f"{f}: 'data' is {type(items).__name__}, not a list of {{id, caption}}; "
                               "use the file WavCaps ships")
            for n, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("caption", ""), str):
                    out.skipped.append(f"{f} entry {n}: {str(item)[:40]!r} is not an object with an id and a text caption")
                    continue
                raw = str(item.get("id", "")).strip()
                stem = Path(raw).stem if Path(raw).suffix.lower() in AUDIO_EXTS else raw
                cid = clip_id(f"wc_{short}_{stem}")
                if short == "audioset":
                    m = YT_STEM.match(stem)
                    p = clips.find(m["yt"]) if m else index.get(stem)
                    key = f"youtube:{m['yt']}" if m else f"wavcaps:{stem}"
                else:
                    p = index.get(stem)
                    key = f"freesound:{stem}" if short == "freesound" else f"{short}:{stem}"
                if p is None:
                    out.missing.append(_missing("wavcaps", cid, f"audio/{subset}/{stem}.*", "train"))
                    continue
                row = {"id": cid, "audio": str(p), "caption": str(item.get("caption", "")).strip(),
                       "split": "train", "source": f"wavcaps/{subset}", "key": key}
                row["captions"] = [row["caption"]]
                if isinstance(item.get("duration"), (int, float)) and not isinstance(item["duration"], bool):
                    row["duration"] = float(item["duration"])
                out.rows.append(row)
    if not out.rows and not out.missing:
        raise MaaError(f"{jdir}: no subset JSON found (looked in {', '.join(WAVCAPS_SUBSETS)})")
    return out


# ----------------------------------------------------------------------------------------------
# label-only sets: labels become caption candidates for `maa caption`


def _add_labelled(out: Imported, cid: str, p: Path | None, labels: list[str], split: str, key: str,
                  expected: str | None = None) -> None:
    """A label-only row, or a missing entry when its audio is not on disk."""
    if p is None or not p.exists():
        out.missing.append(_missing(out.name, cid, expected or str(p), split))
        return
    out.rows.append({"id": cid, "audio": str(p.resolve()), "labels": labels, "split": split, "source": out.name, "key": key})


def _ontology(root: Path) -> dict[str, str]:
    if (root / "ontology.json").exists():
        return {o["id"]: o["name"] for o in json.loads((root / "ontology.json").read_text())}
    if (root / "class_labels_indices.csv").exists():
        return {r["mid"]: r["display_name"] for r in _read_csv(root / "class_labels_indices.csv", ("mid", "display_name"))}
    raise MaaError(f"{root}: neither ontology.json nor class_labels_indices.csv; the label names come from one of them")


def import_audioset(root: str | os.PathLike) -> Imported:
    """AudioSet segment CSVs (comment lines start with #); eval_segments.csv is the test split."""
    root = Path(root)
    names = _ontology(root)
    clips = YouTubeClips(root)
    out = Imported("audioset")
    files = sorted(root.glob("*segments*.csv"))
    if not files:
        raise MaaError(f"{root}: no *_segments.csv (# YTID, start_seconds, end_seconds, positive_labels)")
    for f in files:
        split = "test" if f.name.startswith("eval") else "train"
        lines = [l for l in read_text(f).splitlines() if l.strip() and not l.startswith("#")]
        for r in csv.reader(lines, skipinitialspace=True):
            if len(r) < 4:
                continue
            yt, start, mids = r[0].strip(), r[1].strip(), r[3].strip()
            labels = [names.get(m, m) for m in mids.split(",") if m]
            cid = clip_id(f"as_{yt}")
            _add_labelled(out, cid, clips.find(yt, start), labels, split, f"youtube:{yt}", f"{yt} (start {start})")
    return out


def import_fsd50k(root: str | os.PathLike) -> Imported:
    """FSD50K: one labelled row per clip (dev -> train, or val by its split column; eval -> test)."""
    root = Path(root)
    gt = _need(root / "FSD50K.ground_truth", "the FSD50K folder holds FSD50K.ground_truth/ and FSD50K.{dev,eval}_audio/")
    out = Imported("fsd50k")
    for part in ("dev", "eval"):
        path = gt / f"{part}.csv"
        if not path.exists():
            continue
        for r in _read_csv(path, ("fname", "labels")):
            split = "test" if part == "eval" else ("val" if r.get("split") == "val" else "train")
            cid = clip_id(f"fsd50k_{r['fname']}")
            labels = [l for l in r["labels"].split(",") if l]
            _add_labelled(out, cid, root / f"FSD50K.{part}_audio" / f"{r['fname']}.wav", labels, split, f"freesound:{r['fname']}")
    return out


def _single_label_set(name: str, root: Path, meta: str, file_col: str, label_col: str, prefix: str,
                      audio_of: Callable[[dict], str], layout: str) -> Imported:
    """A classification set: one CSV row per clip with one class name; every clip is a training row."""
    out = Imported(name)
    for r in _read_csv(_need(root / meta, f"the {name} folder holds {layout}"), (file_col, "fold", label_col)):
        cid = clip_id(f"{prefix}_{Path(r[file_col]).stem}")
        _add_labelled(out, cid, root / audio_of(r), [r[label_col]], "train", f"{prefix}:{r[file_col]}")
    return out


def import_esc50(root: str | os.PathLike) -> Imported:
    """All five folds as training rows (ESC-50 is a classification benchmark, not a caption test set)."""
    return _single_label_set("esc50", Path(root), "meta/esc50.csv", "filename", "category", "esc50",
                             lambda r: f"audio/{r['filename']}", "meta/esc50.csv and audio/")


def import_urbansound8k(root: str | os.PathLike) -> Imported:
    """UrbanSound8K: one labelled row per slice, all folds for training."""
    return _single_label_set("urbansound8k", Path(root), "metadata/UrbanSound8K.csv", "slice_file_name", "class", "us8k",
                             lambda r: f"audio/fold{r['fold']}/{r['slice_file_name']}",
                             "metadata/UrbanSound8K.csv and audio/fold1..10/")


IMPORTERS: dict[str, Callable[[str | os.PathLike], Imported]] = {
    "audiocaps": import_audiocaps, "clotho": import_clotho, "wavcaps": import_wavcaps, "audioset": import_audioset,
    "fsd50k": import_fsd50k, "esc50": import_esc50, "urbansound8k": import_urbansound8k,
}
# the folder each set is looked for under ROOT (the names the sets unpack to)
FOLDERS = {"audiocaps": "audiocaps", "clotho": "clotho", "wavcaps": "wavcaps", "audioset": "audioset",
           "fsd50k": "fsd50k", "esc50": "ESC-50", "urbansound8k": "UrbanSound8K"}


def import_set(name: str, root: str | os.PathLike) -> Imported:
    """Import the data set `name` from its folder below `root` (see FOLDERS)."""
    if name not in IMPORTERS:
        raise MaaError(f"data set {name!r}: unknown; choose from {', '.join(IMPORTERS)}")
    folder = Path(root) / FOLDERS[name]
    if not folder.is_dir():
        raise MaaError(f"{folder}: no such folder; put {name} there (layouts: README, 'Train on AudioCaps / Clotho / WavCaps')")
    return IMPORTERS[name](folder)


# ----------------------------------------------------------------------------------------------
# combining


def content_hashes(paths: list[str]) -> dict[str, str]:
    """SHA-256 of the files that share their byte size with another (only those can be copies)."""
    by_size: dict[int, list[str]] = {}
    for p in paths:
        by_size.setdefault(os.path.getsize(p), []).append(p)
    out = {}
    for group in by_size.values():
        if len(group) > 1:
            for p in group:
                out[p] = sha256_file(p)
    return out


def expand_captions(rows: list[dict]) -> list[dict]:
    """One row per caption (ids <id>, <id>_c2, ...), sharing the clip's audio and mel: training sees all five
    Clotho captions. Rows without `captions` stay as they are."""
    out = []
    for r in rows:
        caps = [c for c in r.get("captions") or [] if c] or [None]
        for k, cap in enumerate(caps):
            row = {key: v for key, v in r.items() if key != "captions"}
            if cap is not None and k:
                row["id"], row["caption"] = f"{r['id']}_c{k + 1}", cap
            out.append(row)
    return out


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """-o of an import: a folder (made if needed), not an existing file."""
    out_dir = Path(out_dir)
    hit = next((p for p in [out_dir, *out_dir.parents] if p.exists()), None)
    if hit is not None and not hit.is_dir():
        raise MaaError(f"-o {out_dir}: {hit} is a file; give a folder for the manifests")
    return out_dir


def combine(sets: list[Imported], out_dir: str | os.PathLike, hash_check: bool = True) -> dict:
    """Write OUT/{train,val}.jsonl, OUT/test-<set>.jsonl, OUT/missing.jsonl and OUT/summary.json.

    A clip is dropped from train/val when its key or content hash equals that of an AudioCaps or
    Clotho test clip, or of a clip kept earlier (sets are taken in the order given). The summary
    states the check: no remaining training clip shares a key or hash with a test clip."""
    out_dir = check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows = [r for s in sets for r in s.rows]
    hashes = content_hashes(sorted({r["audio"] for r in all_rows})) if hash_check else {}
    tests = {s.name: [r for r in s.rows if r["split"] == "test"] for s in sets if s.name in TEST_SETS}
    test_keys = {r["key"] for rows in tests.values() for r in rows}
    test_hashes = {hashes[r["audio"]] for rows in tests.values() for r in rows if r["audio"] in hashes}
    seen_keys: set[str] = set(test_keys)
    seen_hashes: set[str] = set(test_hashes)
    kept = {"train": [], "val": []}
    dropped = {"test_overlap_key": [], "test_overlap_hash": [], "duplicate_key": [], "duplicate_hash": []}
    other_tests = []
    for s in sets:
        for r in s.rows:
            if r["split"] == "test":
                if s.name not in TEST_SETS:
                    other_tests.append(r)   # e.g. FSD50K eval: not a benchmark here, so kept out of training too
                continue
            h = hashes.get(r["audio"])
            if r["key"] in test_keys:
                dropped["test_overlap_key"].append(r["id"])
            elif h is not None and h in test_hashes:
                dropped["test_overlap_hash"].append(r["id"])
            elif r["key"] in seen_keys:
                dropped["duplicate_key"].append(r["id"])
            elif h is not None and h in seen_hashes:
                dropped["duplicate_hash"].append(r["id"])
            else:
                seen_keys.add(r["key"])
                if h is not None:
                    seen_hashes.add(h)
                kept[r["split"]].append(r)
    # the stated check, recomputed from what is written (not from the bookkeeping above)
    train_rows = kept["train"] + kept["val"]
    leak_keys = sorted({r["id"] for r in train_rows if r["key"] in test_keys})
    leak_hash = sorted({r["id"] for r in train_rows if hashes.get(r["audio"]) in test_hashes})
    ids = [r["id"] for r in train_rows]
    if len(set(ids)) != len(ids):
        raise MaaError("two data sets gave the same clip id; this is a bug in the importers")
    write_manifest(out_dir / "train.jsonl", kept["train"])
    write_manifest(out_dir / "val.jsonl", kept["val"])
    for name, rows in tests.items():
        write_manifest(out_dir / f"test-{name}.jsonl", rows)
    events = [r for r in kept["train"] if r.get("labels")]
    write_manifest(out_dir / "events.jsonl", events)
    missing = [m for s in sets for m in s.missing]
    write_jsonl_atomic(out_dir / "missing.jsonl", missing)
    summary = {
        "sets": {s.name: s.counts() for s in sets},
        "train": len(kept["train"]), "val": len(kept["val"]),
        "train_captions": sum(len(r.get("captions") or [1]) for r in kept["train"]),
        "needs_caption": sum(1 for r in kept["train"] + kept["val"] if not r.get("caption")),
        "events": len(events),
        "test": {name: len(rows) for name, rows in tests.items()},
        "test_caption_policy": "one caption per clip: the first one the test CSV lists for it "
                               "(AudioCaps test.csv row order; Clotho caption_1)",
        "other_test_rows_left_out": len(other_tests),
        "dropped": {k: len(v) for k, v in dropped.items()},
        "dropped_ids": {k: v[:50] for k, v in dropped.items() if v},
        "missing": len(missing),
        "missing_list": "missing.jsonl",
        "dedup": {"by": ["clip key (youtube:<id>, freesound:<id>, ...)"]
                  + (["content hash (SHA-256 of the file bytes, files of equal size only)"] if hash_check else []),
                  "note": "copies re-encoded at another rate or length are not caught by the hash"},
        "test_clips_kept_out_of_training": {"checked": sorted(tests), "ok": not leak_keys and not leak_hash,
                                            "overlap_by_key": leak_keys, "overlap_by_hash": leak_hash},
    }
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
