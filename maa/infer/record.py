"""Generation records on disk: the record inside each wav, resumable batch output, replay.

Every wav `maa generate` writes carries its record (the JSON line: prompt, seed, settings, parts,
model hash, versions) in a RIFF LIST/INFO ICMT ("comment") chunk after the audio, the standard
place for a wav's comment: libsndfile reads it as the file's comment, ffmpeg as its `comment`
tag, and players skip it.
`read_record` gets it back, `maa info FILE` prints it and `maa generate --replay FILE` makes the
file again (`Pipeline.replay`).

`same_settings` tells whether a wav was made with the settings of a planned record (the
`maa generate` job, maa.infer.job, skips those on a rerun).
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from maa.core.audio import SAMPLE_RATE
from maa.core.errors import MaaError
from maa.core.io import atomic_path
from maa.infer.limits import MAX_RECORD_BYTES, record_from_text
from maa.core.progress import staged

# Fields of a record that describe an outcome or a place, not a setting: a rerun compares the rest.
OUTCOME = {"seed", "score", "candidate_scores", "parts", "batch", "model", "device", "threads", "maa", "id", "path",
           "png"}


def wav_bytes(audio: np.ndarray, record: dict | None = None, sr: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM wav, with `record` as JSON in a LIST/INFO ICMT chunk after the audio.

    The chunk is appended here rather than through libsndfile's comment field, which silently
    drops strings of more than about 2 KB."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise MaaError("refusing to write audio with NaN/inf samples (model output is broken)")
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    if record is None:
        return data
    text = json.dumps(record, ensure_ascii=False).encode() + b"\0"
    text += b"\0" * (len(text) % 2)  # chunks are word-aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
    data += b"LIST" + struct.pack("<I", len(info)) + info
    return data[:4] + struct.pack("<I", len(data) - 8) + data[8:]


@staged("write")
def save_wav_with_record(path: str | os.PathLike, audio: np.ndarray, record: dict) -> Path:
    """Write `audio` with its record as a wav, atomically."""
    with atomic_path(path, suffix=".wav") as tmp:
        tmp.write_bytes(wav_bytes(audio, record))
    return Path(path)


def read_record(path: str | os.PathLike, strict: bool = False) -> dict | None:
    """The generation record inside a wav, or None when it has none. `strict` (replay, `maa info`):
    the record is checked field by field (maa.infer.limits.check_record) and a missing or broken one
    raises one line saying what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                if strict:
                    raise MaaError(f"{path}: not a wav file, so it holds no generation record")
                return None
            while len(hdr := f.read(8)) == 8:
                cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid != b"LIST":
                    f.seek(size + size % 2, 1)
                    continue
                body = f.read(min(size, MAX_RECORD_BYTES + 64))  # never a 4 GB chunk into memory
                if body[:4] == b"INFO":
                    rec = _icmt(body[4:], path if strict else None)
                    if rec is not None:
                        return rec
                f.seek(size + size % 2 - len(body), 1)
    except OSError as e:
        raise MaaError(f"{path}: cannot read ({e.strerror})") from None
    if strict:
        raise MaaError(f"{path}: holds no generation record (not written by maa generate, or its metadata was stripped)")
    return None


def _icmt(body: bytes, strict_src=None) -> dict | None:
    i = 0
    while i + 8 <= len(body):
        cid, size = body[i:i + 4], struct.unpack("<I", body[i + 4:i + 8])[0]
        if cid == b"ICMT":
            raw = body[i + 8:i + 8 + size] if size <= MAX_RECORD_BYTES else None
            if strict_src is not None:
                if raw is None:
                    raise MaaError(f"{strict_src}: its comment chunk is {size} bytes, more than the {MAX_RECORD_BYTES} "
                                   "a generation record may take; not a record maa wrote")
                return record_from_text(raw, strict_src)
            try:
                rec = json.loads(raw.rstrip(b"\0").decode()) if raw is not None else None
            except (ValueError, RecursionError):
                return None  # a comment, but not ours
            return rec if isinstance(rec, dict) and "maa" in rec and "prompt" in rec else None
        i += 8 + size + size % 2
    return None


def same_settings(old: dict | None, new: dict) -> bool:
    """Whether an existing output's record was made with the settings of `new` (a planned record)."""
    if old is None:
        return False
    skip = OUTCOME - ({"seed"} if "candidate_seeds" not in new else set())
    keys = (set(old) | set(new)) - skip
    return all(old.get(k) == new.get(k) for k in keys)
