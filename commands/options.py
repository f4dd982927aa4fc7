"""Options that several commands share, each written once with one help text.

    from maa.commands.options import Device, Quiet, Seed
    def main(..., device: Device = "auto", seed: Seed = 0, quiet: Quiet = False): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:1 ... "
                                     "Under torchrun each process takes its LOCAL_RANK GPU.")]
Threads = Annotated[int, typer.Option("--threads", min=0, help="CPU threads for torch (0: chosen from the free cores).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Items per batch (per GPU under torchrun).")]
Steps = Annotated[int, typer.Option("--steps", min=1, help="Total optimizer steps, counting steps done before --resume.")]
Lr = Annotated[float, typer.Option("--lr", help="AdamW learning rate.")]
Val = Annotated[str, typer.Option("--val", help="Held-out manifest for validation. Default: hold out --val-fraction of MANIFEST.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in RUN exactly where its last checkpoint left off.")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Start RUN over: replaces its checkpoint and metrics (says what it replaces).")]
Init = Annotated[Path, typer.Option("--init", help="Start from these trained weights (a model or run folder) instead of random ones.")]
Workers = Annotated[int, typer.Option("--workers", "-j", min=0, help="Data loader processes.")]
