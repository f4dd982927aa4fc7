"""`maa eval`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Score generated audio against references (FD, FAD, KL, IS, CLAP). (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("eval")
