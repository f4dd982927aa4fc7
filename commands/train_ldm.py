"""`maa train-ldm`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Train the text-conditioned latent diffusion model. (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("train-ldm")
