"""Pictures and videos as prompts: read, checked and converted to RGB before any encoder sees them.

    im = read_image("photo.jpg")              # VisualInput: RGB PIL image(s), sha256, frame times
    clip = read_video("clip.mp4", frames=4)   # uniformly spaced frames, decoded with PyAV

Bad files get one line naming the file and what to do: not an image, truncated data, an image
larger than MAX_PIXELS (checked from the header, before anything is decoded), an animated image
(refused: pass it as --video, which takes its frames), a video without a video stream or frames.
Modes are converted properly rather than reinterpreted: transparency is composited onto white,
CMYK and palette images through Pillow's conversion, 16-bit greyscale scaled to 8 bits (not
clipped).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maa.core.checkpoint import sha256_file
from maa.core.errors import MaaError
from PIL import Image
from PIL import UnidentifiedImageError

MAX_PIXELS = 40_000_000  # 40 MP: larger than any camera frame this is meant for; checked before decoding
DEFAULT_FRAMES = 4


@dataclass
class VisualInput:
    """What one --image or --video gives: the frames (RGB PIL images), the file's sha256 and,
    for a video, each frame's time in seconds."""
    path: str
    kind: str  # "image" or "video"
    sha256: str
    frames: list = field(default_factory=list)
    times: list[float] | None = None
    duration: float | None = None

    def record(self) -> dict:
        out = {"kind": self.kind, "path": self.path, "sha256": self.sha256}
        if self.times is not None:
            out["frame_times"] = [round(t, 4) for t in self.times]
        return out


def _exists(path: Path, flag: str) -> None:
    if not path.exists():
        raise MaaError(f"{flag} {path}: no such file")
    if not path.is_file():
        raise MaaError(f"{flag} {path}: not a file; pass an image file (PNG, JPEG, ...)"
                       if flag == "--image" else f"{flag} {path}: not a file; pass a video file")


def to_rgb(im, where: str):
    """An RGB copy of a decoded PIL image, converted by meaning rather than by bytes."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit greyscale: 0..65535 -> 0..255
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 if a.max() <= 1.0 else 1.0
        im = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" or (im.mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:
        raise MaaError(f"--image {where}: its colour mode {mode} cannot be converted to RGB ({e}); "
                       "save it as an 8-bit RGB PNG or JPEG") from None


def read_image(path: str | Path) -> VisualInput:
    """One still image, checked and converted to RGB."""
    path = Path(path)
    _exists(path, "--image")
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: our own bound below says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
    except UnidentifiedImageError:
        raise MaaError(f"--image {path}: not an image Pillow can read; pass a PNG, JPEG, WebP, BMP or TIFF "
                       "file (a video: use --video)") from None
    except Image.DecompressionBombError as e:  # Pillow's own bound (2 x 89 MP), checked before ours
        size = re.search(r"\((\d+) pixels\)", str(e))
        raise MaaError(f"--image {path}: {int(size.group(1)) if size else 'over 179 million'} pixels is more than "
                       f"the {MAX_PIXELS // 1_000_000} MP this reads; scale it down first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MaaError(f"--image {path}: truncated or corrupt image data ({str(e)[:80]}); export the image again") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise MaaError(f"--image {path}: {w} x {h} pixels is more than the {MAX_PIXELS // 1_000_000} MP "
                           "this reads; scale it down first (it is shrunk to 224 pixels anyway)")
        if w < 1 or h < 1:
            raise MaaError(f"--image {path}: has no pixels ({w} x {h})")
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            raise MaaError(f"--image {path}: an animated image with {frames} frames; refused rather than guess a "
                           "frame: pass it as --video (its frames are used) or save the frame you want as PNG")
        try:
            im.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise MaaError(f"--image {path}: truncated or corrupt image data ({str(e)[:80]}); "
                           "export the image again") from None
        rgb = to_rgb(im, str(path))
    return VisualInput(str(path.resolve()), "image", sha256_file(path), [rgb])


def frame_targets(duration: float, n: int) -> list[float]:
    """n times at the centres of n equal spans of the clip."""
    return [duration * (k + 0.5) / n for k in range(n)]


def read_video(path: str | Path, frames: int = DEFAULT_FRAMES, start: float = 0.0,
               end: float | None = None) -> VisualInput:
    """`frames` frames at uniformly spaced times of [start, end) (the whole clip by default),
    decoded with PyAV; each the frame nearest its target time."""
    return read_video_segments(path, frames, [(start, end)])[0]


def read_video_segments(path: str | Path, frames: int, spans: list[tuple[float, float | None]] | int,
                        relative: bool = False) -> list[VisualInput]:
    """One VisualInput per span (start, end) s of the clip (end None: its end; relative: as
    fractions of its length), or per share when `spans` is a count of equal shares. The file is decoded once, and only the frames
    nearest the target times are kept (a long clip never sits in memory)."""
    try:
        import av  # noqa: PLC0415  PyAV: the optional `vision` extra, imported only for --video
    except ImportError:
        raise MaaError("--video: the package av (PyAV) is not installed; pip install 'maa[vision]'") from None
    path = Path(path)
    _exists(path, "--video")
    if frames < 1:
        raise MaaError(f"--video-frames {frames}: must be at least 1")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise MaaError(f"--video {path}: not a video FFmpeg can read ({str(e)[:80]})") from None
    with container:
        if not container.streams.video:
            raise MaaError(f"--video {path}: has no video stream (an audio-only file?); pass a file with pictures")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > MAX_PIXELS:
            raise MaaError(f"--video {path}: {w} x {h} pixels per frame is more than {MAX_PIXELS // 1_000_000} MP; "
                           "scale it down first")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if duration is None:  # unknown length: the stream is read once to learn it
            duration = max((float(f.time or 0.0) for f in container.decode(stream)), default=0.0)
            container.seek(0)
        if isinstance(spans, int):
            spans = [(duration * k / spans, duration * (k + 1) / spans) for k in range(spans)]
        elif relative:
            spans = [(duration * a, duration * (1.0 if b is None else b)) for a, b in spans]
        spans = [(a, duration if b is None else min(b, duration)) for a, b in spans]
        targets = sorted({a + t for a, b in spans for t in frame_targets(max(b - a, 0.0), frames)})
        best: dict[float, tuple[float, object]] = {}
        prev, n = None, 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else n / float(stream.average_rate or 25)
                n += 1
                for tg in [tg for tg in targets if tg not in best and t >= tg - 1e-9]:
                    near = (t, frame) if prev is None or abs(t - tg) <= abs(prev[0] - tg) else prev
                    best[tg] = (near[0], to_rgb(near[1].to_image(), str(path)))
                if len(best) == len(targets):
                    break
                prev = (t, frame)
        except (av.error.FFmpegError, OSError, ValueError) as e:
            if n == 0:
                raise MaaError(f"--video {path}: its frames cannot be decoded ({str(e)[:80]})") from None
    if n == 0:
        raise MaaError(f"--video {path}: has a video stream with no frames")
    for tg in targets:  # targets past the last frame: the last frame
        if tg not in best:
            best[tg] = (prev[0], to_rgb(prev[1].to_image(), str(path)))
    digest, out = sha256_file(path), []
    for a, b in spans:
        chosen = [best[a + t] for t in frame_targets(max(b - a, 0.0), frames)]
        out.append(VisualInput(str(path.resolve()), "video", digest, [im for _, im in chosen],
                               [t for t, _ in chosen], duration))
    return out
