"""`maa caption`: captions for language-free audio, chosen among expert candidates by audio-text score."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from maa.core import progress
from maa.commands.common import friendly, info, warn
from maa.commands.options import BatchSize, Device, Quiet, Seed
from maa.core.errors import MaaError

HELP = """Caption clips: experts propose candidates, the audio-text scorer keeps the best.

Experts: `labels` (the clip's labels in several phrasings: "the sound of dog", ...),
`retrieval` (the --top-k captions of a caption bank nearest to the clip; --bank is a text
file with one caption per line, or a JSONL manifest whose captions are used) and `captioner`
(a local transformers audio-captioning model folder, --captioner). Every candidate is scored
with --scorer; the output row gets `caption`, `caption_source` (the expert), `caption_score`
and `candidates` (all of them, best first). Clips that have a caption keep it unless
--overwrite. Reruns continue where an interrupted run stopped (OUT.partial).

Examples:

  maa caption clips/ -o captioned.jsonl --scorer maa-clap:runs/clap/clap --bank data/demo/train.jsonl

  maa caption new.jsonl -o new_captioned.jsonl --scorer laion-clap:630k-audioset-best.pt --bank captions.txt

  maa caption data.jsonl -o - --scorer runs/clap/clap --experts labels --overwrite | jq -r .caption

  maa caption clips/ -o out.jsonl --scorer runs/clap/clap --captioner models/whisper-audiocaps --device cuda
"""


@friendly
def main(
    src: str = typer.Argument(..., help="Manifest (JSONL, CSV, TSV), folder of audio, or - for JSONL on stdin."),
    out: str = typer.Option(..., "-o", "--out", help="Output JSONL manifest, or - for stdout."),
    scorer: str = typer.Option(None, "--scorer", "-s", help="maa-clap:DIR (from `maa train-clap`) or laion-clap:CKPT. Default: env MAA_SCORER, else the bundled model's clap/."),
    experts: str = typer.Option("labels,retrieval,captioner", "--experts", "-e", help="Comma-separated experts to ask: labels, retrieval, captioner (those without their input are skipped)."),
    bank: Path = typer.Option(None, "--bank", help="Caption bank for retrieval: text file (one caption per line) or JSONL with `caption`."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Retrieval candidates per clip."),
    captioner: Path = typer.Option(None, "--captioner", help="Local transformers audio-captioning model folder (speech seq2seq)."),
    num_captions: int = typer.Option(3, "--num-captions", min=1, help="Captions the captioner proposes per clip (beams)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-caption clips that already have a caption."),
    batch_size: BatchSize = 16,
    max_seconds: float = typer.Option(10.0, "--max-seconds", help="Seconds of each clip that are scored."),
    device: Device = "auto",
    seed: Seed = 0,
    quiet: Quiet = False,
):
    """`maa caption`: pick each row's caption among the experts' candidates by audio-text score."""
    import torch

    from maa.core.device import describe, pick_device
    from maa.core.manifest import write_manifest
    from maa.data.formats import read_manifest
    from maa.data.caption import (
        CaptionJob,
        HFCaptioner,
        caption_rows,
        caption_summary,
        parse_experts,
        read_bank,
    )
    from maa.parts.scorers import load_scorer

    torch.manual_seed(seed)
    dev = pick_device(device)  # auto: CUDA when available
    device = str(dev)
    wanted = parse_experts(experts)
    spec = scorer or os.environ.get("MAA_SCORER")
    if not spec:
        from maa.infer.pipeline import BUNDLED_MODEL

        if not (BUNDLED_MODEL / "clap" / "config.json").exists():
            raise MaaError("--scorer is required: maa-clap:RUN/clap (train one with `maa train-clap`) or laion-clap:CKPT")
        spec = f"maa-clap:{BUNDLED_MODEL / 'clap'}"  # the bundled demo scorer

    problems: list[dict] = []
    rows = read_manifest(src, on_problem=problems.append)
    for p in problems:
        warn(p["reason"])
    if not rows:
        raise MaaError(f"{src}: no clips to caption")
    bank_entries = read_bank(bank) if bank and "retrieval" in wanted else None
    if "retrieval" in wanted and not bank:
        info("no --bank given: the retrieval expert is skipped")
    cap = HFCaptioner(captioner, device=device, num_captions=num_captions) if captioner and "captioner" in wanted else None
    if not any(r.get("labels") for r in rows) and not bank_entries and cap is None:
        raise MaaError(f"{src}: the clips have no labels and neither --bank nor --captioner is given; "
                       "no expert can propose a caption")
    s = load_scorer(spec, device=device)
    job = CaptionJob(experts=wanted, bank=bank_entries, captioner=cap, top_k=top_k, overwrite=overwrite,
                     batch_size=batch_size, max_seconds=max_seconds)

    out_path = None if out == "-" else Path(out)
    with progress.bar(len(rows), "caption", quiet=quiet) as bar:
        result = caption_rows(rows, s, job, out_path=out_path, progress=bar.update)
    for r in result:
        if r.get("caption_error"):
            warn(r["caption_error"])
    write_manifest(out, result)
    if out_path is not None:
        Path(str(out_path) + ".partial").unlink(missing_ok=True)
    line, any_caption = caption_summary(result)
    info(f"{line}; scorer {s.name}; device: {describe(dev)}")
    if not any_caption and any(r.get("caption_error") for r in result):
        raise MaaError(f"{src}: no clip could be captioned")
