"""`maa pull`: released weights by name, downloaded, converted and checked."""

from __future__ import annotations

import json

import typer
from maa.commands.common import friendly, info

HELP = """Download released weights by name and convert them into a model folder for `--model NAME`.

Downloads go through huggingface_hub: its cache (HF_HOME), progress bars, HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE (cached files only). A broken connection resumes; a rerun after an interruption fetches only what is missing. The converted folder is $MAA_HOME/models/NAME (default ~/.cache/maa/models), with the sha256 of every file in its README.md and pull.json, checked before each use. Names and sources live in maa/assets/registry.json. Prints the folder as a JSON line on stdout.

Examples:

  maa pull --list

  maa pull make-an-audio && maa generate "a dog barks" -o dog.wav --model make-an-audio

  maa pull make-an-audio-inpaint

  maa pull hf:OWNER/REPO          # a repository already in maa's format (ldm/, vae/, ...)
"""


def _size(n) -> str:
    return "unknown" if not n else f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@friendly
def main(
    name: str = typer.Argument(None, help="A name from `maa pull --list`, or hf:OWNER/REPO."),
    list_: bool = typer.Option(False, "--list", help="Show the names, their sources, sizes, licences and whether pulled (offline)."),
    config: str = typer.Option(None, "--config", help="Passed to the converter: the official LDM yaml (the UNet's head count)."),
    bert_config: str = typer.Option(None, "--bert-config", help="Passed to the converter: a BertConfig JSON for the text tower."),
    half: bool = typer.Option(False, "--half", help="Store the converted weights as float16 (half the size)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if already pulled (cached downloads are reused)."),
):
    """`maa pull`: released weights by name -> a maa model folder under $MAA_HOME/models."""
    from maa.core.errors import MaaError
    from maa.convert.pull import list_models, pull

    if list_:
        for row in list_models():
            size = _size(row["size_bytes"]) if row["size_bytes"] else (row["size_estimate"] or "unknown").split(" (")[0]
            info(f"{row['name']:<22} {row['source']:<42} {size:>9}  "
                 f"{'pulled' if row['pulled'] else 'not pulled':<10}  licence: {row['licence']}")
            print(json.dumps(row), flush=True)
        return
    if not name:
        raise MaaError("maa pull: give a NAME (see `maa pull --list`) or hf:OWNER/REPO")
    folder = pull(name, config=config, bert_config=bert_config, half=half, force=force)
    info(f"pulled {name} into {folder}; try: maa generate \"a dog barks\" -o dog.wav --model {name}")
    print(json.dumps({"name": name, "folder": str(folder)}), flush=True)
