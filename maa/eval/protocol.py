"""Named evaluation protocols for `maa eval --protocol NAME`, and the eval card every metrics file carries.

Published FD/FAD/KL/IS numbers differ mostly by choices made around the metrics: the extractor
and its weights, the sample rate, crop and padding, how many captions per clip, how many IS
splits, and whether the generator re-ranked K candidates (`maa generate -n`). The eval card
records all of them next to the numbers.

`make-an-audio` (the paper's, through audioldm_eval): PANNs CNN14 16 kHz for FD (2048-d
embedding), KL (softmax, clips paired by id) and IS (10 splits); VGGish for FAD (pre-ReLU frames,
no PCA); a CLAP score; every clip cut or zero-padded to 10 s at 16 kHz; one caption per reference
clip (the first row of each clip). The weights are never downloaded: they are looked for in
$MAA_EVAL_WEIGHTS (default ~/.cache/maa/eval-weights), or given with -e panns-cnn14:FILE /
-e vggish:FILE; the CLAP comes from -e maa-clap:DIR / -e laion-clap:CKPT or from the LAION file in
that folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maa.core.audio import SAMPLE_RATE
from maa.core.checkpoint import sha256_file
from maa.core.errors import MaaError
from maa.core.io import read_text
from maa.core.manifest import write_manifest
from maa.data.formats import read_manifest
from maa.eval.evaluate import EvalConfig, evaluate
from maa.eval.metrics import METRICS
import json
from maa.eval.extractors import load_extractor

PANNS_FILE = "Cnn14_16k_mAP=0.438.pth"
VGGISH_FILE = "vggish-10086976.pth"
LAION_FILE = "630k-audioset-best.pt"
CLAP_KINDS = ("maa-clap", "laion-clap")


@dataclass(frozen=True)
class Protocol:
    """A published evaluation protocol's fixed settings (clip length, IS splits, metrics per extractor)."""
    name: str
    seconds: float            # every clip cut or zero-padded to this length
    is_splits: int
    reference: str            # the implementation whose conventions it follows
    metrics: dict             # extractor -> the metrics taken from it


PROTOCOLS = {
    "make-an-audio": Protocol(
        "make-an-audio", 10.0, 10, "audioldm_eval (as used by Make-An-Audio's scripts/test.py)",
        {"panns-cnn14": ["fd", "kl", "is"], "vggish": ["fad"], "clap": ["clap_score"]}),
}
# what maa does differently from audioldm_eval (see the extractor parity note), stated on the card
KNOWN_DIFFERENCES = [
    "no per-clip mean removal (effect measured at ~3e-7 relative on the embeddings)",
    "resampling to 16 kHz with soxr HQ, not torchaudio's sinc resampler (only non-16 kHz clips)",
    "KL floors probabilities at 1e-12 where audioldm_eval adds 1e-6",
    "clips cut or padded to 10 s (audioldm_eval feeds whole files, padding only those under 2 s)",
]


def weights_dir() -> Path:
    """Where the protocol's official weights are looked for ($MAA_EVAL_WEIGHTS, else the maa cache)."""
    return Path(os.environ.get("MAA_EVAL_WEIGHTS") or Path(os.environ.get("MAA_CACHE") or "~/.cache/maa") / "eval-weights").expanduser()


def sha256_of(path: str | os.PathLike) -> str:
    """Full SHA-256 of a weights file, or of a folder's *.safetensors and *.json files in name order."""
    p = Path(path)
    files = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.json")) if p.is_dir() else [p]
    return sha256_file(*files)


def protocol_extractors(name: str, given: list[str], folder: Path | None = None) -> list[str]:
    """The extractor specs of a protocol: given -e specs win, the rest come from the weights folder.
    Missing weights raise one MaaError line naming every missing file and where it goes."""
    if name not in PROTOCOLS:
        raise MaaError(f"--protocol {name!r}: unknown; choose from {', '.join(PROTOCOLS)}")
    folder = folder or weights_dir()
    kinds = {s.partition(":")[0]: s for s in given}
    specs, missing = [], []
    for kind, file, what in (("panns-cnn14", PANNS_FILE, "PANNs CNN14 16 kHz (zenodo record 3987831)"),
                             ("vggish", VGGISH_FILE, "VGGish (torchvggish release v0.1)")):
        spec = kinds.get(kind)
        path = Path(spec.partition(":")[2]) if spec and spec.partition(":")[2] else folder / file
        if path.is_file():
            specs.append(f"{kind}:{path}")
        else:
            missing.append(f"{what} weights {path}")
    clap = next((s for s in given if s.partition(":")[0] in CLAP_KINDS), None)
    if clap is None and (folder / LAION_FILE).is_file():
        clap = f"laion-clap:{folder / LAION_FILE}"
    if clap is None:
        missing.append(f"a CLAP for the CLAP score (-e maa-clap:DIR, -e laion-clap:CKPT or {folder / LAION_FILE})")
    if missing:
        raise MaaError(f"--protocol {name}: missing {'; '.join(missing)}; maa downloads nothing: put the files in "
                       f"{folder} (or set MAA_EVAL_WEIGHTS=DIR, or pass -e panns-cnn14:FILE -e vggish:FILE)")
    specs.append(clap)
    extra = [s for s in given if s.partition(":")[0] not in ("panns-cnn14", "vggish") and s != clap
             and not (s == "aisfx" and given == ["aisfx"])]  # the lone default aisfx is not asked for
    return specs + extra


class PaddedExtractor:
    """An extractor that sees every clip zero-padded to `seconds` (the crop to `seconds` is EvalConfig's).
    Everything else is the wrapped extractor's; the cache fingerprint says the input differs."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds
        self.fingerprint = f"{inner.fingerprint}-pad{seconds:g}s"

    def __getattr__(self, key):
        return getattr(self.inner, key)

    def embed(self, wavs):
        n = round(self.seconds * self.inner.sample_rate)
        return self.inner.embed([np.pad(np.asarray(w, np.float32), (0, max(0, n - len(w))))[:n] for w in wavs])

    def info(self) -> dict:
        return {**self.inner.info(), "fingerprint": self.fingerprint, "padded_to_s": self.seconds}


def one_row_per_clip(src: str, tmp: Path) -> tuple[str, dict]:
    """The reference with one row (so one caption) per audio file: the first row of each clip."""
    rows = read_manifest(src)
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["audio"], r)
    n_captions = [len(r.get("captions") or [r.get("caption")]) for r in first.values()]
    policy = {"rule": "one caption per reference clip: the first row of each audio file in the manifest"
                      " (the importers put the first caption the test CSV lists in `caption`)",
              "rows": len(rows), "clips": len(first), "captions_per_clip_available": max(n_captions, default=0)}
    if len(first) == len(rows):
        return src, policy
    out = tmp / "reference-one-per-clip.jsonl"
    write_manifest(out, list(first.values()))
    return str(out), policy


def reranking_of(generated: str) -> dict:
    """Whether GENERATED came from `maa generate -n K` (best of K by audio-text score), read from
    the generate manifest (the GENERATED manifest, or *.jsonl next to the clips)."""
    p = Path(generated)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p] if p.suffix == ".jsonl" and p.is_file() else []

    for f in files:
        ks = []
        for line in read_text(f).splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and ("prompt" in row or "candidates" in row):
                ks.append(int(row.get("candidates", 1)))
        if ks:
            return {"used": max(ks) > 1, "candidates": max(ks), "from": str(f)}
    return {"used": None, "note": "unknown: no `maa generate` manifest with GENERATED (write one with --manifest)"}


def eval_card(result: dict, cfg: EvalConfig, generated: str, protocol: Protocol | None = None,
              caption_policy: dict | None = None) -> dict:
    """What the numbers depend on: extractors (names, weights, SHA-256), rate, crop/pad, counts, captions, -n."""
    extractors = []
    for label, block in result.get("extractors", {}).items():
        info = block.get("extractor", {})
        w = info.get("weights") or ""
        entry = {"block": label, "name": info.get("name"), "weights": w, "sample_rate": info.get("sample_rate"),
                 "metrics": [m for m, spec in METRICS.items() if spec.on_card and m in block]}
        if w and Path(w).exists():
            entry["sha256"] = sha256_of(w)
        extractors.append(entry)
    seconds = protocol.seconds if protocol else cfg.duration
    card = {
        "protocol": protocol.name if protocol else None,
        "follows": protocol.reference if protocol else None,
        "extractors": extractors,
        "sample_rate": SAMPLE_RATE,
        "clip_seconds": seconds,
        "crop_pad": (f"cut to {seconds:g} s and zero-padded to {seconds:g} s" if protocol else
                     "whole clips" if cfg.duration is None else f"cut to {cfg.duration:g} s, shorter clips not padded"),
        "clips": {"generated": result["generated"]["clips"], "reference": result["reference"]["clips"],
                  "pairs": result["pairs"]["n"], "paired_by": result["pairs"]["by"], "skipped": len(result.get("skipped", []))},
        "is_splits": cfg.is_splits,
        "caption_policy": caption_policy or {"rule": "as given: every reference row counts as a clip"},
        "clap_prompt": "the GENERATED row's caption, else its reference partner's caption",
        "reranking": reranking_of(generated),
    }
    if protocol:
        card["protocol_metrics"] = protocol.metrics  # the published numbers; other blocks' metrics are extras
        card["differences_from_reference"] = KNOWN_DIFFERENCES
    return card


def evaluate_protocol(generated: str, reference: str, name: str, extractors: list[str], device: str = "cpu",
                      cache_dir: Path | None = None, batch_size: int = 8, skip_bad: bool = False,
                      ui=None, load=None, folder: Path | None = None) -> dict:
    """`maa eval --protocol NAME`: the protocol's extractors and settings; the result carries its eval card."""

    proto = PROTOCOLS.get(name)
    specs = protocol_extractors(name, list(extractors), folder)
    base = load or load_extractor
    cfg = EvalConfig(extractors=specs, duration=proto.seconds, device=device, cache_dir=cache_dir,
                     batch_size=batch_size, skip_bad=skip_bad, is_splits=proto.is_splits, spectral=False)
    with tempfile.TemporaryDirectory() as tmp:
        ref, policy = one_row_per_clip(reference, Path(tmp))
        result = evaluate(generated, ref, cfg, ui=ui,
                          load=lambda spec, dev: PaddedExtractor(base(spec, dev), proto.seconds))
    result["reference"]["source"] = str(reference)
    result["eval_card"] = eval_card(result, cfg, generated, proto, policy)
    return result
