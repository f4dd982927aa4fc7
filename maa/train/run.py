"""The run folder and the options every `maa train-*` shares.

One rule for a run folder RUN that holds a checkpoint (RUN/trainer_state.pt), so a forgotten
flag never destroys a long run:

  no flag           MaaError naming the step the checkpoint holds and the two choices
  --resume          continue exactly where the checkpoint left off (maa.train.loop.train(resume=True))
  --fresh           start at step 0; an info line says what it replaces (checkpoint, metrics.jsonl rows)
  --resume --fresh  MaaError

A folder without a checkpoint starts at step 0; --resume there is refused (a mistyped -o would
otherwise train from scratch without a word); metrics.jsonl rows left there by a run that never
reached a checkpoint are named before they are replaced. --resume with --init: the checkpoint
holds the weights, so a line says --init is not used (recipes pass both when they continue). `begin` applies the rule first, then the cheap settings (threads, device,
seed), so a wrong flag fails before any data set is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maa.core.device import apply_threads, describe
from maa.core.errors import MaaError
from maa.core.progress import Reporter
from maa.train.loop import (
    METRICS_FILE,
    STATE_FILE,
    Dist,
    TrainConfig,
    dist_info,
    resolve_device,
    seed_everything,
)


@dataclass(kw_only=True)
class RunOptions:
    """What every `maa train-*` takes (the per-model options extend it)."""

    out_dir: Path
    steps: int = 20000
    batch_size: int = 8
    lr: float = 1e-4
    val: str | None = None  # held-out manifest; None: hold out a share of the training manifest
    device: str = "auto"
    threads: int = 0  # 0: chosen from the free cores (maa.core.device)
    seed: int = 0
    resume: bool = False
    fresh: bool = False
    init: Path | None = None
    workers: int = 0
    quiet: bool = False
    ckpt_every: int = 1000
    val_every: int = 500
    log_every: int = 50
    warmup: int = 0
    grad_clip: float = 1.0  # 0: off
    ema: float | None = None  # 0 or None: off
    bf16: bool = True

    def train_config(self, device: torch.device | str, **extra) -> TrainConfig:
        """The loop's settings: the one place a TrainConfig is built from command options."""
        return TrainConfig(out_dir=Path(self.out_dir), steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           grad_clip=self.grad_clip or None, ema_decay=self.ema or None, ckpt_every=self.ckpt_every,
                           val_every=self.val_every, log_every=self.log_every, seed=self.seed, device=str(device),
                           bf16=self.bf16, num_workers=self.workers, warmup_steps=self.warmup, quiet=self.quiet,
                           **extra)


@dataclass
class RunStart:
    """What prepare_run decided: whether train() resumes, and from which step."""

    out_dir: Path
    resume: bool
    step: int = 0
    note: str | None = None  # one line for the log (what --fresh replaces, ...), or None


def held_step(out_dir: str | Path) -> int | None:
    """The step RUN's checkpoint holds; None without a checkpoint. Reads only the step (memory-mapped)."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception as e:  # noqa: BLE001 - any unreadable file: say so, let --fresh replace it
        raise _Unreadable(f"{path}: cannot read the checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


class _Unreadable(Exception):
    pass


def _metrics_rows(out_dir: Path) -> int:
    path = out_dir / METRICS_FILE
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def prepare_run(out_dir: str | Path, resume: bool = False, fresh: bool = False) -> RunStart:
    """Apply the run-folder rule (see the module docstring) before anything is built or written."""
    out_dir = Path(out_dir)
    if resume and fresh:
        raise MaaError("--resume and --fresh: choose one (--resume continues RUN's checkpoint, --fresh starts it over)")
    try:
        step, unreadable = held_step(out_dir), None
    except _Unreadable as e:
        step, unreadable = -1, str(e)
    rows = _metrics_rows(out_dir)
    if step is None:
        note = None
        if resume:
            raise MaaError(f"--resume: {out_dir} holds no checkpoint ({STATE_FILE}) to continue; check -o, "
                           "or drop --resume to start a new run there")
        if rows:
            note = f"{out_dir}: no checkpoint yet; its {METRICS_FILE} ({rows} rows) is replaced by this run's"
        return RunStart(out_dir, resume=False, note=note)
    held = "an unreadable checkpoint" if unreadable else f"the checkpoint at step {step}"
    if fresh:
        return RunStart(out_dir, resume=False, note=(
            f"--fresh: starting {out_dir} over at step 0; replaces {held} ({STATE_FILE}), the {rows} rows of "
            f"{METRICS_FILE} and the model folder as the new run writes them"))
    if unreadable and resume:
        raise MaaError(f"{unreadable}; pass --fresh to start {out_dir} over (or choose another -o)")
    if not resume:
        raise MaaError(f"{out_dir}: holds a training run ({held}, {STATE_FILE}); pass --resume to continue it, "
                       "or --fresh to start over (or choose another -o)")
    return RunStart(out_dir, resume=True, step=step, note=f"resuming {out_dir} from step {step}")


@dataclass
class Begun:
    """A started run: where it resumes from, its device and its torchrun place."""
    start: RunStart
    device: torch.device
    dist: Dist = field(default_factory=Dist)

    @property
    def main(self) -> bool:
        return self.dist.main

    def describe_device(self) -> str:
        return describe(self.device)


def begin(opts: RunOptions, ui: Reporter | None = None, seed: bool = True) -> Begun:
    """The run-folder rule, then threads (maa.core.device), device (`auto`: CUDA when available) and the seed."""
    start = prepare_run(opts.out_dir, opts.resume, opts.fresh)
    ui = ui or Reporter()
    apply_threads(opts.threads)
    d = dist_info()
    dev = resolve_device(opts.device, d)
    if seed:
        seed_everything(opts.seed)
    if start.note and d.main:
        ui.info(start.note)
    if d.main and start.resume and opts.init is not None:
        ui.info(f"--init {opts.init}: not used; --resume continues the weights of the checkpoint at step {start.step}")
    if d.main and same_file(opts.val, getattr(opts, "manifest", None)):
        ui.warn(f"--val {opts.val}: the training manifest itself; the held-out figures will measure training "
                "clips (pass a manifest of other clips, or leave --val out to hold some out)")
    return Begun(start, dev, d)


def same_file(a, b) -> bool:
    """Whether two manifest arguments name the same file (`-` and missing files never do)."""
    if not a or not b or "-" in (str(a), str(b)):
        return False
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def read_part_config(folder: Path, what: str, kind: str, key: str, cls, part: str):
    """`cls` from the `key` section of `folder`/config.json, which `maa train-<part>` writes with this
    "kind", or one line saying that `what` is not such a folder."""

    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    if not isinstance(cfg, dict) or cfg.get("kind") != kind or key not in cfg:
        raise MaaError(f"{what}: not a maa {part} folder (pass RUN or RUN/{part} of `maa train-{part}`)")
    return cls.from_dict(cfg[key])
