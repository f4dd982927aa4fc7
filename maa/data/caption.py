"""Captions for language-free audio: experts propose, an audio-text scorer picks (`maa caption`).

Make-An-Audio's prompt enhancement ("expert distillation"): several experts each propose
captions for a clip, every candidate is scored against the audio with CLAP, and the best
one becomes the clip's caption. The experts here:

  * labels    - the clip's class labels or tags, in several natural phrasings
                ("the sound of dog", "dog can be heard", ...);
  * retrieval - the captions of a caption bank (a text file, or a JSONL manifest's captions)
                nearest to the clip by audio-text similarity;
  * captioner - a local transformers audio-captioning model (a speech-seq2seq folder such as
                a Whisper fine-tune: feature extractor + tokenizer + model), when given.

Every candidate is kept in the output row with its score and expert, so the choice can be
audited or re-made. Clips that already have a caption keep it unless `overwrite`.
Finished rows are appended to OUT.partial as they are done; a rerun skips them, and the
complete manifest is renamed into place at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from maa.core.audio import SAMPLE_RATE, load_audio
from maa.core.errors import MaaError
from maa.core.io import read_text
import soxr

EXPERTS = ("labels", "retrieval", "captioner")
# Phrasings of a label: zero-shot prompts and training texts use the same family.
LABEL_TEMPLATES = ("the sound of {}", "{}", "a recording of {}", "{} can be heard")


def label_text(label: str) -> str:
    """A label as words (`dog_bark` -> `dog bark`)."""
    return str(label).replace("_", " ").strip()


def label_captions(labels: Sequence[str]) -> list[str]:
    """Natural captions for a clip's labels: every template for each label, and the labels joined."""
    names = list(dict.fromkeys(label_text(l) for l in labels if label_text(l)))
    out = [t.format(n) for n in names for t in LABEL_TEMPLATES]
    if len(names) > 1:
        joined = " and ".join(names)
        out += [f"the sound of {joined}", joined]
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- caption bank


@dataclass
class BankEntry:
    """A retrievable caption and the labels of the row it came from."""
    text: str
    labels: list[str] = field(default_factory=list)  # labels of the row it came from (for accuracy checks)


def read_bank(path: str | os.PathLike) -> list[BankEntry]:
    """Captions from a text file (one per line) or JSONL (rows with `caption` or `text`), deduplicated."""
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"{path}: no such caption bank; pass a text file (one caption per line) or a JSONL manifest")
    seen: dict[str, BankEntry] = {}
    for n, line in enumerate(read_text(path).splitlines(), 1):  # non-UTF-8 bytes: a warning, not silence
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError as e:
                raise MaaError(f"{path} line {n}: malformed JSON ({e}); fix or delete the line") from None
            text = row.get("caption") or row.get("text")
            labels = [str(l) for l in row.get("labels") or []]
        else:
            text, labels = line, []
        if text and str(text).strip() and str(text) not in seen:
            seen[str(text).strip()] = BankEntry(str(text).strip(), labels)
    if not seen:
        raise MaaError(f"{path}: the caption bank holds no captions")
    return list(seen.values())


# ----------------------------------------------------------------------------- captioner expert


class HFCaptioner:
    """A local transformers speech-to-text model folder used as an audio captioner.

    Loads AutoFeatureExtractor + AutoTokenizer + AutoModelForSpeechSeq2Seq from the folder
    only (local_files_only), feeds it audio at the feature extractor's sampling rate and
    decodes `num_captions` beams.
    """

    def __init__(self, folder: str | os.PathLike, device: str = "cpu", num_captions: int = 3, max_new_tokens: int = 30):
        from transformers import (  # noqa: PLC0415  transformers: slow import, kept off this module's import
            AutoFeatureExtractor,
            AutoModelForSpeechSeq2Seq,
            AutoTokenizer,
        )

        self.folder = Path(folder)
        if not (self.folder / "config.json").exists():
            raise MaaError(f"{self.folder}: not a transformers model folder (no config.json); "
                           "pass a local audio-captioning model folder")
        try:
            self.features = AutoFeatureExtractor.from_pretrained(self.folder, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self.model = AutoModelForSpeechSeq2Seq.from_pretrained(self.folder, local_files_only=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise MaaError(f"{self.folder}: cannot load it as a speech-to-text captioner ({first})") from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.num_captions, self.max_new_tokens = num_captions, max_new_tokens

    @torch.no_grad()
    def __call__(self, wavs: Sequence[np.ndarray]) -> list[list[str]]:
        sr = int(getattr(self.features, "sampling_rate", SAMPLE_RATE))
        audio = [w if sr == SAMPLE_RATE else soxr.resample(w, SAMPLE_RATE, sr, quality="HQ") for w in wavs]
        inputs = self.features(audio, sampling_rate=sr, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        k = self.num_captions
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=max(k, 1),
                                  num_return_sequences=k, do_sample=False)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [list(dict.fromkeys(t.strip() for t in texts[i * k:(i + 1) * k] if t.strip())) for i in range(len(wavs))]


# ----------------------------------------------------------------------------- the job


@dataclass
class CaptionJob:
    """What `maa caption` runs: which experts propose captions, their inputs, and how many to keep."""
    experts: tuple[str, ...] = ("labels", "retrieval", "captioner")
    bank: list[BankEntry] | None = None
    captioner: Callable[[Sequence[np.ndarray]], list[list[str]]] | None = None
    top_k: int = 5  # retrieval candidates per clip
    overwrite: bool = False
    batch_size: int = 16
    max_seconds: float = 10.0  # audio scored per clip (the models see 10 s at most)


def candidates_for(row: dict, job: CaptionJob, retrieved: list[tuple[str, float]], captions: list[str]) -> list[dict]:
    """The candidates of one clip, as {text, expert}; a text proposed twice keeps its first expert."""
    out: dict[str, dict] = {}
    if "labels" in job.experts:
        for t in label_captions(row.get("labels") or []):
            out.setdefault(t, {"text": t, "expert": "labels"})
    if "retrieval" in job.experts:
        for t, _ in retrieved:
            out.setdefault(t, {"text": t, "expert": "retrieval"})
    if "captioner" in job.experts:
        for t in captions:
            out.setdefault(t, {"text": t, "expert": "captioner"})
    return list(out.values())


def caption_rows(rows: list[dict], scorer, job: CaptionJob, out_path: Path | None = None,
                 progress: Callable[[int], None] | None = None) -> list[dict]:
    """Caption `rows` with `scorer`; returns the output rows in input order.

    With `out_path`, finished rows are appended to OUT.partial as they are done, and rows
    already there (from an interrupted run) are reused, not recomputed.
    """
    for e in job.experts:
        if e not in EXPERTS:
            raise MaaError(f"--experts: unknown expert {e!r}; choose from {', '.join(EXPERTS)}")
    if "retrieval" in job.experts and not job.bank:
        job = CaptionJob(**{**job.__dict__, "experts": tuple(e for e in job.experts if e != "retrieval")})
    if "captioner" in job.experts and job.captioner is None:
        job = CaptionJob(**{**job.__dict__, "experts": tuple(e for e in job.experts if e != "captioner")})

    partial = Path(str(out_path) + ".partial") if out_path else None
    done = _read_partial(partial) if partial else {}
    results: dict[str, dict] = {}
    todo = []
    for row in rows:
        if row["id"] in done:
            results[row["id"]] = done[row["id"]]
        elif row.get("caption") and not job.overwrite:
            results[row["id"]] = {**row, "caption_source": row.get("caption_source", "given")}
        else:
            todo.append(row)
    if progress and len(rows) - len(todo):
        progress(len(rows) - len(todo))

    bank_emb = None
    if "retrieval" in job.experts:
        bank_emb = scorer.embed_text([b.text for b in job.bank])
    for s in range(0, len(todo), job.batch_size):
        batch = todo[s:s + job.batch_size]
        wavs, good = [], []
        for row in batch:
            try:
                wavs.append(load_audio(row["audio"], max_seconds=job.max_seconds))
                good.append(row)
            except MaaError as e:
                results[row["id"]] = {**row, "caption_error": str(e)}
        new = _caption_batch(good, wavs, scorer, job, bank_emb)
        for row in new:
            results[row["id"]] = row
        if partial:
            with open(partial, "a") as f:
                for row in batch:  # rows that failed are not kept: a rerun tries them again
                    if "caption_error" not in results[row["id"]]:
                        f.write(json.dumps(results[row["id"]]) + "\n")
        if progress:
            progress(len(batch))
    return [results[r["id"]] for r in rows]


def _caption_batch(rows: list[dict], wavs: list[np.ndarray], scorer, job: CaptionJob, bank_emb) -> list[dict]:
    if not rows:
        return []
    audio = scorer.embed_audio(wavs)  # (B, E)
    retrieved: list[list[tuple[str, float]]] = [[] for _ in rows]
    if bank_emb is not None:
        sims = audio @ bank_emb.T
        k = min(job.top_k, sims.shape[1])
        vals, idx = sims.topk(k, dim=1)
        retrieved = [[(job.bank[j].text, float(v)) for v, j in zip(vs, js)] for vs, js in zip(vals.tolist(), idx.tolist())]
    captions = job.captioner(wavs) if "captioner" in job.experts else [[] for _ in rows]
    out = []
    for i, row in enumerate(rows):
        cands = candidates_for(row, job, retrieved[i], captions[i])
        if not cands:
            out.append({**row, "caption_error": "no candidate caption (no labels, no --bank, no --captioner)"})
            continue
        scores = (scorer.embed_text([c["text"] for c in cands]) @ audio[i]).tolist()
        for c, sc in zip(cands, scores):
            c["score"] = round(float(sc), 6)
        # stable sort: on equal scores the earlier expert (labels, then retrieval) wins
        cands.sort(key=lambda c: -c["score"])
        best = cands[0]
        new = {k: v for k, v in row.items() if k != "caption_error"}
        new.update(caption=best["text"], caption_source=best["expert"], caption_score=best["score"],
                   candidates=cands)
        out.append(new)
    return out


def _read_partial(path: Path) -> dict[str, dict]:
    """Rows an interrupted run finished (a torn last line is ignored and redone)."""
    done = {}
    if path and path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "id" in row:
                done[str(row["id"])] = row
    return done



def parse_experts(text: str) -> tuple[str, ...]:
    """--experts "labels,retrieval": the names, checked against EXPERTS."""
    wanted = tuple(e.strip() for e in text.split(",") if e.strip())
    for e in wanted:
        if e not in EXPERTS:
            raise MaaError(f"--experts: unknown expert {e!r}; choose from {', '.join(EXPERTS)}")
    return wanted


def caption_summary(result: list[dict]) -> tuple[str, bool]:
    """The closing log line of `maa caption` and whether any clip ended with a caption."""
    new = [r for r in result if r.get("candidates")]
    by: dict[str, int] = {}
    for r in new:
        by[r["caption_source"]] = by.get(r["caption_source"], 0) + 1
    kept = sum(1 for r in result if r.get("caption_source") == "given")
    failed = sum(1 for r in result if r.get("caption_error"))
    line = (f"captioned {len(new)} clips ({', '.join(f'{k} {v}' for k, v in sorted(by.items())) or 'none'}), "
            f"kept {kept} existing captions, failed {failed}")
    return line, bool(new or kept)
