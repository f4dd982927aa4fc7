"""When each stage of a command ran, for benchmarks: off unless MAA_PROFILE names a file.

    with stage("sampling"):            # a null context when MAA_PROFILE is unset
        ...

    @staged("vae decode")
    def decode_latent(...): ...

With MAA_PROFILE=PATH, every outermost stage is kept as {"stage", "t0", "t1", "cpu"} (Unix times,
so a parent process can set them against its own clock, and the process's CPU seconds in it: on a
busy machine these vary less than wall time) and the list is written to PATH as JSON when
the process exits. A stage inside another counts as the outer one (text encoding inside a
sampler call is sampling). benchmarks/bench_paper_cpu.py reads the file. Off, the cost is one
environment lookup per call.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import time

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
