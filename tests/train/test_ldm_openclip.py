"""`maa train-ldm --text-encoder openclip:...`: trained on captions (one normalised CLIP token,
cached like any text), the model then generates from a picture, a video and a picture + text."""

import json
import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from maa.commands.cli import app
from tests.ldm_fixtures import TINY_OPENCLIP, write_clips
from tests.visual_media import make_video

pytest.importorskip("open_clip")
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def test_train_on_captions_then_generate_from_pictures(tmp_path, model_dir, monkeypatch):
    from maa.train.text_cache import load_text_cache

    manifest = write_clips(tmp_path / "clips", n=4)
    monkeypatch.chdir(TINY_OPENCLIP.parent)  # a relative config path, made absolute in the model's config
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train-ldm", str(manifest), "--vae", str(model_dir / "vae"), "-o", str(run),
                                 "--preset", "tiny", "--steps", "3", "-b", "2", "--duration", "0.5", "--val-fraction",
                                 "0", "--text-encoder", f"openclip:{TINY_OPENCLIP.name}/random", "-q"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "ldm" / "config.json").read_text())
    assert cfg["text_encoder"] == f"openclip:{TINY_OPENCLIP}/random" and cfg["unet"]["context_dim"] == 128
    table = load_text_cache(next((run / "cache").glob("text*.safetensors")), cfg["text_encoder"])
    assert {"a soft bell rings", ""} <= set(table) and all(t.shape == (1, 128) for t in table.values())

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (50, 70), (30, 160, 60)).save("leaf.png")
    make_video(tmp_path / "clip.mp4", frames=5)
    common = ["--model", str(run), "-d", "0.5", "--steps", "2", "-q"]
    for args in (["--image", "leaf.png"], ["--video", "clip.mp4"], ["a soft bell rings", "--image", "leaf.png"]):
        out = f"{len(os.listdir(tmp_path))}.wav"
        r = CliRunner().invoke(app, ["generate", *args, "-o", out, *common])
        assert r.exit_code == 0, r.output
        row = json.loads(r.stdout)
        assert row["visual"]["inputs"][0]["sha256"] and (tmp_path / out).stat().st_size > 1000
