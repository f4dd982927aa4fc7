"""The `maa` command: one Typer app, one module per subcommand in commands/."""

from __future__ import annotations

import sys

import typer
from maa.commands import (
    caption,
    convert,
    generate,
    info,
    lora,
    mel,
    pull,
    reprogram,
    train_clap,
    train_ldm,
    train_vae,
    train_vocoder,
    ui,
)
from maa.commands import eval as eval_cmd

from maa import __version__
from maa.core.device import configure_process, first_word, threads_from_argv

app = typer.Typer(
    name="maa",
    help="Make-An-Audio toolkit: from a folder of sound clips to a text-to-audio model and back to sound.\n\n"
    "Quick start: maa generate \"a dog barks while rain falls\" -o out.wav",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"maa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
):
    pass


app.command("mel", help=mel.HELP, no_args_is_help=True)(mel.main)
app.command("reprogram", help=reprogram.HELP)(reprogram.main)
app.command("caption", help=caption.HELP)(caption.main)
app.command("train-vae", help=train_vae.HELP)(train_vae.main)
app.command("train-ldm", help=train_ldm.HELP)(train_ldm.main)
app.command("train-clap", help=train_clap.HELP)(train_clap.main)
app.command("generate", help=generate.HELP)(generate.main)
app.command("info", help=info.HELP, no_args_is_help=True)(info.main)
app.command("eval", help=eval_cmd.HELP)(eval_cmd.main)
app.command("train-vocoder", help=train_vocoder.HELP)(train_vocoder.main)
app.command("ui", help=ui.HELP)(ui.main)
app.add_typer(convert.app, name="convert", help=convert.HELP)
app.command("pull", help=pull.HELP)(pull.main)
app.add_typer(lora.app, name="lora", help=lora.HELP)


# long work: a neighbour may start while it runs, so idle OpenMP threads sleep (maa.core.device)
LONG_COMMANDS = ("train-vae", "train-ldm", "train-clap", "train-vocoder", "mel", "eval", "caption", "reprogram")


def is_long_running(argv: list[str]) -> bool:
    """Whether the `maa` command in `argv` is long work."""
    return first_word(argv) in LONG_COMMANDS


def main():
    """The `maa` entry point: the thread policy first (before any command imports torch), then the app."""
    # OpenMP reads its thread count and wait policy once, at load
    argv = sys.argv[1:]
    configure_process(threads_from_argv(argv), long_running=is_long_running(argv))
    app()


if __name__ == "__main__":
    main()
