"""Options that several commands share, each written once with one help text.

    from maa.commands.options import Device, Quiet, Seed
    def main(..., device: Device = "auto", seed: Seed = 0, quiet: Quiet = False): ...
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from maa.commands.common import fail

from maa.core.checkpoint import resolve_model
from maa.core.errors import MaaError


def finite(value):
    """Click's ranges let NaN through (every comparison with it is false): refuse it, and inf, here."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value}: want a finite number")
    return value


def positive(value):
    """Typer callback: accept a number > 0 (or None)."""
    if finite(value) is not None and value <= 0:
        raise typer.BadParameter(f"{value}: want a number > 0")
    return value


Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:1 ... "
                                     "Under torchrun each process takes its LOCAL_RANK GPU.")]
Threads = Annotated[int, typer.Option("--threads", min=0, help="CPU threads for torch (0: the cores free at start, measured from /proc/stat; idle threads sleep instead of spinning, so a busy neighbour costs little). OMP_NUM_THREADS, if set, is kept.")]
Seed = Annotated[int, typer.Option("--seed", min=0, max=2**63 - 1, help="Random seed: the same seed gives the same result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Items per batch (per GPU under torchrun).")]
Steps = Annotated[int, typer.Option("--steps", min=1, help="Total optimizer steps, counting steps done before --resume.")]
Lr = Annotated[float, typer.Option("--lr", callback=positive, help="AdamW learning rate.")]
Val = Annotated[str, typer.Option("--val", help="Held-out manifest for validation. Default: hold out --val-fraction of MANIFEST.")]
ValidAlias = Annotated[str, typer.Option("--valid", hidden=True, help="Old name of --val.")]  # train-vocoder said --valid
ValFraction = Annotated[float, typer.Option("--val-fraction", callback=finite, min=0.0, max=0.9, help="Share of MANIFEST held out when --val is not given (0: none).")]
RunDir = Annotated[Path, typer.Option("-o", "--out-dir", help="Run folder: the model, metrics.jsonl, trainer_state.pt.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in RUN exactly where its last checkpoint left off.")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Start RUN over: replaces its checkpoint and metrics (says what it replaces). "
                                     "Without --resume or --fresh a RUN that holds a checkpoint is refused.")]
def _model_name(value):
    """--init NAME: a pulled model's folder (a path wins); an unknown name is one error line."""
    if value is None:
        return value
    try:
        return resolve_model(value, flag="--init")
    except MaaError as e:
        fail(str(e))


Init = Annotated[Path, typer.Option("--init", callback=_model_name, help="Start from these trained weights (a model or run folder, or a name `maa pull` fetched) instead of random ones.")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=0, help="Data loader processes.")]
CkptEvery = Annotated[int, typer.Option("--ckpt-every", min=1, help="Checkpoint (model folder + trainer_state.pt) every N steps and at the end.")]
ValEvery = Annotated[int, typer.Option("--val-every", min=1, help="Validate on the held-out clips every N steps.")]
LogEvery = Annotated[int, typer.Option("--log-every", min=1, help="Write averaged losses to metrics.jsonl every N steps.")]
Warmup = Annotated[int, typer.Option("--warmup", min=0, help="Linear learning-rate warm-up steps.")]
GradClip = Annotated[float, typer.Option("--grad-clip", callback=finite, min=0.0, help="Gradient-norm clip (0: off).")]
Ema = Annotated[float, typer.Option("--ema", callback=finite, min=0.0, max=1.0, help="EMA decay of the exported weights, e.g. 0.999 (0: off).")]
Bf16 = Annotated[bool, typer.Option("--bf16/--no-bf16", help="bf16 autocast on CUDA (ignored on CPU).")]
