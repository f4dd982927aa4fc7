"""Shared CLI plumbing: one-line errors, stderr logging, progress bars, the final JSON line."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape

from maa.core.errors import MaaError, MaaWarning
from maa.core.progress import Reporter
import warnings
import errno
import pickle
import json
import os

# Logs and progress go to stderr so stdout stays clean for JSONL (pipes, jq).
console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> None:
    """Print `error: MESSAGE` on stderr and exit with `code`."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print `warning: MESSAGE` on stderr."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    """Print one log line on stderr."""
    console.print(message, soft_wrap=True)


def friendly(fn: Callable) -> Callable:
    """Turn MaaError (and Ctrl-C) into one line on stderr and a non-zero exit, never a traceback.

    The same one line for what the user's files and folders cause rather than our code: an OS
    error on a path (output is a folder, a parent is a file, no permission, disk full) and a file
    that is not what its name says (bad safetensors, a refused pickle, text that is not UTF-8).
    Library warnings (maa.core.errors.warn) become one `warning:` line each.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("default", MaaWarning)  # once per message: a file read every epoch warns once
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, MaaWarning):
                    warn(str(message))
                else:
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
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
            except OSError as e:
                fail(os_error_line(e))
            except Exception as e:
                if not _is_bad_file(e):
                    raise  # anything else is a bug: keep its traceback
                fail(f"an input file is damaged or not what its name says ({_first_line(e)}); "
                     "check the files you passed")

    return wrapper


def os_error_line(e: OSError) -> str:
    """One line for an OS error on a path: which path, what is wrong, what to do."""

    where = f"{e.filename}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "") if e.filename else ""
    why = e.strerror or _first_line(e)
    if isinstance(e, IsADirectoryError):
        fix = "it is a folder; give a file path"
    elif isinstance(e, NotADirectoryError):
        fix = "a part of this path is a file, not a folder; choose another path"
    elif isinstance(e, FileExistsError):
        fix = "exists and is not a folder; choose another path"
    elif isinstance(e, PermissionError) or e.errno in (errno.EROFS, errno.EPERM, errno.EACCES):
        fix = f"not allowed ({why}); choose a path you can write (or read), or fix its permissions"
    elif isinstance(e, FileNotFoundError):
        fix = "not found; check the path"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"{why}; free some space or choose another output folder"
    else:
        fix = why
    return f"{where}: {fix}" if where else fix


def _is_bad_file(e: Exception) -> bool:
    names = {c.__name__ for c in type(e).__mro__}
    return isinstance(e, (UnicodeDecodeError, pickle.UnpicklingError)) or "SafetensorError" in names


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard I/N` -> (I, N), checked (0 <= I < N)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise MaaError(f"--shard {text!r}: want I/N, e.g. 0/4 for the first of four shards") from None
    if not (n >= 1 and 0 <= i < n):
        raise MaaError(f"--shard {text!r}: want I/N with 0 <= I < N")
    return i, n


def reporter(quiet: bool = False) -> Reporter:
    """The library's Reporter (maa.core.progress) wired to this console; `quiet`: no bars."""
    return Reporter(info=info, warn=warn, quiet=quiet)


def emit(record: dict) -> None:
    """One JSON line on stdout (the final metrics), without the loop's bookkeeping `kind`; under
    torchrun only rank 0 writes it."""

    if os.environ.get("RANK", "0") != "0":
        return
    sys.stdout.write(json.dumps({k: v for k, v in record.items() if k != "kind"}) + "\n")
