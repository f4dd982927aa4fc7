"""`maa ui`: a local web page to type a prompt, hear candidates and keep one (Gradio)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from maa.commands.common import friendly, info
from maa.commands.options import Device

HELP = """Listen and choose in the browser: prompt, negative prompt, duration, seed, steps, guidance,
candidates (each with a player, its spectrogram and its audio-text score, best first),
audio-to-audio, inpainting spans, a timeline, long form, seamless loops and a model picker.

Every result is written to --out-dir as `maa generate` writes it (wav with its record, PNG,
a line of manifest.jsonl); the history panel lists them, with replay and "use as input". One job
runs at a time (the others queue). The same functions are an HTTP API (gradio_client):
see the README's "Listen in the browser". Needs Gradio, the optional ui extra (pip install gradio).

Examples:

  maa ui                                             # http://127.0.0.1:7860, the bundled model

  maa ui --model runs/demo --out-dir ui_out --port 7861

  maa ui --models-dir models/                        # the picker lists every model folder in models/

  maa ui --host 0.0.0.0 --auth me:secret             # other machines: only with a password
"""


@friendly
def main(
    model_dir: str = typer.Option(None, "--model", help="Model folder to start with. Default: the bundled model."),
    out_dir: Path = typer.Option(Path("ui_out"), "--out-dir", help="Where results are written (and the only files served)."),
    models_dir: Path = typer.Option(None, "--models-dir", help="A folder of model folders for the picker."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but this machine needs --auth."),
    auth: str = typer.Option(None, "--auth", help="user:password asked by the page (and the API)."),
    device: Device = "auto",
):
    """Serve the page until Ctrl-C."""
    from maa.core.errors import MaaError
    from maa.infer.ui import Studio, check_host

    creds = check_host(host, auth)
    if out_dir.exists() and not out_dir.is_dir():
        raise MaaError(f"--out-dir {out_dir}: is a file; give a folder")
    if model_dir is not None and not (Path(model_dir) / "ldm" / "config.json").exists():
        raise MaaError(f"--model {model_dir}: not a model folder (no ldm/config.json)")
    try:
        import gradio  # noqa: F401  (only to say how to get it)
    except ImportError:
        raise MaaError("maa ui needs Gradio: pip install 'maa[ui]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    # Gradio's own copies of uploads and results live inside OUT_DIR: the only folder it serves
    os.environ.setdefault("GRADIO_TEMP_DIR", str((out_dir / ".gradio").resolve()))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from maa.infer.ui import serve

    studio = Studio(out_dir, model=model_dir, models_dir=models_dir, device=device)
    info(f"ui: http://{host}:{port}  (results in {out_dir}; Ctrl-C stops)")
    serve(studio, host=host, port=port, auth=creds)
