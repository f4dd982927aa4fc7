"""Mock AudioCaps, Clotho, WavCaps and ESC-50 folders, laid out and named as the real sets are.

    python -m recipes.mock_datasets data/mock [--from data/demo] [--seconds 3]

The audio comes from the demo corpus when it is there (its train.jsonl clips and captions), else
from clips synthesised here (tones, chirps, noise, clicks: numpy only). The layout exercises what
the importers must handle: AudioCaps clips named with and without the start time (and one listed
clip left off disk), five captions per Clotho clip, the four WavCaps subsets with their own id
styles, ESC-50's meta CSV, and deliberate overlaps: a WavCaps AudioSet_SL clip that is an
AudioCaps test clip, one that is an AudioCaps training clip, and a WavCaps BBC file that is a
byte copy of a Clotho evaluation clip. `recipes/datasets.py import` must drop all three.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from maa.data.formats import read_manifest
from maa.core.manifest import caption_of

SR = 16000
# (caption, ESC-50 style category, generator)
KINDS = [
    ("a high tone beeps steadily", "beep", lambda t, r: 0.4 * np.sin(2 * np.pi * (1800 + 200 * r.random()) * t)),
    ("a low hum drones", "hum", lambda t, r: 0.4 * np.sin(2 * np.pi * (110 + 20 * r.random()) * t)),
    ("a whistle rises in pitch", "whistle", lambda t, r: 0.4 * np.sin(2 * np.pi * (400 + 900 * t / t[-1]) * t)),
    ("wind noise hisses", "wind", lambda t, r: 0.2 * r.standard_normal(len(t))),
    ("a clock ticks", "clock_tick", lambda t, r: (np.sin(2 * np.pi * 3 * t) > 0.995) * r.standard_normal(len(t)) * 0.8),
    ("a siren wails up and down", "siren", lambda t, r: 0.4 * np.sin(2 * np.pi * (700 + 300 * np.sin(2 * np.pi * 0.5 * t)) * t)),
]
_YT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def synth(kind: int, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A seeded synthetic clip of KINDS[kind] (a beep, a hum, a rising whistle, wind ...), faded in."""
    r = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = KINDS[kind][2](t, r) * np.minimum(1.0, t * 30) + 1e-3 * r.standard_normal(len(t))
    return np.clip(x, -1, 1).astype(np.float32)


class Source:
    """Clip k of the mock sets: (audio, caption, category); the demo corpus when given."""

    def __init__(self, demo: Path | None, seconds: float):
        self.seconds, self.demo = seconds, []
        if demo is not None and (demo / "train.jsonl").exists():
            self.demo = [r for r in read_manifest(demo / "train.jsonl") if caption_of(r)]

    def clip(self, k: int) -> tuple[np.ndarray, int, str, str]:
        if self.demo:
            r = self.demo[(k * 7) % len(self.demo)]
            audio, sr = sf.read(r["audio"], dtype="float32", always_2d=True)
            label = (r.get("labels") or [caption_of(r)])[0]
            return audio[: int(self.seconds * sr), 0], sr, caption_of(r), str(label).replace(" ", "_")
        kind = k % len(KINDS)
        return synth(kind, self.seconds, k), SR, KINDS[kind][0], KINDS[kind][1]


def yt_id(k: int) -> str:
    """A deterministic 11-character YouTube-like id."""
    r = np.random.default_rng(1000 + k)
    return "".join(_YT[i] for i in r.integers(0, len(_YT), 11))


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _wav(path: Path, audio: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype="PCM_16")


def build(root: Path, demo: Path | None = None, seconds: float = 3.0, counts: dict | None = None) -> dict:
    """Write the mock AudioCaps, Clotho, WavCaps and ESC-50 folders below `root`; returns the counts."""
    n = {"ac_train": 8, "ac_val": 2, "ac_test": 4, "clotho_dev": 4, "clotho_val": 2, "clotho_eval": 2,
         "wavcaps": 2, "esc50": 6, **(counts or {})}
    src = Source(demo, seconds)
    root = Path(root)
    for sub in ("audiocaps", "clotho", "wavcaps", "ESC-50"):
        shutil.rmtree(root / sub, ignore_errors=True)
    k = 0
    # AudioCaps: train has one caption per clip, val/test five; clip files by YouTube id
    ac = root / "audiocaps"
    ac_ids: dict[str, list[str]] = {}
    cap_id = 100000
    for split, count in (("train", n["ac_train"]), ("val", n["ac_val"]), ("test", n["ac_test"])):
        rows = []
        for i in range(count):
            audio, sr, caption, _ = src.clip(k)
            yt, start = yt_id(k), 30 + i
            k += 1
            caps = [caption] if split == "train" else [caption] + [f"{caption} ({j})" for j in range(2, 6)]
            for c in caps:
                rows.append([cap_id, yt, start, c])
                cap_id += 1
            ac_ids.setdefault(split, []).append(yt)
            if split == "train" and i == count - 1:
                continue  # listed, not downloaded: the importer must count it, not stop
            name = f"Y{yt}.wav" if i % 2 else f"{yt}_{start}.wav"  # both naming styles of the downloaders
            _wav(ac / "audio" / split / name, audio, sr)
        _csv(ac / f"{split}.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows)
    # Clotho: five captions per clip, file names as uploaded to Freesound, 44.1 kHz in the real set
    cl = root / "clotho"
    clotho_eval_files = []
    for folder, count in (("development", n["clotho_dev"]), ("validation", n["clotho_val"]), ("evaluation", n["clotho_eval"])):
        rows, meta = [], []
        for i in range(count):
            audio, sr, caption, _ = src.clip(k)
            name = f"Mock recording {k} {folder[:3]}.wav"
            _wav(cl / folder / name, audio, sr)
            rows.append([name] + [caption if j == 0 else f"{caption}, take {j + 1}" for j in range(5)])
            meta.append([name, "mock;test", 500000 + k])
            if folder == "evaluation":
                clotho_eval_files.append(cl / folder / name)
            k += 1
        _csv(cl / f"clotho_captions_{folder}.csv", ["file_name"] + [f"caption_{j}" for j in range(1, 6)], rows)
        _csv(cl / f"clotho_metadata_{folder}.csv", ["file_name", "keywords", "sound_id"], meta)
    # WavCaps: one JSON per subset; ids: Freesound numbers, BBC numbers, SoundBible numbers, Y<ytid>.wav
    wc = root / "wavcaps"
    for subset, fname, id_of in (("FreeSound", "fsd_final.json", lambda j: str(600000 + j)),
                                 ("BBC_Sound_Effects", "bbc_final.json", lambda j: f"{7000000 + j:08d}"),
                                 ("SoundBible", "sb_final.json", lambda j: str(2000 + j)),
                                 ("AudioSet_SL", "as_final.json", lambda j: f"Y{yt_id(9000 + j)}.wav")):
        items = []
        for i in range(n["wavcaps"]):
            audio, sr, caption, _ = src.clip(k)
            cid = id_of(k)
            if subset == "AudioSet_SL" and i == 0:
                cid = f"Y{ac_ids['test'][0]}.wav"     # an AudioCaps test clip: must stay out of training
            if subset == "AudioSet_SL" and i == 1:
                cid = f"Y{ac_ids['train'][0]}.wav"    # an AudioCaps training clip: a duplicate by YouTube id
            target = wc / "audio" / subset / (cid if cid.endswith(".wav") else f"{cid}.flac")
            if subset == "BBC_Sound_Effects" and i == 0:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(clotho_eval_files[0], target.with_suffix(".wav"))  # byte copy of a Clotho test clip
            else:
                _wav(target, audio, sr)
            items.append({"id": cid, "caption": caption, "duration": seconds, "audio": "wav_path",
                          "description": f"mock {subset} sound {k}"})
            k += 1
        (wc / "json_files" / subset).mkdir(parents=True, exist_ok=True)
        (wc / "json_files" / subset / fname).write_text(json.dumps({"num_captions_per_audio": 1, "data": items}))
    # ESC-50: label-only, fold-fsID-take-target.wav names
    esc = root / "ESC-50"
    rows = []
    cats = sorted({KINDS[j][1] for j in range(len(KINDS))}) if not src.demo else None
    for i in range(n["esc50"]):
        audio, sr, _, cat = src.clip(k)
        cats = cats or []
        if cat not in cats:
            cats.append(cat)
        target = cats.index(cat)
        name = f"{i % 5 + 1}-{100000 + k}-A-{target}.wav"
        _wav(esc / "audio" / name, audio, sr)
        rows.append([name, i % 5 + 1, target, cat, "False", 100000 + k, "A"])
        k += 1
    _csv(esc / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return {"root": str(root), "clips": k, "from": "demo corpus" if src.demo else "synthesised", "expect_dropped": 3}


def main(argv=None):
    """`python -m recipes.mock_datasets`: write the mock data-set folders."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="where audiocaps/, clotho/, wavcaps/ and ESC-50/ are written")
    ap.add_argument("--from", dest="demo", type=Path, default=Path("data/demo"), help="demo corpus to take clips from (if present)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of every mock clip")
    a = ap.parse_args(argv)
    info = build(a.root, a.demo if a.demo.exists() else None, a.seconds)
    print(f"mock-datasets: {info['clips']} {info['from']} clips in {info['root']}/{{audiocaps,clotho,wavcaps,ESC-50}}")


if __name__ == "__main__":
    main()
