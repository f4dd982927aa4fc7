"""Pictures and videos read for prompting (maa.data.visual): modes converted by meaning, videos
sampled uniformly, bad files refused in one line."""

import numpy as np
import pytest
from PIL import Image

from maa.core.errors import MaaError
from maa.data.visual import read_image, read_video
from tests.visual_media import bad_images, make_video


def _px(path, xy=(0, 0)):
    return read_image(path).frames[0].getpixel(xy)


def test_modes_converted_by_meaning(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # transparent red: the colour underneath must not show
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    rgba.putpixel((2, 2), (0, 0, 0, 128))
    rgba.save(tmp_path / "a.png")
    assert _px(tmp_path / "a.png") == (255, 255, 255)  # composited onto white
    assert _px(tmp_path / "a.png", (1, 1)) == (0, 0, 255)
    assert _px(tmp_path / "a.png", (2, 2)) == (127, 127, 127)
    Image.new("L", (4, 4), 77).save(tmp_path / "g.png")
    assert _px(tmp_path / "g.png") == (77, 77, 77)
    # 16-bit greyscale: scaled, not clipped (65535 -> 255, 32896 -> 128, 300 -> 1)
    Image.fromarray(np.array([[65535, 32896, 300]], np.uint16)).save(tmp_path / "g16.png")
    im = read_image(tmp_path / "g16.png").frames[0]
    assert [im.getpixel((x, 0)) for x in range(3)] == [(255,) * 3, (128,) * 3, (1,) * 3]
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    r, g, b = _px(tmp_path / "c.jpg")
    assert r > 200 and g < 60 and b < 60  # cyan-free, full magenta and yellow: red
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png", transparency=1)
    assert _px(tmp_path / "p.png") == (255, 255, 255)
    rec = read_image(tmp_path / "g.png").record()
    assert rec["kind"] == "image" and len(rec["sha256"]) == 64 and rec["path"].endswith("g.png")


def test_video_frames_uniform_and_recorded(tmp_path):
    v = read_video(make_video(tmp_path / "v.mp4", frames=6, fps=4), frames=3)
    assert v.duration == pytest.approx(1.5) and v.times == [0.25, 0.75, 1.25]  # nearest to 0.25, 0.75, 1.25
    assert len(v.frames) == 3 and v.frames[0].size == (64, 48) and v.frames[0].mode == "RGB"
    assert v.frames[0].getpixel((40, 20)) != v.frames[2].getpixel((40, 20))
    assert v.record()["frame_times"] == [0.25, 0.75, 1.25]


@pytest.mark.parametrize("case, message", [
    ("not_image", "not an image Pillow can read"),
    ("huge", "400000000 pixels is more than the 40 MP"),
    ("truncated", "truncated or corrupt image data"),
    ("animated", "an animated image with 3 frames; refused"),
])
def test_bad_images_one_line(tmp_path, case, message):
    path = bad_images(tmp_path)[case]
    with pytest.raises(MaaError, match=message) as e:
        read_image(path)
    assert str(e.value).startswith(f"--image {path}:") and "\n" not in str(e.value)


def test_bad_videos_one_line(tmp_path):
    with pytest.raises(MaaError, match="has no video stream"):
        read_video(make_video(tmp_path / "a.m4a", video=False, audio=True))
    with pytest.raises(MaaError, match="has a video stream with no frames"):
        read_video(make_video(tmp_path / "z.avi", frames=0))
    (tmp_path / "x.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(MaaError, match="not a video FFmpeg can read"):
        read_video(tmp_path / "x.mp4")
