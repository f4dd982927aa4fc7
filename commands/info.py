"""`maa info`: the generation record inside a wav that `maa generate` wrote."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from maa.commands.common import friendly

from maa.core.errors import MaaError

HELP = """Print the generation record inside wav files (prompt, seed, settings, model hash, version) as
one JSON line per file, on stdout (jq-readable).

Examples:

  maa info out.wav

  maa info out/*.wav | jq -r '[.seed, .prompt] | @tsv'

`maa generate --replay out.wav -o again.wav` makes the file again from its record.
"""


@friendly
def main(files: list[Path] = typer.Argument(..., help="wav files written by `maa generate`.")):
    """`maa info`: print the generation record stored in each wav as one JSON line."""
    from maa.infer.options import read_record

    for f in files:
        if not f.is_file():
            raise MaaError(f"{f}: no such file")
        record = read_record(f, strict=True)  # a missing or damaged record: one line saying what is wrong
        typer.echo(json.dumps(record, ensure_ascii=False))
