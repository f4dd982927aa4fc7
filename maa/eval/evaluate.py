"""`maa eval` as a library: two sets of clips in, one metrics dict out (per extractor).

Pipeline: read both sides (folder or manifest) -> pair clips by id, else by file name ->
decode every clip at 16 kHz (the toolkit's rate, so real and generated audio share the same
8 kHz band) cropped to `duration`, resample to each extractor's rate -> embed, caching each
clip's embedding under the SHA-256 of its file's bytes -> metrics -> a finite-only result.

Output layout (JSON):
  {"extractors": {"aisfx": {"extractor": {...}, "fd": .., "n_gen": .., "n_ref": .., "is": ..,
                            "kl": .., "n_pairs": .., "notes": [..]}, ...},
   "spectral": {"mel_l1": .., "lsd": .., "n_pairs": ..},     # only with paired clips
   "pairs": {...}, "generated": {...}, "reference": {...}, "skipped": [...], "warnings": [...]}
Numbers from different extractors never share a block; a metric that cannot be computed is
absent and its block's `notes` says why (never -1, NaN or inf).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr
import torch

from maa.core.audio import DEFAULT, SAMPLE_RATE, load_audio, mel_spectrogram
from maa.core.checkpoint import sha256_file
from maa.core.errors import MaaError
from maa.core.io import atomic_path
from maa.core.manifest import caption_of
from maa.core.progress import Reporter
from maa.data.formats import read_manifest
from maa.eval import metrics
from maa.eval.extractors import load_extractor

VGGISH_FAD = "fad"  # FD on VGGish frames is called FAD in the literature


@dataclass
class EvalConfig:
    """The settings of one `maa eval` run: extractors, clip length, device, cache, batch size, checks."""
    extractors: list[str] = field(default_factory=lambda: ["aisfx"])
    duration: float | None = 10.0      # seconds of each clip (None: whole clips)
    device: str = "cpu"
    cache_dir: Path | None = None      # None: no embedding cache
    batch_size: int = 8
    skip_bad: bool = False             # False: an unreadable clip stops the run (named)
    is_splits: int = 1
    spectral: bool = True              # mel L1 / LSD over paired clips


@dataclass
class Pairing:
    """How generated and reference clips were paired (by id, by file name, or not at all)."""
    pairs: list[tuple[dict, dict]]     # (generated row, reference row)
    by: str                            # "id", "file name", "id and file name" or "none"
    only_generated: list[str]
    only_reference: list[str]


def default_cache_dir() -> Path:
    """Where embeddings are cached: $MAA_CACHE/embeddings, else the XDG cache's maa/embeddings."""
    root = os.environ.get("MAA_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "maa")
    return Path(root).expanduser() / "embeddings"


def pair_clips(gen: list[dict], ref: list[dict]) -> Pairing:
    """Pair by id; clips left over are paired by audio file name (stem) when that is unique."""
    ref_by_id = {r["id"]: r for r in ref}
    pairs, used, left = [], set(), []
    for g in gen:
        r = ref_by_id.get(g["id"])
        if r is not None:
            pairs.append((g, r))
            used.add(r["id"])
        else:
            left.append(g)
    n_id = len(pairs)
    stems: dict[str, list[dict]] = {}
    for r in ref:
        if r["id"] not in used:
            stems.setdefault(Path(r["audio"]).stem, []).append(r)
    still = []
    for g in left:
        cands = stems.get(Path(g["audio"]).stem, [])
        if len(cands) == 1 and cands[0]["id"] not in used:
            pairs.append((g, cands[0]))
            used.add(cands[0]["id"])
        else:
            still.append(g)
    n_name = len(pairs) - n_id
    by = {(True, False): "id", (False, True): "file name", (True, True): "id and file name"}.get((n_id > 0, n_name > 0), "none")
    return Pairing(pairs, by, [g["id"] for g in still], [r["id"] for r in ref if r["id"] not in used])


class EmbeddingCache:
    """One .npz per (extractor fingerprint, clip bytes, duration): reruns and shared reference
    sets cost nothing, and a changed file or checkpoint can never hit a stale entry."""

    def __init__(self, root: Path | None, fingerprint: str, duration: float | None):
        self.dir = None if root is None else Path(root) / fingerprint
        self.tag = "full" if duration is None else f"d{duration:g}"

    def path(self, digest: str) -> Path | None:
        return None if self.dir is None else self.dir / f"{digest}-{self.tag}.npz"

    def get(self, digest: str) -> dict | None:
        p = self.path(digest)
        if p is None or not p.exists():
            return None
        try:
            with np.load(p) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # a damaged entry is recomputed, not trusted
            return None

    def put(self, digest: str, item: dict) -> None:
        p = self.path(digest)
        if p is None:
            return

        with atomic_path(p, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: v for k, v in item.items() if v is not None})


def _load_rows(src: str, what: str, cfg: EvalConfig, skipped: list[dict]) -> list[dict]:
    problems: list[dict] = []
    rows = read_manifest(src, on_problem=problems.append)
    for p in problems:
        if not cfg.skip_bad:
            raise MaaError(f"{what} {p['reason']} (or pass --skip-bad to leave such clips out, listed)")
        skipped.append({"set": what, **p})
    return rows


def _decode(row: dict, cfg: EvalConfig) -> np.ndarray:
    return load_audio(row["audio"], SAMPLE_RATE, max_seconds=cfg.duration)


def embed_rows(rows: list[dict], ex, cfg: EvalConfig, what: str, skipped: list[dict],
               bar=None) -> dict[str, dict]:
    """{id: {"emb": (D,), "logits": (C,) | absent, "frames": (n, D) | absent}} for every readable clip."""

    cache = EmbeddingCache(cfg.cache_dir, ex.fingerprint, cfg.duration)
    out: dict[str, dict] = {}
    todo: list[tuple[dict, str, np.ndarray]] = []

    def bad(row: dict, reason: str) -> None:
        if not cfg.skip_bad:
            raise MaaError(f"{what} clip {row['id']!r}: {reason} (or pass --skip-bad to leave it out, listed)")
        skipped.append({"set": what, "id": row["id"], "audio": row["audio"], "reason": reason})

    def flush() -> None:
        if not todo:
            return
        got = ex.embed([w for _, _, w in todo])
        for i, (row, digest, _) in enumerate(todo):
            item = {"emb": got.embeddings[i]}
            if got.logits is not None:
                item["logits"] = got.logits[i]
            if got.frames is not None:
                item["frames"] = got.frames[i]
            if not all(np.isfinite(v).all() for v in item.values()):
                bad(row, f"{ex.name} returned NaN/inf for {row['audio']}")
                continue
            cache.put(digest, item)
            out[row["id"]] = item
        if bar is not None:
            bar.update(len(todo))
        todo.clear()

    for row in rows:
        try:
            digest = sha256_file(row["audio"])
        except OSError as e:
            bad(row, f"{row['audio']}: cannot read ({e.strerror or e})")
            bar is not None and bar.update(1)
            continue
        hit = cache.get(digest)
        if hit is not None and "emb" in hit:
            out[row["id"]] = hit
            bar is not None and bar.update(1)
            continue
        try:
            wav = _decode(row, cfg)
        except MaaError as e:
            bad(row, str(e))
            bar is not None and bar.update(1)
            continue
        if ex.sample_rate != SAMPLE_RATE:
            wav = soxr.resample(wav, SAMPLE_RATE, ex.sample_rate, quality="HQ").astype(np.float32)
        todo.append((row, digest, wav))
        if len(todo) >= cfg.batch_size:
            flush()
    flush()
    return out


def _covariance_warning(label: str, what: str, n: int, dim: int) -> str | None:
    if n <= dim:
        return (f"{label}: {n} {what} for a {dim}-d covariance: its rank is at most {n - 1} < {dim}, so the Fréchet "
                f"distance (exact for this singular fit) is biased upward and noisy; compare it only with numbers from "
                f"the same counts, and use more than {dim} for a full-rank fit")
    return None


def extractor_block(ex, gen: dict[str, dict], ref: dict[str, dict], pairing: Pairing, cfg: EvalConfig,
                    label: str, warnings: list[str], gen_rows: list[dict]) -> dict:
    """All metrics of one extractor; every number in it comes from that extractor only."""
    block: dict = {"extractor": ex.info(), "n_gen": len(gen), "n_ref": len(ref)}
    notes: list[str] = []
    for what, d in (("generated", gen), ("reference", ref)):
        if len(d) < 2:
            raise MaaError(f"{label}: only {len(d)} usable {what} clip(s); a Fréchet distance needs at least 2 "
                           f"(and more than {ex.dim} for a full-rank covariance)")
    # Fréchet distance: clip embeddings, or every frame for frame-level extractors (FAD)
    key = VGGISH_FAD if ex.name == "vggish" else "fd"
    if ex.frame_level:
        xg = np.concatenate([v["frames"] for v in gen.values()])
        xr = np.concatenate([v["frames"] for v in ref.values()])
        block.update(n_gen_frames=len(xg), n_ref_frames=len(xr))
        unit = "frames"
    else:
        xg = np.stack([v["emb"] for v in gen.values()])
        xr = np.stack([v["emb"] for v in ref.values()])
        unit = "clips"
    block[key] = metrics.frechet_distance_of(xg, xr)
    for what, x in (("generated " + unit, xg), ("reference " + unit, xr)):
        w = _covariance_warning(label, what, len(x), x.shape[1])
        if w:
            warnings.append(w)
    # Class-distribution metrics need a classifier head
    if ex.n_classes:
        pg = metrics.softmax(np.stack([v["logits"] for v in gen.values()]))
        pr = metrics.softmax(np.stack([v["logits"] for v in ref.values()]))
        splits = min(cfg.is_splits, len(pg))
        block["is"], is_std = metrics.inception_score(pg, splits)
        block["is_ref"], _ = metrics.inception_score(pr, min(cfg.is_splits, len(pr)))
        if splits > 1:
            block["is_std"] = is_std
        block["is_splits"] = splits
        pairs = [(g["id"], r["id"]) for g, r in pairing.pairs if g["id"] in gen and r["id"] in ref]
        if pairs:
            block["kl"] = metrics.kl_divergence(metrics.softmax(np.stack([ref[r]["logits"] for _, r in pairs])),
                                                metrics.softmax(np.stack([gen[g]["logits"] for g, _ in pairs])))
            block["n_pairs"] = len(pairs)
        else:
            notes.append("kl: not computed: no generated clip has a reference partner (by id or file name)")
    else:
        notes.append(f"is, kl: not computed: {ex.name} has no classifier head or class list (no class probabilities)")
    # CLAP score: generated audio against its prompt
    if hasattr(ex, "embed_text"):
        partner = {g["id"]: r for g, r in pairing.pairs}
        ids, prompts = [], []
        for row in gen_rows:
            if row["id"] not in gen:
                continue
            text = row.get("caption") or (partner.get(row["id"]) or {}).get("caption") or caption_of(row)
            if text:
                ids.append(row["id"])
                prompts.append(str(text))
        if ids:
            block["clap_score"] = metrics.clap_score(np.stack([gen[i]["emb"] for i in ids]), ex.embed_text(prompts))
            block["n_prompts"] = len(ids)
            if len(ids) < len(gen):
                warnings.append(f"{label}: clap_score uses the {len(ids)} of {len(gen)} generated clips that have a prompt "
                                "(a `caption`, their reference partner's caption, or `labels`)")
        else:
            notes.append("clap_score: not computed: no generated clip has a prompt (give GENERATED as a manifest with `caption`)")
    if notes:
        block["notes"] = notes
    return block


def spectral_block(pairing: Pairing, cfg: EvalConfig, skipped: list[dict]) -> dict:
    """Mel L1 (Make-An-Audio's log10 mel) and log-spectral distance (dB) over paired clips."""

    l1, lsd = [], []
    for g, r in pairing.pairs:
        try:
            a, b = _decode(g, cfg), _decode(r, cfg)
        except MaaError as e:
            if not cfg.skip_bad:
                raise
            skipped.append({"set": "pairs", "id": g["id"], "audio": g["audio"], "reason": str(e)})
            continue
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        l1.append(metrics.mel_l1(mel_spectrogram(a).numpy(), mel_spectrogram(b).numpy()))
        window = torch.hann_window(DEFAULT.win_length)
        pa, pb = (torch.stft(torch.from_numpy(np.pad(x, (0, max(0, DEFAULT.n_fft - len(x))))), DEFAULT.n_fft,
                             DEFAULT.hop_length, window=window, return_complex=True).abs().pow(2).numpy() for x in (a, b))
        lsd.append(metrics.log_spectral_distance(pa, pb))
    if not l1:
        return {}
    return {"front_end": f"maa mel (16 kHz, n_fft {DEFAULT.n_fft}, hop {DEFAULT.hop_length}, {DEFAULT.n_mels} mels)",
            "mel_l1": float(np.mean(l1)), "lsd": float(np.mean(lsd)), "n_pairs": len(l1)}


def check_finite(obj, where: str = "metrics") -> None:
    """Refuse to report garbage: any NaN/inf anywhere in the result is an error naming the key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, f"{where}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise MaaError(f"{where} came out as {obj}; refusing to write it (this is a bug or degenerate input: "
                       "check the clips it names in the warnings)")


def evaluate(generated: str, reference: str, cfg: EvalConfig,
             ui: Reporter | None = None,
             load=None) -> dict:
    """Compute every metric for every extractor in cfg; returns the JSON-ready result."""

    load = load or load_extractor
    ui = ui or Reporter(quiet=True)
    skipped: list[dict] = []
    warnings: list[str] = []
    gen_rows = _load_rows(generated, "GENERATED", cfg, skipped)
    ref_rows = _load_rows(reference, "REFERENCE", cfg, skipped)
    pairing = pair_clips(gen_rows, ref_rows)
    if pairing.pairs and (pairing.only_generated or pairing.only_reference):
        warnings.append(
            f"{len(pairing.pairs)} pairs by {pairing.by}; unpaired: {len(pairing.only_generated)} generated "
            f"({', '.join(pairing.only_generated[:5])}{', ...' if len(pairing.only_generated) > 5 else ''}), "
            f"{len(pairing.only_reference)} reference ({', '.join(pairing.only_reference[:5])}"
            f"{', ...' if len(pairing.only_reference) > 5 else ''}); KL and spectral metrics use the pairs only "
            "(full lists under `pairs` in the JSON)")

    names = [s.partition(":")[0] for s in cfg.extractors]
    blocks: dict[str, dict] = {}
    for spec, name in zip(cfg.extractors, names):
        label = spec if names.count(name) > 1 else name
        ex = load(spec, cfg.device)
        with ui.bar(len(gen_rows) + len(ref_rows), f"{label}") as bar:
            gen = embed_rows(gen_rows, ex, cfg, "GENERATED", skipped, bar)
            ref = embed_rows(ref_rows, ex, cfg, "REFERENCE", skipped, bar)
        blocks[label] = extractor_block(ex, gen, ref, pairing, cfg, label, warnings, gen_rows)

    result: dict = {
        "generated": {"source": str(generated), "clips": len(gen_rows)},
        "reference": {"source": str(reference), "clips": len(ref_rows)},
        "settings": {"sample_rate": SAMPLE_RATE, "duration": cfg.duration, "is_splits": cfg.is_splits},
        "pairs": {"n": len(pairing.pairs), "by": pairing.by, "only_generated": pairing.only_generated,
                  "only_reference": pairing.only_reference},
        "extractors": blocks,
    }
    if cfg.spectral and pairing.pairs:
        spec_block = spectral_block(pairing, cfg, skipped)
        if spec_block:
            result["spectral"] = spec_block
    # de-duplicate skips (the same bad clip is met once per extractor)
    seen, uniq = set(), []
    for s in skipped:
        k = (s.get("set"), s.get("id"), s.get("reason"))
        if k not in seen:
            seen.add(k)
            uniq.append(s)
    if uniq:
        warnings.append(f"{len(uniq)} clip(s) left out (--skip-bad): " +
                        "; ".join(f"{s.get('id')}: {s['reason']}" for s in uniq[:5]) + ("; ..." if len(uniq) > 5 else ""))
    result["skipped"] = uniq
    result["warnings"] = warnings
    check_finite(result)
    return result


def table_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(block, metric, value, n) rows for the terminal table, in the order of metrics.METRICS."""
    out = []
    blocks = [(label, b, "extractor") for label, b in result.get("extractors", {}).items()]
    if result.get("spectral"):
        blocks.append(("spectral", result["spectral"], "spectral"))
    for label, block, where in blocks:
        for m in metrics.METRICS.values():
            if m.block == where and m.name in block:
                out.append((label, m.name, f"{block[m.name]:.4f}", metrics.count_of(m.name, block)))
    return out

