"""Pictures and videos as prompts (`maa generate --image/--video`), for models whose condition is
the `openclip:` encoder (maa.models.openclip): such a model was trained on one normalised
caption token, and OpenCLIP puts an image's token in the same space.

    pipe = load_pipeline("models/maa-img")
    keys = prepare(pipe, [VisualSpec(images=["photo.jpg"]), VisualSpec(video="clip.mp4", text="rain", weight=0.7)])
    outs = pipe(keys, compose=False)            # keys stand where captions would

How a prompt becomes a condition (one unit vector, D wide):
  * an image: OpenCLIP's preprocessing and image tower, normalised (the official recipe);
  * several images in one prompt, or a video: the normalised embeddings of the images, or of
    `frames` uniformly spaced frames (their times are recorded), averaged and normalised again.
    The paper pools a clip's frame embeddings; that it is a plain mean is our reading, not a
    quoted detail;
  * with text: w * image + (1 - w) * text, normalised again (`--image-weight` w, default 0.5).
The unconditional input stays the text encoding of "" (the official recipe).

The vector is registered with the encoder under a key (`<image:SHA>`) that the pipeline passes
where a caption would go, so sampling, batching and seeding are those of text prompts. The
record of each wav names the files, their sha256 and the frame times (`visual`), which is what
`--replay` reads to rebuild the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maa.core.errors import MaaError
from maa.data.visual import DEFAULT_FRAMES, read_image, read_video

NOT_VISUAL = "this model was not trained with an image encoder"


@dataclass
class VisualSpec:
    """One output's visual prompt: images (pooled when several) or a video, optional text."""
    images: list[str] = field(default_factory=list)
    video: str | None = None
    text: str | None = None
    weight: float = 0.5  # of the picture, against the text
    frames: int = DEFAULT_FRAMES
    name: str = ""
    seed: int | None = None

    def check(self) -> None:
        if bool(self.images) == bool(self.video):
            raise MaaError("give --image FILE or --video FILE for a visual prompt (one kind per output)")
        if not 0.0 <= self.weight <= 1.0:
            raise MaaError(f"--image-weight {self.weight:g}: must lie in [0, 1] (1: the picture only)")


def model_takes_images(config_spec: str) -> bool:
    return str(config_spec).startswith("openclip:")


def check_model(root: Path) -> None:
    """Refuse a text-only model before anything is loaded."""
    from maa.core.checkpoint import read_config

    spec = read_config(Path(root) / "ldm").get("text_encoder", "")
    if not model_takes_images(spec):
        raise MaaError(f"--image/--video: {NOT_VISUAL} (its condition is {spec or 'minilm'}); use a model "
                       "converted from the image-to-audio checkpoint or trained with --text-encoder openclip:...")


def _key(kind: str, parts: list) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"<{kind}:{h}>"


def embed(encoder, spec: VisualSpec) -> tuple[torch.Tensor, dict]:
    """(D,) unit vector and the record of one visual prompt."""
    spec.check()
    if not getattr(encoder, "has_image_tower", False):
        raise MaaError(f"--image/--video: {NOT_VISUAL} ({getattr(encoder, 'name', encoder)})")
    inputs = [read_video(spec.video, spec.frames)] if spec.video else [read_image(p) for p in spec.images]
    frames = [im for v in inputs for im in v.frames]
    vec = encoder.encode_images(frames).mean(0)
    vec = vec / vec.norm()
    rec = {"inputs": [v.record() for v in inputs]}
    if spec.text:
        text = encoder.encode([spec.text]).pooled[0].to(vec.device)
        vec = spec.weight * vec + (1.0 - spec.weight) * text
        vec = vec / vec.norm()
        rec.update(text=spec.text, image_weight=spec.weight)
    if spec.video:
        rec["frames"] = spec.frames
    return vec, rec


def register(encoder, spec: VisualSpec) -> tuple[str, dict]:
    """The key standing for `spec` in a prompt list, registered with `encoder`, and its record."""
    vec, rec = embed(encoder, spec)
    kind = "video" if spec.video else "image"
    key = _key(kind + ("+text" if spec.text else ""), [rec, torch.round(vec * 1e6).tolist()])
    encoder.register(key, vec)
    return key, rec


def prepare(pipe, specs: list[VisualSpec]) -> tuple[list[str], list[dict]]:
    """Keys (one per spec) to pass to the pipeline as prompts, and each one's record."""
    keys, recs = [], []
    for s in specs:
        k, r = register(pipe.text, s)
        keys.append(k)
        recs.append(r)
    return keys, recs


def from_record(pipe, record: dict) -> None:
    """--replay: read the files the record names again (sha256 checked) and register its key."""
    vis = record["visual"]
    inputs = vis["inputs"]
    spec = VisualSpec(images=[i["path"] for i in inputs if i["kind"] == "image"],
                      video=next((i["path"] for i in inputs if i["kind"] == "video"), None),
                      text=vis.get("text"), weight=vis.get("image_weight", 0.5), frames=vis.get("frames", DEFAULT_FRAMES))
    key, rec = register(pipe.text, spec)
    for was, now in zip(inputs, rec["inputs"]):
        if was["sha256"] != now["sha256"]:
            raise MaaError(f"{was['path']}: not the {was['kind']} this output was made from (its content changed)")
    if key != record["prompt"]:
        raise MaaError(f"{record['prompt']}: the recorded picture gives another condition here (key {key})")


def read_visual_prompts(src: str, weight: float, frames: int) -> list[VisualSpec]:
    """A prompts file's lines with an `image` (or `images`, `video`) column: JSON lines
    {"id", "image" | "images" | "video", optional "prompt", "seed", "image_weight"}."""
    p = Path(src)
    if not p.is_file():
        raise MaaError(f"{src}: no such prompt file")
    specs = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s)
        except ValueError as e:
            raise MaaError(f"{src} line {n}: with images, each line is a JSON object ({e})") from None
        if not isinstance(obj, dict) or not (obj.get("image") or obj.get("images") or obj.get("video")):
            raise MaaError(f"{src} line {n}: no image, images or video column")
        images = obj.get("images") or ([obj["image"]] if obj.get("image") else [])
        base = p.parent
        spec = VisualSpec(images=[str(base / i) for i in images],
                          video=str(base / obj["video"]) if obj.get("video") else None,
                          text=obj.get("prompt") or obj.get("caption") or None,
                          weight=float(obj.get("image_weight", weight)), frames=frames,
                          name=str(obj.get("id") or obj.get("name") or ""), seed=obj.get("seed"))
        spec.check()
        specs.append(spec)
    if not specs:
        raise MaaError(f"{src}: no prompts in the file")
    return specs
