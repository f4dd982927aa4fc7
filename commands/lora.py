"""`maa lora`: LoRA adapters (maa.models.lora) outside training and generation: merge them into a model."""

from __future__ import annotations

from pathlib import Path

import typer
from maa.commands.common import emit, friendly, info, warn

HELP = "LoRA adapters made by `maa train-ldm --lora` (see `maa lora merge -h`)."

MERGE_HELP = """Fold LoRA adapters into a copy of their base model: a plain model folder, no --lora needed.

Each ADAPTER is DIR[:SCALE] (the -o folder of `maa train-ldm --lora`, or its lora/; scale 1 by
default). Adapters made for another base model (their recorded UNet hash) are refused unless
--force. The output folder is written whole or not at all, and holds merged.json naming the
base and the adapters. Generating with the merged folder gives what `--lora` gives on the base,
up to float rounding.

Examples:

  maa lora merge maa/assets/model runs/steps -o models/steps

  maa lora merge maa/assets/model runs/steps:0.7 runs/rain:0.5 -o models/steps-rain
"""

app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command("merge", help=MERGE_HELP, no_args_is_help=True)
@friendly
def merge(
    model: Path = typer.Argument(..., help="The base model folder the adapters were trained on."),
    adapters: list[str] = typer.Argument(..., help="Adapter folders, DIR[:SCALE] each."),
    out: Path = typer.Option(..., "-o", "--out", help="The merged model folder to write."),
    force: bool = typer.Option(False, "--force", help="Merge adapters made for another base model anyway."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace -o when it exists."),
):
    """`maa lora merge`: adapters folded into a copy of their base model."""
    from maa.models.lora import merge_model  # noqa: PLC0415  loaded by this subcommand only: `maa generate` walks no LoRA code

    done = merge_model(model, adapters, out, force=force, overwrite=overwrite, warn=warn)
    info(f"wrote {done}; try: maa generate \"...\" -o out.wav --model {done}")
    emit({"model": str(done), "adapters": adapters})
