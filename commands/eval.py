"""`maa eval`: score generated clips against reference clips (FD, FAD, KL, IS, CLAP score)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from maa.commands.common import console, friendly, info, reporter, warn
from maa.commands.options import Device
from maa.core.errors import MaaError
from rich.table import Table

HELP = """Score GENERATED clips against REFERENCE clips; every number names its extractor.

Each argument is a folder of audio or a manifest. Per extractor: FD (Fréchet distance of Gaussian fits; FAD for vggish), IS and KL (where the extractor has a classifier head; KL over clips paired by id or file name) and CLAP score (clap extractors; prompts from the GENERATED manifest's `caption`). Paired clips also get mel L1 and log-spectral distance. A table goes to stderr, JSON to -o. Embeddings are cached by file content (~/.cache/maa/embeddings).

Extractors: aisfx (offline, default), panns-cnn14:Cnn14_16k_mAP=0.438.pth, vggish:vggish-10086976.pth, maa-clap:RUN/clap, laion-clap:CKPT.

Examples:

  maa eval gen/ data/demo/test.jsonl -o metrics.json

  maa eval gen.jsonl ref.jsonl -e aisfx -e maa-clap:runs/clap -o metrics.json

  maa eval gen/ ref/ -e panns-cnn14:Cnn14_16k_mAP=0.438.pth -e vggish:vggish-10086976.pth

  maa eval gen/ data/test-audiocaps.jsonl --protocol make-an-audio -e maa-clap:runs/clap/clap -o metrics.json

  maa eval recon/ originals/ -o - | jq .spectral    # paired mel L1, LSD
"""


@friendly
def main(
    generated: str = typer.Argument(..., help="Generated clips: folder of audio or manifest (JSONL/CSV/TSV)."),
    reference: str = typer.Argument(..., help="Reference clips: folder of audio or manifest."),
    out: str = typer.Option(None, "-o", "--out", help="Write metrics JSON here (- for stdout). Default: only the table."),
    extractor: list[str] = typer.Option(["aisfx"], "--extractor", "-e",
                                        help="Repeatable: aisfx, panns-cnn14:FILE, vggish:FILE, maa-clap:DIR, laion-clap:FILE."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds of each clip used (crops; shorter clips stay short)."),
    full: bool = typer.Option(False, "--full", help="Use whole clips instead of --duration."),
    device: Device = "auto",
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Embedding cache folder (default ~/.cache/maa/embeddings, or $MAA_CACHE)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write cached embeddings."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave unreadable clips out (listed in the JSON) instead of stopping."),
    is_splits: int = typer.Option(1, "--is-splits", min=1, help="Inception score over this many chunks (mean and std); audioldm_eval uses 10."),
    no_spectral: bool = typer.Option(False, "--no-spectral", help="Skip mel L1 / LSD on paired clips."),
    protocol: str = typer.Option(None, "--protocol", help="A published protocol's fixed settings: make-an-audio (PANNs CNN14 16 kHz FD/KL/IS, VGGish FAD, CLAP score, 10 s clips, one caption per clip; weights from $MAA_EVAL_WEIGHTS or -e)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """`maa eval`: score GENERATED clips against REFERENCE clips and print the table (JSON to -o)."""
    from maa.core.device import describe, pick_device
    from maa.core.io import write_json_atomic
    from maa.eval.evaluate import EvalConfig, default_cache_dir, evaluate, table_rows

    if not full and duration <= 0:
        raise MaaError(f"--duration {duration}: must be positive (or use --full)")
    dev = pick_device(device)  # auto: CUDA when available
    device = str(dev)
    info(f"eval: device: {describe(dev)}")
    cfg = EvalConfig(extractors=list(extractor), duration=None if full else duration, device=device,
                     cache_dir=None if no_cache else (cache_dir or default_cache_dir()), batch_size=batch_size,
                     skip_bad=skip_bad, is_splits=is_splits, spectral=not no_spectral)
    ui = reporter(quiet)
    if protocol:
        from maa.eval.protocol import evaluate_protocol

        result = evaluate_protocol(generated, reference, protocol, list(extractor), device=device, cache_dir=cfg.cache_dir,
                                   batch_size=batch_size, skip_bad=skip_bad, ui=ui)
    else:
        from maa.eval.protocol import eval_card

        result = evaluate(generated, reference, cfg, ui=ui)
        result["eval_card"] = eval_card(result, cfg, generated)
    for w in result["warnings"]:
        warn(w)
    for label, block in result["extractors"].items():
        for note in block.get("notes", []):
            info(f"{label}: {note}")

    table = Table(title=f"{generated}  vs  {reference}", title_justify="left")
    for col in ("extractor", "metric", "value", "n"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)

    if out == "-":
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    elif out:
        write_json_atomic(out, result)
        info(f"wrote {out}")
