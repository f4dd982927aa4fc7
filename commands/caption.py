"""`maa caption`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Write captions for language-free audio (expert candidates, best by audio-text score). (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("caption")
