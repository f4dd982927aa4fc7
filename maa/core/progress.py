"""One progress and log convention for library code and every command, and the stage timings
benchmarks read (`stage`, `staged`: off unless MAA_PROFILE names a file).

    ui = Reporter(quiet=False)                 # commands: Reporter(info=..., warn=..., quiet=quiet)
    ui.info("train-ldm: 120 clips")            # one line on stderr
    ui.warn("3 rows have no caption")          # `warning: ...` on stderr
    with ui.bar(len(rows), "mel") as bar:      # a progress bar; bar.update(n) per unit of work
        compute_mels(rows, job, progress=bar.update)

Rules, the same everywhere:
  * stderr only: stdout stays for data (JSON lines);
  * `-q` (quiet=True): no bars at all (info and warnings stay);
  * stderr not a terminal (a log file, CI, a pipe): no bars, one line per stage when it ends
    (`mel: 120/120 clips in 3.4 s`), so logs stay readable;
  * on a terminal: a tqdm bar.
Library functions take a `progress` callable (count -> None) or a Reporter; they never build bars.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StageLine:
    """A bar for a non-terminal stderr: counts silently, writes one line when the stage closes."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int, write: Callable[[str], None]):
        self.total, self.desc, self.unit, self.n, self._write = total, desc, unit, initial, write
        self._t0, self._closed = time.perf_counter(), False

    def update(self, n: int = 1) -> None:
        """Count `n` more units."""
        self.n += n

    def set_postfix(self, *_a, **_k) -> None:
        """Accepted for tqdm compatibility; a stage line shows only the count."""

    def close(self) -> None:
        """Write the stage's one line (once)."""
        if not self._closed:
            self._closed = True
            of = f"/{self.total}" if self.total else ""
            self._write(f"{self.desc}: {self.n}{of} {self.unit}s in {time.perf_counter() - self._t0:.1f} s")

    def __enter__(self) -> StageLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NoBar(StageLine):
    """A bar that shows nothing (quiet, or a process that is not the main one)."""

    def __init__(self, total: int | None = None, initial: int = 0):
        super().__init__(total, "", "", initial, lambda _s: None)


def bar(total: int | None, desc: str, quiet: bool = False, unit: str = "clip", initial: int = 0,
        stream=None, **tqdm_options):
    """A progress bar by the rules above: NoBar when quiet, StageLine off a terminal, else tqdm."""
    stream = stream or sys.stderr
    if quiet:
        return NoBar(total, initial)
    if not _is_terminal(stream):
        return StageLine(total, desc, unit, initial, lambda s: print(s, file=stream, flush=True))
    from tqdm import tqdm  # noqa: PLC0415  tqdm: only when a bar is drawn

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream, dynamic_ncols=True, **tqdm_options)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


@dataclass
class Reporter:
    """Where library code says things: lines, warnings and bars (the commands pass their console's)."""

    info: Callable[[str], None] = _stderr
    warn: Callable[[str], None] = lambda m: _stderr(f"warning: {m}")
    quiet: bool = False

    def bar(self, total: int | None, desc: str, disable: bool = False, unit: str = "clip", **options):
        """A bar for one stage (none when quiet or `disable`, e.g. on a non-main process)."""
        return bar(total, desc, quiet=self.quiet or disable, unit=unit, **options)


# -- stage timings ---------------------------------------------------------------------------------
#
# When each stage of a command ran, for benchmarks: off unless MAA_PROFILE names a file.
#
#     with stage("sampling"):            # a null context when MAA_PROFILE is unset
#         ...
#
#     @staged("vae decode")
#     def decode_latent(...): ...
#
# With MAA_PROFILE=PATH, every outermost stage is kept as {"stage", "t0", "t1", "cpu"} (Unix times,
# so a parent process can set them against its own clock, and the process's CPU seconds in it: on a
# busy machine these vary less than wall time) and the list is written to PATH as JSON when
# the process exits. A stage inside another counts as the outer one (text encoding inside a
# sampler call is sampling). benchmarks/bench_paper_cpu.py reads the file. Off, the cost is one
# environment lookup per call.

ENV = "MAA_PROFILE"
_spans: list[dict] = []
_depth = [0]
_registered = [False]


def _write(path: str) -> None:
    try:
        with open(path, "w") as f:
            json.dump(_spans, f)
    except OSError:  # a benchmark aid: never fail the command over it
        pass


@contextlib.contextmanager
def _timed(name: str, path: str):
    if not _registered[0]:
        atexit.register(_write, path)
        _registered[0] = True
    t0, c0 = time.time(), time.process_time()
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if _depth[0] == 0:
            _spans.append({"stage": name, "t0": t0, "t1": time.time(), "cpu": time.process_time() - c0})


def stage(name: str):
    """A context manager that records `name` when MAA_PROFILE is set (a null context otherwise)."""
    path = os.environ.get(ENV)
    return _timed(name, path) if path else contextlib.nullcontext()


def staged(name: str):
    """Decorator form of `stage`."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with stage(name):
                return fn(*args, **kwargs)
        return inner
    return wrap


def spans() -> list[dict]:
    """The stages recorded so far in this process."""
    return list(_spans)
