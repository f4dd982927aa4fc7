"""Tiny pictures and videos made on the spot (PyAV encodes the videos): no downloads."""

from pathlib import Path

import numpy as np


def make_video(path: Path, frames: int = 6, size: tuple[int, int] = (64, 48), fps: int = 4,
               video: bool = True, audio: bool = False) -> Path:
    """An MPEG-4 clip of `frames` frames, each a different flat colour with a moving bar; an
    audio-only file with video=False."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        aus = out.add_stream("aac", rate=16000) if audio else None
        if vs is not None and frames == 0:
            out.start_encoding()  # the header lists the stream; no frame follows (use an .avi path)
        if vs is not None:
            for i in range(frames):
                img = np.zeros((size[1], size[0], 3), np.uint8)
                img[:] = (40 * i % 256, 255 - 30 * i % 256, 90)
                img[:, (8 * i) % size[0]: (8 * i) % size[0] + 6] = 255
                for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if aus is not None:
            for k in range(4):
                samples = (0.1 * np.sin(np.arange(1024) * 0.05)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, k * 1024
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height RGB pixels, with no pixel data: what a reader
    must refuse from the header alone."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def bad_images(root: Path) -> dict[str, Path]:
    """One file per bad-image case, and the odd-but-valid modes."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    out = {"not_image": root / "notes.png", "huge": png_header_only(root / "huge.png", 20000, 20000)}
    out["not_image"].write_text("not a picture at all\n")
    Image.new("RGB", (64, 48), (10, 200, 30)).save(root / "full.jpg", quality=90)
    data = (root / "full.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out["truncated"] = root / "truncated.jpg"
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated"] = root / "anim.gif"
    return out
