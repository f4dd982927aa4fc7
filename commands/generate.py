"""`maa generate`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Generate audio from text. (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("generate")
