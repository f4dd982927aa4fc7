"""`maa train-vae`: not built yet (see its issue)."""

import typer

from maa.commands.common import not_implemented

HELP = "Train the spectrogram autoencoder (VAE + multi-window discriminator). (not implemented yet)"


def main(args: list[str] = typer.Argument(None, help="Arguments (ignored until the command exists).")):
    not_implemented("train-vae")
