"""Pictures and videos as prompts (`maa generate --image/--video`), for models whose condition is
the `openclip:` encoder (maa.parts.openclip): such a model was trained on one normalised
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

Beyond the paper: a video whose output is longer than one long-form window (`--duration`) is
cut into as many equal shares as there are windows (at most 4), each share pooled on its own;
window k is conditioned on the share its new stretch falls in, so the sound follows the picture.
The output's time maps proportionally onto the clip's.

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
from maa.data.visual import DEFAULT_FRAMES, read_image, read_video, read_video_segments
from maa.core.checkpoint import read_config

NOT_VISUAL = "this model was not trained with an image encoder"
MAX_PARTS = 4  # maa.infer.temporal.split_sequence's default max_parts: more parts would not be split


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
    duration: float | None = None  # of the output: a video longer than one window is followed in parts

    def check(self) -> None:
        if bool(self.images) == bool(self.video):
            raise MaaError("give --image FILE or --video FILE for a visual prompt (one kind per output)")
        if not 0.0 <= self.weight <= 1.0:
            raise MaaError(f"--image-weight {self.weight:g}: must lie in [0, 1] (1: the picture only)")


def model_takes_images(config_spec: str) -> bool:
    """Whether a model's condition spec is an image encoder (OpenCLIP)."""
    return str(config_spec).startswith("openclip:")


def check_model(root: Path) -> None:
    """Refuse a text-only model before anything is loaded."""
    spec = read_config(Path(root) / "ldm").get("text_encoder", "")
    if not model_takes_images(spec):
        raise MaaError(f"--image/--video: {NOT_VISUAL} (its condition is {spec or 'minilm'}); use a model "
                       "converted from the image-to-audio checkpoint or trained with --text-encoder openclip:...")


def _key(kind: str, parts: list) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"<{kind}:{h}>"


def _mix(encoder, spec: VisualSpec, frames: list) -> torch.Tensor:
    vec = encoder.encode_images(frames).mean(0)
    vec = vec / vec.norm()
    if spec.text:
        text = encoder.encode([spec.text]).pooled[0].to(vec.device)
        vec = spec.weight * vec + (1.0 - spec.weight) * text
        vec = vec / vec.norm()
    return vec


def embed(encoder, spec: VisualSpec) -> tuple[torch.Tensor, dict]:
    """(D,) unit vector and the record of one visual prompt."""
    spec.check()
    if not getattr(encoder, "has_image_tower", False):
        raise MaaError(f"--image/--video: {NOT_VISUAL} ({getattr(encoder, 'name', encoder)})")
    inputs = [read_video(spec.video, spec.frames)] if spec.video else [read_image(p) for p in spec.images]
    vec = _mix(encoder, spec, [im for v in inputs for im in v.frames])
    rec = {"inputs": [v.record() for v in inputs]}
    if spec.text:
        rec.update(text=spec.text, image_weight=spec.weight)
    if spec.video:
        rec["frames"] = spec.frames
    return vec, rec


def register(encoder, spec: VisualSpec, segments: int = 1, spans: list | None = None) -> tuple[str, dict]:
    """The prompt standing for `spec`, its keys registered with `encoder`, and its record.
    segments > 1 (a video over several long-form windows): the clip in that many equal shares,
    each pooled on its own; the prompt "<video:a>, then <video:b>, ..." gives share k to the
    windows of the k-th share of the output (maa.infer.temporal's order words). `spans`: the
    clip's (start, end) s per share, fractions of its length (default: equal shares)."""
    kind = ("video" if spec.video else "image") + ("+text" if spec.text else "")
    if segments <= 1 or not spec.video:
        vec, rec = embed(encoder, spec)
        key = _key(kind, [rec, torch.round(vec * 1e6).tolist()])
        encoder.register(key, vec)
        return key, rec
    spec.check()
    if not getattr(encoder, "has_image_tower", False):
        raise MaaError(f"--image/--video: {NOT_VISUAL} ({getattr(encoder, 'name', encoder)})")
    keys, parts = [], []
    for v in read_video_segments(spec.video, spec.frames, spans or segments, relative=spans is not None):
        vec = _mix(encoder, spec, v.frames)
        keys.append(_key(kind, [v.record(), spec.text, spec.weight, torch.round(vec * 1e6).tolist()]))
        encoder.register(keys[-1], vec)
        parts.append(v.record()["frame_times"])
    rec = {"inputs": [{**v.record(), "frame_times": [t for p in parts for t in p]}], "frames": spec.frames,
           "segments": parts, "duration": spec.duration}
    if spans:
        rec["shares"] = [[round(a, 6), round(b, 6)] for a, b in spans]
    if spec.text:
        rec.update(text=spec.text, image_weight=spec.weight)
    return ", then ".join(keys), rec


def video_shares(pipe, spec: VisualSpec) -> list[tuple[float, float]] | None:
    """For a video over several long-form windows: per part of the "A, then B" prompt, the span
    of the clip (as fractions of its length) that the windows given that part cover, so window
    k is conditioned on the frames under its own new stretch. None for one window. At most
    MAX_PARTS parts (the order-word splitter's limit): beyond, windows share a part."""
    from maa.infer.longform import WINDOW, window_stretches  # noqa: PLC0415  long form only for a video longer than one window

    if not spec.video or not spec.duration or spec.duration <= WINDOW:
        return None
    stretches = window_stretches(spec.duration, pipe.vae.factor)
    if len(stretches) < 2:
        return None

    def part(t0, t1, n):  # the part a window gets: maa.infer.timeline._schedule's rule
        return min(n - 1, int((t0 + t1) / 2 / spec.duration * n))

    # the part count giving the most windows a part of their own (the fewest parts on a tie)
    n = max(range(2, MAX_PARTS + 1), key=lambda n: (len({part(a, b, n) for a, b in stretches}), -n))
    covered: dict[int, list[float]] = {}
    for t0, t1 in stretches:
        p = part(t0, t1, n)
        lo, hi = covered.get(p, [t0, t1])
        covered[p] = [min(lo, t0), max(hi, t1)]
    shares = []
    for p in range(n):  # a part no window takes keeps its equal share (never sampled)
        lo, hi = covered.get(p, [spec.duration * p / n, spec.duration * (p + 1) / n])
        shares.append((max(0.0, lo / spec.duration), min(1.0, hi / spec.duration)))
    return shares


def prepare(pipe, specs: list[VisualSpec]) -> tuple[list[str], list[dict]]:
    """Prompts (one per spec) to pass to the pipeline, and each one's record."""
    keys, recs = [], []
    for s in specs:
        shares = video_shares(pipe, s)
        k, r = register(pipe.text, s, len(shares or [None]), shares)
        keys.append(k)
        recs.append(r)
    return keys, recs


def generate(pipe, specs: list[VisualSpec], seed: int = 0, **settings) -> list:
    """`pipe(...)` for visual prompts: one Output per spec, its record's `visual` field filled in
    (what `maa generate --image/--video` writes). `settings`: GenerateOptions fields."""
    for s in specs:
        s.duration = s.duration or settings.get("duration", 10.0)
    keys, recs = prepare(pipe, specs)
    outs = pipe(keys, seeds=[s.seed for s in specs], seed=seed, scorer=False, **settings)
    for o in outs:
        o.record["visual"] = recs[o.index]
    return outs


def from_record(pipe, record: dict) -> None:
    """--replay: read the files the record names again (sha256 checked) and register its key."""
    vis = record["visual"]
    inputs = vis["inputs"]
    spec = VisualSpec(images=[i["path"] for i in inputs if i["kind"] == "image"],
                      video=next((i["path"] for i in inputs if i["kind"] == "video"), None),
                      text=vis.get("text"), weight=vis.get("image_weight", 0.5), frames=vis.get("frames", DEFAULT_FRAMES),
                      duration=vis.get("duration"))
    shares = [tuple(x) for x in vis["shares"]] if vis.get("shares") else None
    key, rec = register(pipe.text, spec, len(vis.get("segments") or [None]), shares)
    for was, now in zip(inputs, rec["inputs"]):
        if was["sha256"] != now["sha256"]:
            raise MaaError(f"{was['path']}: not the {was['kind']} this output was made from (its content changed)")
    if key != record["prompt"]:
        raise MaaError(f"{record['prompt']}: the recorded picture gives another condition here (key {key})")


def read_visual_prompts(src: str, weight: float, frames: int, duration: float | None = None) -> list[VisualSpec]:
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
                          name=str(obj.get("id") or obj.get("name") or ""), seed=obj.get("seed"), duration=duration)
        spec.check()
        specs.append(spec)
    if not specs:
        raise MaaError(f"{src}: no prompts in the file")
    return specs
