"""Wall time of a one-off CPU call, `maa generate "dog barking" -o out.wav`, measured as a user sees it.

In one run, alternating so that machine noise hits every case alike:
  * `python -c "import torch"`: the floor any torch command pays;
  * the one-off call on a quiet machine;
  * the same call beside one CPU-bound neighbour (a single-threaded busy loop, like a small
    `maa train-vae` run) - the thread policy's target is at most ~1.5x the quiet time;
  * with --old, the former policy (one spinning OpenMP thread per core: OMP_WAIT_POLICY=ACTIVE,
    --threads = all cores) quiet and beside the neighbour, for comparison.
Each case reports the median wall time over --reps calls and the CPU time (user + system) the
call used; ratios are to the quiet call of the same run.

    .venv/bin/python benchmarks/bench_cli.py [--reps 3] [--old] [--json out.json] [-- extra generate args]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 3600: pass\n"


def maa_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("maa")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "maa.commands.cli"]


_calls = iter(range(10**9))


def timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall seconds, user + system CPU seconds) of one child process; raises if it fails.
    An argument OUT becomes a fresh wav name, so no call can reuse an earlier output."""
    cmd = [f"out{next(_calls)}.wav" if c == "OUT" else c for c in cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode:
        raise SystemExit(f"bench_cli: {' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime


class Neighbour:
    """One CPU-bound process for the duration of a `with` block."""

    def __enter__(self):
        self.p = subprocess.Popen([sys.executable, "-c", BUSY])
        time.sleep(0.5)  # let it reach full speed (and show up in /proc/stat)
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="calls per case (the median is reported)")
    ap.add_argument("--prompt", default="dog barking")
    ap.add_argument("--old", action="store_true", help="also the former thread policy (spinning threads on all cores)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("extra", nargs="*", help="extra `maa generate` arguments (after --)")
    a = ap.parse_args()

    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                                                                 "OPENBLAS_NUM_THREADS")}
    cores = len(os.sched_getaffinity(0))
    old_env = {**base_env, "OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": str(cores)}
    work = tempfile.mkdtemp(prefix="bench_cli_")
    gen = [*maa_cmd(), "generate", a.prompt, "-o", "OUT", "-q", *a.extra]  # OUT: a new file every call (no reuse)
    cases = [("python -c 'import torch'", [sys.executable, "-c", "import torch"], base_env, False),
             ("maa generate (quiet)", gen, base_env, False),
             ("maa generate + 1 busy neighbour", gen, base_env, True)]
    if a.old:
        cases += [("old policy (quiet)", [*gen, "--threads", str(cores)], old_env, False),
                  ("old policy + 1 busy neighbour", [*gen, "--threads", str(cores)], old_env, True)]
    timed(gen, base_env, work)  # warm the file cache: every case then reads weights from memory
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in cases}
    for _ in range(a.reps):  # interleaved: slow drifts of the machine's load hit every case alike
        for name, cmd, env, busy in cases:
            if busy:
                with Neighbour():
                    runs[name].append(timed(cmd, env, work))
            else:
                runs[name].append(timed(cmd, env, work))

    quiet = statistics.median(w for w, _ in runs["maa generate (quiet)"])
    rows = []
    print(f"{'case':36s} {'wall s (median)':>16s} {'cpu s':>8s} {'x quiet':>8s}   ({a.reps} calls each, {cores} cores, "
          f"load before {os.getloadavg()[0]:.2f})")
    for name, *_ in cases:
        w = statistics.median(x for x, _ in runs[name])
        c = statistics.median(x for _, x in runs[name])
        rows.append({"case": name, "wall_s": round(w, 2), "cpu_s": round(c, 2), "x_quiet": round(w / quiet, 2),
                     "walls": [round(x, 2) for x, _ in runs[name]]})
        print(f"{name:36s} {w:16.2f} {c:8.2f} {w / quiet:8.2f}")
    if a.json:
        a.json.write_text(json.dumps({"cores": cores, "reps": a.reps, "command": gen, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
