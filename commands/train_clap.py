"""`maa train-clap`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Train the small audio-text similarity model (maa-clap) used by caption, generate -n and eval. (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("train-clap")
