"""`maa convert`: other toolkits' released weights as maa model folders."""

from __future__ import annotations

from pathlib import Path

import typer
from maa.commands.common import friendly, info
from maa.commands.options import Quiet
from maa.core import progress

HELP = "Convert released weights of other toolkits into a maa model folder (see `maa convert make-an-audio -h`)."

MAKE_AN_AUDIO_HELP = """Convert the official Make-An-Audio v1 weights into a model folder for `maa generate --model`.

CKPT is the official maa1_full.ckpt (a Lightning checkpoint). It is read without running any of
its pickle code: only tensors, numpy scalars and OmegaConf containers are accepted, anything else
is refused. The folder gets ldm/, vae/, text/ (BERT + msCLAP, the official text condition),
vocoder/ with --vocoder, and a README.md with the source's sha256 and licence. It is written
whole or not at all; converting again gives the same bytes.

Examples:

  maa convert make-an-audio maa1_full.ckpt --vocoder bigvgan_16k/ -o models/maa1

  maa generate "a dog barks while rain falls" -o out.wav --model models/maa1 --sampler ddim --steps 100
"""


app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command("make-an-audio", help=MAKE_AN_AUDIO_HELP, no_args_is_help=True)
@friendly
def make_an_audio(
    ckpt: Path = typer.Argument(..., help="The official maa1_full.ckpt."),
    out: Path = typer.Option(..., "-o", "--out", help="Model folder to write (replaced if an earlier conversion wrote it)."),
    vocoder: Path = typer.Option(None, "--vocoder", help="The official 16 kHz BigVGAN folder (best_netG.pt + args.yml). "
                                 "Without it the folder has no vocoder and generation uses Griffin-Lim."),
    config: Path = typer.Option(None, "--config", help="The official LDM yaml (txt2audio_args.yaml), for the UNet's head "
                                "count. Default: the release's (8)."),
    bert_config: Path = typer.Option(None, "--bert-config", help="A transformers BertConfig JSON for the text tower's "
                                     "head count and activation. Default: bert-base-uncased's."),
    half: bool = typer.Option(False, "--half", help="Store the weights as float16 (half the size)."),
    quiet: Quiet = False,
):
    """`maa convert make-an-audio`: the official v1 checkpoint (and BigVGAN) -> a maa model folder."""
    from maa.convert.make_an_audio import convert_make_an_audio

    size = ckpt.stat().st_size if ckpt.is_file() else 0
    with progress.bar(size, "read", quiet=quiet or not size, unit="B", unit_scale=True) as bar:

        def read(n: int) -> None:
            bar.update(n)
            if bar.n >= size:
                bar.close()  # the read is done; the rest (mapping, writing) takes seconds

        done = convert_make_an_audio(ckpt, out, vocoder=vocoder, config=config, bert_config=bert_config, half=half,
                                     progress=read)
    info(f"wrote {done} (ldm/, vae/, text/{', vocoder/' if vocoder else ''}); "
         f"try: maa generate \"a dog barks\" -o dog.wav --model {done}")
