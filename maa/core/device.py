"""Where a command's work runs: the torch device (`pick_device`) and, on the CPU, the thread policy.

`auto` is CUDA when there is one, else the CPU (`pick_device`; `describe` names it for the log).

The CPU thread policy: how many threads torch gets and how idle OpenMP threads wait.

torch's default (one thread per core, OpenMP threads spinning while they wait) is right on an
idle machine and badly wrong beside a busy process: a thread whose core another process holds
finishes each parallel region late, and the others burn their cores spinning at the barrier
(a one-off `maa generate` beside one CPU-bound process: 95 s instead of 15 s on 2 cores).

The policy (`--threads 0`, every command's default):
  * threads = the cores actually free now: the usable cores (affinity mask, cgroup CPU quota)
    minus the busy share measured from /proc/stat over a short window, at least 1; under
    torchrun divided among the node's processes (LOCAL_WORLD_SIZE);
  * for long work (training, `maa mel`), OMP_WAIT_POLICY=PASSIVE: a waiting thread sleeps instead
    of spinning, so a neighbour that starts later cannot make us burn its core either. A one-off
    call keeps OpenMP's default (spin briefly, then sleep): on 2 cores PASSIVE made `maa generate`
    ~25 % slower (7.8 s vs 6.2 s wall, quiet machine), and the free-core count already keeps it
    off a core that is busy when it starts.
Both must be in the environment before torch (and its OpenMP runtime) is imported, so the
`maa` entry point calls `configure_process` first thing (which commands are long work is the
CLI's knowledge: commands/cli.py); values the user already exported
(OMP_NUM_THREADS, OMP_WAIT_POLICY, ...) are kept. This module imports nothing heavy: torch only
inside the functions that need it, since cli.py imports it before torch may load.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from maa.core.errors import MaaError

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch

SAMPLE_SECONDS = 0.05  # /proc/stat window: long enough for a few scheduler ticks (100 Hz), short for start-up
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup quota (cpu.max or cfs_quota/cfs_period), None when unlimited."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def read_cpu_times(path: Path = Path("/proc/stat")) -> dict[int, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat; iowait counts as idle."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *vals = line.split()
        v = [int(x) for x in vals[:8]]
        idle = v[3] + v[4]
        out[int(name[3:])] = (sum(v) - idle, sum(v))
    return out


def busy_cpus(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: set[int] | None = None) -> float:
    """CPUs' worth of work other processes did between two read_cpu_times samples (0 .. len(cpus))."""
    busy = 0.0
    for c, (b1, t1) in after.items():
        if (cpus is not None and c not in cpus) or c not in before:
            continue
        b0, t0 = before[c]
        if t1 > t0:
            busy += (b1 - b0) / (t1 - t0)
    return busy


def free_cores(sample_s: float = SAMPLE_SECONDS) -> int:
    """Usable cores minus the busy share measured over `sample_s` (this process sleeps meanwhile)."""
    n = usable_cores()
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        cpus = None
    try:
        a = read_cpu_times()
        time.sleep(sample_s)
        busy = busy_cpus(a, read_cpu_times(), cpus)
    except (OSError, ValueError):  # no /proc (macOS, some sandboxes): trust the core count
        return n
    # a neighbour at 100 % of one core takes one; background noise (< half a core) takes none
    return max(1, min(n, int(math.floor(n - busy + 0.5))))


def choose_threads(requested: int = 0, env: dict | None = None) -> int:
    """`requested` if > 0, else the free cores, shared among torchrun's processes on this node."""
    if requested > 0:
        return min(requested, usable_cores())  # the warning comes once, from apply_threads
    env = os.environ if env is None else env
    per_node = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, free_cores() // per_node)


def first_word(argv: list[str]) -> str:
    """The first argument that is not an option (a subcommand's name), or ''."""
    return next((a for a in argv if not a.startswith("-")), "")


def threads_from_argv(argv: list[str]) -> int:
    """The value of `--threads N` / `--threads=N` in a command line (0 when absent or malformed:
    the option parser reports malformed values itself)."""
    for i, a in enumerate(argv):
        val = a.split("=", 1)[1] if a.startswith("--threads=") else (argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if val is not None:
            try:
                return max(0, int(val))
            except ValueError:
                return 0
    return 0


def configure_process(requested: int = 0, env: dict | None = None, long_running: bool = True) -> int:
    """Put the thread policy into the environment before torch is imported; returns the thread count.

    Keeps whatever the user exported. When torch is already imported (a library caller), its
    thread count is set directly; the wait policy then stays whatever OpenMP started with.
    """
    env = os.environ if env is None else env
    if requested <= 0 and env.get("OMP_NUM_THREADS", "").strip().isdigit():
        n = int(env["OMP_NUM_THREADS"])
    else:
        n = choose_threads(requested, env)
    for k in THREAD_ENV:
        if requested > 0 or k not in env:
            env[k] = str(n)
    if long_running:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        import torch  # noqa: PLC0415  torch: slow import, kept off this module's import

        torch.set_num_threads(n)
    return n


def cap_threads(threads: int, what: str = "--threads") -> int:
    """`threads` bounded by the usable cores, with one warning line when it asked for more: 100,000
    threads would start as many OS threads (load in the hundreds, or a hang)."""
    cores = usable_cores()
    if threads > cores:
        print(f"warning: {what} {threads}: only {cores} cores are usable here; using {cores}", file=sys.stderr)
        return cores
    return threads


def apply_threads(threads: int, what: str = "--threads") -> int:
    """For a command body (torch imported): `--threads N` sets N (at most the usable cores; `what`
    names the source in the warning); 0 keeps what configure_process chose (or, outside the `maa`
    entry point, the policy's choice). Returns the count in use."""
    import torch  # noqa: PLC0415  torch: slow import, kept off this module's import

    if threads > 0:
        torch.set_num_threads(cap_threads(threads, what))
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(choose_threads(0))
    return torch.get_num_threads()


# -- the torch device ----------------------------------------------------------------------------

def pick_device(spec: str | torch.device | None = "auto") -> torch.device:
    """`auto` (or None) -> cuda when available, else cpu; otherwise the named device, checked."""
    import torch  # noqa: PLC0415  torch: slow import, kept off this module's import (see the docstring)

    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise MaaError(f"--device {spec!r}: want auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MaaError(f"--device {spec}: CUDA is not available on this machine; use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MaaError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def describe(dev: torch.device) -> str:
    """For the log line: `cuda:0 (NVIDIA H200)` or `cpu (2 threads)`."""
    import torch  # noqa: PLC0415  torch: slow import, kept off this module's import (see the docstring)

    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
