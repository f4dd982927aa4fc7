"""Training and measuring maa-clap: the paired data set, the trainer Task, zero-shot and retrieval.

Data: every clip gives its log-mel (the manifest's `mel` .npy when `maa mel` made one, else
computed from `audio` once and kept in memory) and its texts: the caption plus the label
phrasings of maa.data.caption.label_captions. Each training sample is a random crop of the mel
(tiled when the clip is shorter), a random gain, and one of the clip's texts at random:
half the time the caption, half a label phrasing, so both free captions and "the sound of X"
prompts land near the audio. The frozen MiniLM embeds every distinct text once, up front, so
a training step costs only the audio CNN and the two small MLPs.

Positives: clips with the same first label (their class) are positives of each other in the
InfoNCE targets; clips without labels are grouped by caption.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from maa.core.audio import DEFAULT as MEL_DEFAULT
from maa.core.audio import MEL_MIN
from maa.core.checkpoint import load_weights, num_params
from maa.core.errors import MaaError
from maa.core.manifest import split_holdout
from maa.core.progress import Reporter
from maa.data.caption import label_captions, label_text
from maa.data.formats import read_manifest
from maa.data.mels import row_mel
from maa.models.clap import ClapConfig, MaaClap, fit_mel, info_nce
from maa.parts.scorers import MaaClapScorer, resolve_maa_clap_dir
from maa.parts.text import load_text_encoder
from maa.train.loop import TrainConfig, adamw, autocast, backward_step, seed_everything, train
from maa.train.run import RunOptions, begin, read_part_config

ZERO_SHOT_TEMPLATE = "the sound of {}"


def clip_mel(row: dict, max_seconds: float = 30.0) -> np.ndarray:
    """The (80, T) float32 log-mel of a row: its `mel` file if any, else computed from its audio."""

    return np.asarray(row_mel(row, max_seconds=max_seconds), dtype=np.float32)


def load_mels(rows: Sequence[dict], progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Each row's mel as float16, reporting one per row to `progress`."""
    out = []
    for r in rows:
        out.append(clip_mel(r).astype(np.float16))  # float16 halves the memory; the CNN sees float32
        if progress:
            progress(1)
    return out


def row_texts(row: dict) -> tuple[list[str], list[str]]:
    """(captions, label phrasings) a clip trains with."""
    caps = [str(row["caption"])] if row.get("caption") else []
    return caps, label_captions(row.get("labels") or [])


def row_group(row: dict) -> str:
    """The positives group of a row: its first label, else its caption."""
    labels = row.get("labels") or []
    return f"label:{label_text(labels[0])}" if labels else f"caption:{row.get('caption', row['id'])}"


class PairedClips(torch.utils.data.Dataset):
    """(mel crop, frozen text embedding, group id) samples for contrastive training."""

    def __init__(self, rows: list[dict], mels: list[np.ndarray], text_table: dict[str, torch.Tensor],
                 frames: int, groups: dict[str, int], augment: bool = True):
        self.rows, self.mels, self.frames, self.augment = rows, mels, frames, augment
        self.texts = [row_texts(r) for r in rows]
        self.table = text_table
        self.groups = [groups[row_group(r)] for r in rows]
        for caps, phr in self.texts:
            if not caps and not phr:
                raise MaaError("a training clip has neither a caption nor labels; caption it first (maa caption)")

    def __len__(self):
        return len(self.rows)

    def get(self, i: int, rng: np.random.Generator) -> dict:
        mel = torch.from_numpy(self.mels[i].astype(np.float32))
        mel = fit_mel(mel, self.frames)
        start = int(rng.integers(0, mel.shape[-1] - self.frames + 1)) if self.augment else 0
        mel = mel[:, start:start + self.frames]
        caps, phr = self.texts[i]
        if self.augment:
            mel = (mel + float(rng.uniform(-0.5, 0.3))).clamp(min=MEL_MIN)  # gain of -10..+6 dB
            pool = caps if caps and (not phr or rng.random() < 0.5) else phr
            text = pool[int(rng.integers(len(pool)))]
        else:
            text = (caps or phr)[0]
        return {"mel": mel.contiguous(), "text": self.table[text], "group": self.groups[i]}

    def __getitem__(self, i: int) -> dict:
        return self.get(i, np.random.default_rng(i))


def all_texts(rows: Sequence[dict]) -> list[str]:
    """Every caption and label phrase of `rows`, each once, in order."""
    out = []
    for r in rows:
        caps, phr = row_texts(r)
        out += caps + phr
    return list(dict.fromkeys(out))


def embed_texts(encoder, texts: list[str], batch: int = 256) -> dict[str, torch.Tensor]:
    """text -> pooled embedding of the frozen encoder, in batches of `batch`."""
    table = {}
    for s in range(0, len(texts), batch):
        chunk = texts[s:s + batch]
        for t, e in zip(chunk, encoder.encode(chunk).pooled.float().cpu()):
            table[t] = e
    return table


class ClapTask:
    """maa-clap as a trainer Task: weights land in RUN/clap/ (config.json + model.safetensors)."""

    name = "clap"

    def __init__(self, model: MaaClap, classes: list[str] | None = None, cosine: bool = True, lr_floor: float = 0.05):
        self.model = model
        self.classes = classes or []
        self.cosine, self.lr_floor = cosine, lr_floor

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        self.opt = adamw(self.model.parameters(), cfg)
        return {"model": self.opt}

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.model.embed_mel(batch["mel"]).float()
        t = self.model.embed_pooled(batch["text"]).float()
        return info_nce(a, t, self.model.logit_scale, batch["group"]), a, t

    def train_step(self, batch: dict, step: int, cfg: TrainConfig) -> dict[str, float]:
        if self.cosine:  # cosine decay to lr_floor * lr over the run, on top of the loop's warm-up
            f = self.lr_floor + (1 - self.lr_floor) * 0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0)))
            for g in self.opt.param_groups:
                g["lr"] *= f  # the loop resets lr from base_lr before every step, so this never compounds
        with autocast(cfg):
            loss, _, _ = self._loss(batch)
        backward_step(loss, self.opt, self.model.parameters(), cfg)
        return {"loss": loss.item(), "temperature": float(1.0 / self.model.logit_scale.detach().exp().clamp(max=100.0))}

    def validate(self, batches: list, step: int, out_dir: Path) -> dict[str, float]:
        losses, hits, n = [], 0, 0
        for b in batches:
            loss, a, t = self._loss(b)
            losses.append(loss.item())
            top = (a @ t.T).argmax(dim=1)  # audio -> text within the batch; a same-class text counts
            hits += int((b["group"][top] == b["group"]).sum())
            n += len(a)
        return {"loss": float(np.mean(losses)), "a2t_top1": hits / max(n, 1)}

    def export_config(self) -> dict:
        return {"kind": "maa-clap", "model": self.model.cfg.to_dict(), "mel": MEL_DEFAULT.to_dict(),
                "classes": self.classes}


# ----------------------------------------------------------------------------- measuring


def zero_shot(audio: torch.Tensor, text_of_class: torch.Tensor, classes: list[str],
              labels: Sequence[Sequence[str]]) -> dict:
    """Zero-shot classification: each clip takes the class whose prompt is nearest.

    `audio` (N, E) and `text_of_class` (C, E) are normalised embeddings; a clip is right when
    the predicted class is its first label. Returns accuracy and the predictions.
    """
    pred = (audio @ text_of_class.T).argmax(dim=1).tolist()
    truth = [label_text(l[0]) if l else None for l in labels]
    names = [label_text(c) for c in classes]
    correct = [names[p] == t for p, t in zip(pred, truth)]
    return {"accuracy": float(np.mean(correct)) if correct else 0.0, "pred": [classes[p] for p in pred], "n": len(correct)}


def retrieval(text: torch.Tensor, audio: torch.Tensor, relevant: Sequence[set[int]], ks=(1, 5, 10)) -> dict:
    """Text-to-audio retrieval: for query i, R@k = 1 if any clip in relevant[i] is in the top k."""
    order = torch.argsort(text @ audio.T, dim=1, descending=True, stable=True)
    out = {}
    for k in ks:
        top = order[:, :k].tolist()
        out[f"R@{k}"] = float(np.mean([bool(rel & set(t)) for rel, t in zip(relevant, top)]))
    return out


def class_names(rows: Sequence[dict]) -> list[str]:
    """The sorted first labels of `rows` (the zero-shot class list)."""
    return sorted({label_text(r["labels"][0]) for r in rows if r.get("labels")})


def measure(scorer, rows: Sequence[dict], mels: Sequence[np.ndarray], classes: list[str],
            template: str = ZERO_SHOT_TEMPLATE) -> dict:
    """Zero-shot accuracy ("the sound of X" for each class) and caption->audio R@1/5/10 on `rows`.

    A retrieval query is a clip's caption; every clip with that same caption counts as a hit
    (the demo corpus repeats captions across renders of one class), `strict_R@k` counts only
    the clip the caption came from, and `class_R@k` any clip of the caption's class.
    """
    audio = scorer.embed_mels(mels)
    out: dict = {"clips": len(rows)}
    labelled = [i for i, r in enumerate(rows) if r.get("labels")]
    if labelled and classes:
        prompts = scorer.embed_text([template.format(c) for c in classes])
        zs = zero_shot(audio[labelled], prompts, classes, [rows[i]["labels"] for i in labelled])
        out["zero_shot_acc"] = zs["accuracy"]
        out["classes"] = len(classes)
    captioned = [i for i, r in enumerate(rows) if r.get("caption")]
    if captioned:
        caps = [str(rows[i]["caption"]) for i in captioned]
        text = scorer.embed_text(caps)
        same = [{j for j, r in enumerate(rows) if r.get("caption") == c} for c in caps]
        out.update(retrieval(text, audio, same))
        out.update({f"strict_{k}": v for k, v in retrieval(text, audio, [{i} for i in captioned]).items()})
        if labelled:  # class level: a hit when a clip of the query's class (first label) is in the top k
            first = [label_text(r["labels"][0]) if r.get("labels") else None for r in rows]
            rel = [{j for j, c in enumerate(first) if c is not None and c == first[i]} for i in captioned]
            out.update({f"class_{k}": v for k, v in retrieval(text, audio, rel).items()})
    return out



# ----------------------------------------------------------------------------- `maa train-clap`


def _clap_config(folder: Path, what: str) -> ClapConfig:
    return read_part_config(folder, what, "maa-clap", "model", ClapConfig, "clap")


@dataclass(kw_only=True)
class ClapTrainOptions(RunOptions):
    """Everything `maa train-clap` takes; the defaults are the command's."""

    manifest: str
    val_fraction: float = 0.1
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    cosine: bool = True
    frames: int = 192
    channels: str = "32,64,128,256"
    embed_dim: int = 256
    text_encoder: str = "minilm"
    ckpt_every: int = 500
    val_every: int = 200
    log_every: int = 25


def _texted(src: str) -> list[dict]:
    return [r for r in read_manifest(src) if r.get("caption") or r.get("labels")]


def _warn_new_horizon(out_dir: Path, steps: int, ui: Reporter) -> None:
    """The cosine schedule spans --steps: resuming with another count bends the curve from here on, so the
    result is not the run a single --steps would have made (with the same count, resuming is exact)."""
    try:
        before = int(json.loads((out_dir / "train_config.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if before != steps:
        ui.warn(f"--steps {steps}: the run's cosine learning-rate schedule spanned {before} steps; it now spans "
                f"{steps}, so the result differs from one run of {steps} steps (--constant-lr has no schedule)")


def train_clap(o: ClapTrainOptions, ui: Reporter | None = None) -> dict:
    """`maa train-clap`: the run-folder rule, --init / the run's own architecture, clips and texts
    embedded once, the loop, then held-out zero-shot and retrieval figures. Returns the final metrics."""

    ui = ui or Reporter()
    try:
        widths = tuple(int(c) for c in o.channels.split(","))
    except ValueError:
        raise MaaError(f"--channels {o.channels!r}: want widths separated by commas, e.g. 32,64,128,256") from None
    shortest = ClapConfig().time_pool * 2 ** len(widths)  # the input pool and one 2x pool per CNN stage
    if o.frames < shortest:
        raise MaaError(f"--frames {o.frames}: too short for {len(widths)} pooling stages; use at least {shortest}")
    if o.batch_size < 2:
        raise MaaError(f"--batch-size {o.batch_size}: maa-clap needs at least 2 (the in-batch negatives)")
    run = begin(o, ui, seed=False)
    out_dir, init = Path(o.out_dir), None
    if run.start.resume and o.cosine and run.main:
        _warn_new_horizon(out_dir, o.steps, ui)
    cfg = ClapConfig(channels=widths, embed_dim=o.embed_dim, text_encoder=o.text_encoder, crop_frames=o.frames)
    if run.start.resume and (out_dir / "clap" / "config.json").exists():
        cfg = _clap_config(out_dir / "clap", str(out_dir / "clap"))  # the run's own architecture wins
    elif o.init is not None:
        init = resolve_maa_clap_dir(o.init)
        cfg = _clap_config(init, f"--init {o.init}")  # its architecture and text encoder
    frames = cfg.crop_frames

    rows = _texted(o.manifest)
    if not rows:
        raise MaaError(f"{o.manifest}: no clip has a caption or labels; maa-clap learns from text paired with audio")
    if o.val:
        val_rows = _texted(o.val)
    else:
        rows, val_rows = split_holdout(rows, o.val_fraction, min_rows=10)

    encoder = load_text_encoder(cfg.text_encoder, device=str(run.device))
    if encoder.dim != cfg.text_dim:
        cfg.text_dim = encoder.dim
    with ui.bar(len(rows) + len(val_rows), "read clips", disable=o.quiet or not run.main) as bar:
        mels = load_mels(rows, bar.update)
        val_mels = load_mels(val_rows, bar.update)
    texts = all_texts(rows + val_rows)
    table = embed_texts(encoder, texts)
    groups = {g: i for i, g in enumerate(dict.fromkeys(row_group(r) for r in rows + val_rows))}
    train_set = PairedClips(rows, mels, table, frames, groups, augment=True)
    val_set = PairedClips(val_rows, val_mels, table, frames, groups, augment=False) if val_rows else None

    seed_everything(o.seed)
    model = MaaClap(cfg)
    if init is not None:
        load_weights(init, {"model": model})
    classes = class_names(rows)
    task = ClapTask(model, classes, cosine=o.cosine)
    if run.main:
        ui.info(f"maa-clap: {num_params(model) / 1e6:.2f} M trainable parameters"
                f"{f' (from {o.init})' if init is not None else ''}; {len(rows)} training clips, {len(val_rows)} held "
                f"out, {len(texts)} distinct texts, {len(classes)} classes; device: {run.describe_device()}")
    tcfg = o.train_config(run.device, weight_decay=o.weight_decay,
                          max_val_batches=max(1, -(-len(val_rows) // o.batch_size)))
    final = train(task, train_set, val_set, tcfg, resume=run.start.resume)
    if not run.main:
        return final
    if val_rows:
        scorer = MaaClapScorer(out_dir / "clap", device=str(run.device))
        final.update({f"heldout_{k}": v for k, v in measure(scorer, val_rows, val_mels, class_names(rows + val_rows)).items()})
    final["model"] = str(out_dir / "clap")
    ui.info(f"wrote {out_dir / 'clap'}; use it as --scorer maa-clap:{out_dir / 'clap'}")
    return final
