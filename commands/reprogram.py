"""`maa reprogram`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Compose new clips and captions from single-event clips (A before B, A while B ...). (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("reprogram")
