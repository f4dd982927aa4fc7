"""The one training loop every `maa train-*` command shares.

A model plugs in as a `Task` (see the Protocol below): it owns its modules, builds its
optimizers, and runs one step with `backward_step` (which does the clipping, the
all-reduce under torchrun and the optimizer step). The loop owns everything else:

  * devices and bf16 autocast (CUDA only; on CPU everything runs in float32),
  * data: map-style datasets, read in a fixed order that is a pure function of
    (seed, step, rank), so resuming needs only the step count. A dataset that wants
    randomness (random crops) defines `get(index, rng)`; `rng` is a numpy Generator
    seeded from (seed, the sample's position in the stream), so crops are reproducible
    with any number of loader workers and across resumes. Otherwise `dataset[index]`.
  * optional EMA of all trainable modules (the exported weights are then the EMA ones),
  * periodic validation on rank 0 (`task.validate(batches, step, out_dir / "val")`,
    run under no_grad, eval mode and a forked RNG so it never perturbs training),
  * logging: `out_dir/metrics.jsonl` (one JSON line per log/val event) and TensorBoard
    (`out_dir/tb/`) if it is installed,
  * checkpoints every `ckpt_every` steps and at the end:
      out_dir/<task.name>/config.json + <key>.safetensors   the model folder later commands load
      out_dir/trainer_state.pt                              step, raw weights, optimizers, EMA,
                                                             RNG states, log accumulator
    Each file is written atomically; `trainer_state.pt` alone is enough to resume, so a
    crash between files never mixes steps. It is a plain tensor/dict file read back with
    torch.load(weights_only=True).
  * `train(..., resume=True)` continues exactly: on CPU an interrupted and resumed run
    logs the same losses as an uninterrupted one (tests/train/test_loop.py checks it). Whether
    to resume is decided by maa.train.run.prepare_run (the `train-*` run-folder rule).
  * multi-GPU / multi-node: launch the same command under `torchrun`. Gradients are
    averaged across ranks inside `backward_step` (one flat all-reduce per optimizer step:
    plain data parallelism, like DDP without the bucketing, and it works for any number
    of optimizers per step, e.g. GANs). Each rank reads its own slice of every global
    batch (`batch_size` is per rank); only rank 0 validates and writes files, and the
    logged training losses are rank 0's. Exact resume is a single-process guarantee: under
    torchrun each rank's RNG is reseeded from (seed, step, rank) at start.

Minimal use:

    task = MyTask(...)                       # implements the Task protocol
    cfg = TrainConfig(out_dir=Path("runs/x"), steps=1000, batch_size=8)
    train(task, train_set, val_set, cfg, resume=True)

Inside `task.train_step(batch, step, cfg)` (batch is already on the device):

    with autocast(cfg):
        loss = ...
    backward_step(loss, self.opt, self.model.parameters(), cfg)
    return {"loss": loss.item()}
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from maa.core.checkpoint import save_weights
from maa.core.config import ConfigMixin, Range
from maa.core.device import pick_device
from maa.core.errors import MaaError
from maa.core import progress
from maa.core.io import atomic_path, write_json_atomic

STATE_FILE = "trainer_state.pt"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainConfig(ConfigMixin):
    """The training loop's settings: output folder, steps, batch, optimiser, precision, logging, checkpoints."""
    out_dir: Path
    steps: int
    batch_size: int = 8  # per rank
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    ckpt_every: int = 1000
    val_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    num_workers: int = 0
    max_val_batches: int = 8
    warmup_steps: int = 0  # linear LR warm-up from 0 (applied by the loop to every optimizer)
    quiet: bool = False  # no progress bar

    # a NaN learning rate or a zero interval would only fail (or train nothing) much later
    limits: ClassVar[dict] = {
        "steps": Range(0, 10**12), "batch_size": Range(1, 1 << 20), "lr": Range(0.0, 10.0),
        "weight_decay": Range(0.0, 100.0), "grad_clip": Range(0.0, 1e9), "ema_decay": Range(0.0, 1.0),
        "ckpt_every": Range(1, 10**12), "val_every": Range(1, 10**12), "log_every": Range(1, 10**12),
        "seed": Range(0, 2**64 - 1), "num_workers": Range(0, 256), "max_val_batches": Range(0, 10**9),
        "warmup_steps": Range(0, 10**12),
    }


class Task(Protocol):
    """What a model plugs into the loop."""

    name: str  # weights land in out_dir/<name>/

    def modules(self) -> dict[str, nn.Module]: ...  # saved as <key>.safetensors

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(self, batch, step: int, cfg: TrainConfig) -> dict[str, float]: ...

    def validate(self, batches, step: int, out_dir: Path) -> dict[str, float]: ...

    def export_config(self) -> dict: ...


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    """This process's place in a torchrun job (rank, world size, local rank)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> Dist:
    """Rank/world from torchrun's environment (1 process when not under torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); no-op otherwise."""
    d = dist_info()
    if d.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if pick_device(device).type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(d.local_rank)
        torch.distributed.init_process_group(backend=backend)
    return dist_info()


def resolve_device(device: str, d: Dist | None = None) -> torch.device:
    """`auto` (CUDA when available, else CPU), cpu, cuda, cuda:N, checked; under torchrun each
    process takes its LOCAL_RANK GPU whatever CUDA device was named."""
    d = d or dist_info()
    dev = pick_device(device)
    if dev.type == "cuda" and d.enabled:  # one GPU per process under torchrun
        return torch.device("cuda", d.local_rank)
    return dev


# ----------------------------------------------------------------------------- step helpers


def autocast(cfg: TrainConfig):
    """bf16 autocast on CUDA when cfg.bf16; float32 (a null context) everywhere else."""
    if cfg.bf16 and str(cfg.device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _allreduce_grads(params: list[nn.Parameter]) -> None:
    """Average gradients over ranks in one flat buffer (missing grads count as zeros, so every
    rank sends the same shapes even when a branch was skipped on one of them)."""
    world = torch.distributed.get_world_size()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter],
                  cfg: TrainConfig, retain_graph: bool = False) -> float:
    """zero_grad, backward, all-reduce (under torchrun), clip to cfg.grad_clip, step.

    Returns the gradient norm before clipping. Zeroing first
    matters for GANs: the generator's loss also leaves gradients in the discriminator.
    """
    params = [p for p in params if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    loss.backward(retain_graph=retain_graph)
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        _allreduce_grads(params)
    # with clipping off, an infinite threshold still measures the norm (for the logs)
    norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip else float("inf")))
    optimizer.step()
    return norm


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in a (nested) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def adamw(params: Iterable[nn.Parameter], cfg: TrainConfig, lr: float | None = None,
          betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """The default optimizer: AdamW with cfg.lr and cfg.weight_decay."""
    return torch.optim.AdamW([p for p in params if p.requires_grad], lr=cfg.lr if lr is None else lr,
                             betas=betas, weight_decay=cfg.weight_decay)


# ----------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of a module's parameters and buffers (float32 shadow copy)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict_like(self, module: nn.Module) -> dict[str, torch.Tensor]:
        ref = module.state_dict()
        return {k: v.to(ref[k].dtype) for k, v in self.shadow.items()}

    @contextlib.contextmanager
    def swapped_in(self, module: nn.Module):
        """Temporarily load the EMA weights (for validation)."""
        raw = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.state_dict_like(module))
        try:
            yield
        finally:
            module.load_state_dict(raw)


# ----------------------------------------------------------------------------- data


class _Positioned(torch.utils.data.Dataset):
    """Turns (index, stream position) into a sample, with a per-sample RNG when the dataset asks."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, position = key
        if hasattr(self.dataset, "get"):
            rng = np.random.default_rng([self.seed, position])
            return self.dataset.get(index, rng)
        return self.dataset[index]


class _StepBatches(torch.utils.data.Sampler):
    """Batches for steps start..end-1 of an endless stream of epochs, each a seeded permutation.

    Global sample g = (step * world + rank) * batch + j lies in epoch g // n at position
    perm_epoch[g % n]; everything is a pure function of (seed, step, rank), which is what
    makes resuming exact.
    """

    def __init__(self, n: int, batch: int, start: int, end: int, seed: int, d: Dist):
        self.n, self.batch, self.start, self.end, self.seed, self.d = n, batch, start, end, seed, d
        self._perm_epoch, self._perm = -1, None

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def __len__(self):
        return max(self.end - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.end):
            base = (step * self.d.world + self.d.rank) * self.batch
            yield [(int(self._perm_for(g // self.n)[g % self.n]), g) for g in range(base, base + self.batch)]


def _loader(dataset, cfg: TrainConfig, start: int, end: int, d: Dist):
    sampler = _StepBatches(len(dataset), cfg.batch_size, start, end, cfg.seed, d)
    # A private generator: creating the loader's iterator must not draw from the global RNG.
    return torch.utils.data.DataLoader(
        _Positioned(dataset, cfg.seed), batch_sampler=sampler, num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=False,
        pin_memory=str(cfg.device).startswith("cuda"),
    )


def val_batches(dataset, cfg: TrainConfig) -> list:
    """Up to max_val_batches batches of the validation set, always the same crops. When the set
    is larger, the clips are spread evenly over it (manifests are often sorted by class)."""
    if dataset is None or len(dataset) == 0:
        return []
    ds = _Positioned(dataset, cfg.seed + 1)
    n = len(dataset)
    k = min(n, cfg.max_val_batches * cfg.batch_size)
    idx = [int(i) for i in np.linspace(0, n - 1, k).round()] if k < n else list(range(n))
    return [torch.utils.data.default_collate([ds[(i, i)] for i in idx[s:s + cfg.batch_size]])
            for s in range(0, k, cfg.batch_size)]


# ----------------------------------------------------------------------------- RNG state


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                  "has_gauss": np_state[3], "gauss": np_state[4]},
        "python": list(_py_state_to_list(random.getstate())),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state_to_list(s):
    version, internal, gauss = s
    return [version, list(internal), gauss]


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- logging


class _Logger:
    def __init__(self, out_dir: Path, main: bool, resume_step: int | None):
        self.path = out_dir / METRICS_FILE
        self.main = main
        self.tb = None
        if not main:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            # drop lines an interrupted run wrote after its last checkpoint
            keep = [l for l in self.path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= resume_step]
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(l + "\n" for l in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  optional dependency, imported where it is used

            self.tb = SummaryWriter(str(out_dir / "tb"))
        except Exception:  # tensorboard not installed: metrics.jsonl is enough
            self.tb = None

    def log(self, row: dict) -> None:
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row.get('kind', 'train')}/{k}", v, row["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_metrics(out_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's metrics.jsonl ([] when there is none)."""
    path = Path(out_dir) / METRICS_FILE
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


# ----------------------------------------------------------------------------- the loop


@dataclass
class _State:
    step: int = 0
    acc: dict = field(default_factory=dict)  # running sums of logged scalars since the last log line
    acc_n: int = 0
    last_val: dict = field(default_factory=dict)
    last_train: dict = field(default_factory=dict)


def _lr_scale(step: int, cfg: TrainConfig) -> float:
    return min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0


def _save(task, modules, opts, emas, st: _State, cfg: TrainConfig) -> None:
    state = {
        "step": st.step,
        "modules": {k: {n: t.detach().cpu().clone() for n, t in m.state_dict().items()} for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in opts.items()},
        "ema": {k: e.shadow for k, e in emas.items()},
        "rng": _rng_state(),
        "acc": st.acc, "acc_n": st.acc_n, "last_val": st.last_val,
        "config": json.dumps(cfg.to_dict()),
    }
    with atomic_path(cfg.out_dir / STATE_FILE, suffix=".pt") as tmp:
        torch.save(state, tmp)
    export = {k: (emas[k].state_dict_like(m) if k in emas else m) for k, m in modules.items()}
    save_weights(cfg.out_dir / task.name, export, task.export_config())


def _load(modules, opts, emas, cfg: TrainConfig, device) -> _State:
    path = cfg.out_dir / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MaaError(f"{path}: cannot read the trainer state ({e}); pass --fresh to start over") from None
    for k, m in modules.items():
        if k not in state["modules"]:
            raise MaaError(f"{path}: no weights for module {k!r}; it was written by a different model")
        m.load_state_dict(state["modules"][k])
    for k, o in opts.items():
        o.load_state_dict(state["optimizers"][k])
    for k, e in emas.items():
        if k in state["ema"]:
            e.shadow = {n: t.to(device) for n, t in state["ema"][k].items()}
    _set_rng_state(state["rng"])
    return _State(state["step"], dict(state["acc"]), state["acc_n"], dict(state["last_val"]))


def _validate(task, modules, emas, batches, st: _State, cfg: TrainConfig, device) -> dict:
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []))
        stack.enter_context(torch.no_grad())
        for k, e in emas.items():
            stack.enter_context(e.swapped_in(modules[k]))
        was_training = {k: m.training for k, m in modules.items()}
        for m in modules.values():
            m.eval()
        try:
            torch.manual_seed(cfg.seed + 7)
            metrics = task.validate([to_device(b, device) for b in batches], st.step, cfg.out_dir / "val")
        finally:
            for k, m in modules.items():
                m.train(was_training[k])
    return {k: float(v) for k, v in metrics.items()}


def train(task: Task, train_set, val_set, cfg: TrainConfig, resume: bool = False) -> dict:
    """Run cfg.steps optimizer steps of `task` (continuing from out_dir's checkpoint when resume).

    Returns the final metrics: the last logged training scalars plus the last validation ones.
    """
    cfg.out_dir = Path(cfg.out_dir)
    d = init_distributed(str(cfg.device))
    device = resolve_device(str(cfg.device), d)
    cfg.device = str(device)
    if train_set is None or len(train_set) == 0:
        raise MaaError("the training set is empty; check the manifest")

    modules = task.modules()
    for m in modules.values():
        m.to(device).train()
    if d.enabled:  # every rank starts from rank 0's weights
        for m in modules.values():
            for t in m.state_dict().values():
                torch.distributed.broadcast(t, 0)
    opts = task.optimizers(cfg)
    for o in opts.values():
        for g in o.param_groups:
            g.setdefault("base_lr", g["lr"])
    emas = {k: EMA(m, cfg.ema_decay) for k, m in modules.items()} if cfg.ema_decay else {}

    st = _State()
    if resume and (cfg.out_dir / STATE_FILE).exists():
        st = _load(modules, opts, emas, cfg, device)
    elif resume and d.main:
        print(f"{cfg.out_dir / STATE_FILE}: no checkpoint yet; starting from step 0", file=sys.stderr)
    if d.enabled:
        # ranks must draw different noise; (seed, step, rank) keeps a resumed multi-process run reproducible
        torch.manual_seed(cfg.seed * 1_000_003 + st.step * 7919 + d.rank)
    logger = _Logger(cfg.out_dir, d.main, st.step if resume else None)
    vbatches = val_batches(val_set, cfg) if d.main else []
    if d.main:
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg.out_dir / "train_config.json", cfg.to_dict())

    bar = progress.bar(cfg.steps, f"train {task.name}", quiet=cfg.quiet or not d.main, unit="step", initial=st.step)
    t0, n0 = time.perf_counter(), 0
    loader = _loader(train_set, cfg, st.step, cfg.steps, d)
    try:
        for batch in loader:
            for o in opts.values():
                for g in o.param_groups:
                    g["lr"] = g["base_lr"] * _lr_scale(st.step, cfg)
            scalars = task.train_step(to_device(batch, device), st.step, cfg)
            for k, e in emas.items():
                e.update(modules[k])
            st.step += 1
            n0 += cfg.batch_size * d.world
            for k, v in scalars.items():
                st.acc[k] = st.acc.get(k, 0.0) + float(v)
            st.acc_n += 1
            bar.update(1)

            if st.step % cfg.log_every == 0 or st.step == cfg.steps:
                row = {"kind": "train", "step": st.step, **{k: v / st.acc_n for k, v in st.acc.items()}}
                elapsed = time.perf_counter() - t0
                row["samples_per_s"] = n0 / elapsed if elapsed > 0 else 0.0
                row["lr"] = next(iter(opts.values())).param_groups[0]["lr"] if opts else 0.0
                logger.log(row)
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("kind", "step", "lr")}, refresh=False)
                st.last_train = row
                st.acc, st.acc_n = {}, 0
                t0, n0 = time.perf_counter(), 0
            if vbatches and (st.step % cfg.val_every == 0 or st.step == cfg.steps):
                st.last_val = _validate(task, modules, emas, vbatches, st, cfg, device)
                logger.log({"kind": "val", "step": st.step, **st.last_val})
            if st.step % cfg.ckpt_every == 0 or st.step == cfg.steps:
                if d.main:
                    _save(task, modules, opts, emas, st, cfg)
                if d.enabled:
                    torch.distributed.barrier()
        if st.step >= cfg.steps and not (cfg.out_dir / task.name / "config.json").exists() and d.main:
            _save(task, modules, opts, emas, st, cfg)  # resumed a finished run: make sure the folder exists
    finally:
        bar.close()
        logger.close()
    final = dict(st.last_train)
    if not final and d.main:  # nothing ran in this call: report the last logged line
        rows = [r for r in read_metrics(cfg.out_dir) if r.get("kind") == "train"]
        final = rows[-1] if rows else {}
    final.update({f"val_{k}": v for k, v in st.last_val.items()})
    final["step"] = st.step
    return final

