"""`maa convert make-an-audio`: read an official checkpoint once, then convert it as what it is.

Three published kinds share the file layout: text-to-audio (v1, `maa.convert.make_an_audio`),
image-to-audio (its condition is OpenCLIP, `maa.convert.make_an_audio_img`) and inpainting (a
9-channel UNet without text, `maa.convert.make_an_audio_inpaint`). The keys tell them apart."""

from __future__ import annotations

from pathlib import Path

from maa.convert.make_an_audio import Progress, check_target, convert_make_an_audio, read_state_dict
from maa.convert.make_an_audio_img import convert_make_an_audio_image, is_image_checkpoint
from maa.convert.make_an_audio_inpaint import convert_inpaint, is_inpaint_state


def checkpoint_kind(state: dict) -> str:
    """Which official model a state dict holds: "inpaint", "image" or "text"."""
    return "inpaint" if is_inpaint_state(state) else "image" if is_image_checkpoint(state) else "text"


def convert_official(ckpt: str | Path, out: str | Path, vocoder=None, config=None, bert_config=None, clip_config=None,
                     half: bool = False, progress: Progress = None) -> Path:
    """Convert any official Make-An-Audio checkpoint to a maa model folder at `out`; returns it."""
    ckpt, out = Path(ckpt), Path(out)
    check_target(out, vocoder)  # before the long read
    state, digest = read_state_dict(ckpt, progress)
    kind = checkpoint_kind(state)
    if kind == "inpaint":
        return convert_inpaint(ckpt, out, vocoder=vocoder, config=config, half=half, state=state, digest=digest)
    if kind == "image":
        return convert_make_an_audio_image(ckpt, out, vocoder, config, clip_config, half, state=state, digest=digest)
    return convert_make_an_audio(ckpt, out, vocoder, config, bert_config, half, state=state, digest=digest)
