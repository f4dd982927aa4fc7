"""Shared CLI plumbing: one-line errors, stderr logging, progress bars."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer
from rich.console import Console

from maa.core.errors import MaaError

# Logs and progress go to stderr so stdout stays clean for JSONL (pipes, jq).
console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def friendly(fn: Callable) -> Callable:
    """Turn MaaError (and Ctrl-C) into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MaaError as e:
            fail(str(e))
        except KeyboardInterrupt:
            console.print("interrupted; finished outputs are kept, rerun the same command to continue")
            raise typer.Exit(130)
        except BrokenPipeError:  # e.g. `maa ... | head`
            sys.stderr.close()
            raise typer.Exit(0)

    return wrapper


def progress_bar(total: int, desc: str, disable: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=disable, dynamic_ncols=True)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise MaaError(f"--shard {text!r}: want I/N, e.g. 0/4 for the first of four shards") from None
    if not (n >= 1 and 0 <= i < n):
        raise MaaError(f"--shard {text!r}: want I/N with 0 <= I < N")
    return i, n


def not_implemented(name: str) -> None:
    fail(f"`maa {name}` is not implemented yet; see the open issues in the README's roadmap", code=2)
