"""Pictures and videos as prompts through `maa generate` (maa.infer.visual), on a tiny model whose
condition is the tiny OpenCLIP (random weights built locally)."""

import json
import shutil

import pytest
import torch
from maa.commands.cli import app
from PIL import Image
from typer.testing import CliRunner

from tests.ldm_fixtures import TINY_OPENCLIP, make_model_dir
from tests.visual_media import make_video

pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")
GEN = ["--steps", "2", "-d", "0.5", "-q"]


@pytest.fixture(scope="module")
def vis(tmp_path_factory):
    root = tmp_path_factory.mktemp("visual")
    make_model_dir(root / "model", text_encoder=f"openclip:{TINY_OPENCLIP}/random")
    Image.new("RGB", (80, 60), (200, 40, 40)).save(root / "red.png")
    Image.new("RGB", (60, 80), (20, 40, 220)).save(root / "blue.jpg")
    make_video(root / "clip.mp4", frames=6)
    return root


def _run(*args):
    return CliRunner().invoke(app, ["generate", *map(str, args)])


def test_image_video_and_mix_recorded_and_replayed(vis, tmp_path):
    from maa.infer.options import read_record

    r = _run("--image", vis / "red.png", "-o", tmp_path / "red.wav", "--model", vis / "model", *GEN)
    assert r.exit_code == 0, r.output
    rec = read_record(tmp_path / "red.wav")
    assert rec["prompt"].startswith("<image:") and rec["text_encoder"].startswith("openclip:")
    (inp,) = rec["visual"]["inputs"]
    assert inp["kind"] == "image" and inp["path"] == str((vis / "red.png").resolve()) and len(inp["sha256"]) == 64

    r = _run("--video", vis / "clip.mp4", "--video-frames", 3, "-o", tmp_path / "v.wav", "--model", vis / "model", *GEN)
    assert r.exit_code == 0, r.output
    v = read_record(tmp_path / "v.wav")["visual"]
    assert v["inputs"][0]["kind"] == "video" and v["inputs"][0]["frame_times"] == [0.25, 0.75, 1.25] and v["frames"] == 3

    r = _run("heavy rain", "--image", vis / "red.png", "--image-weight", 0.7, "-o", tmp_path / "mix.wav",
             "--model", vis / "model", *GEN)
    assert r.exit_code == 0, r.output
    mix = read_record(tmp_path / "mix.wav")
    assert mix["visual"]["text"] == "heavy rain" and mix["visual"]["image_weight"] == 0.7
    assert mix["prompt"].startswith("<image+text:") and mix["prompt"] != rec["prompt"]

    for name in ("red", "v", "mix"):  # --replay rebuilds the condition from the files: the same bytes
        r = CliRunner().invoke(app, ["generate", "--replay", str(tmp_path / f"{name}.wav"), "-o",
                                     str(tmp_path / f"{name}2.wav"), "-q"])
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"{name}2.wav").read_bytes() == (tmp_path / f"{name}.wav").read_bytes(), name


@pytest.mark.slow  # CLI runs of a few seconds: CI's slow run
def test_replay_refuses_a_changed_picture(vis, tmp_path):
    shutil.copy(vis / "red.png", tmp_path / "pic.png")
    assert _run("--image", tmp_path / "pic.png", "-o", tmp_path / "a.wav", "--model", vis / "model", *GEN).exit_code == 0
    Image.new("RGB", (80, 60), (0, 200, 0)).save(tmp_path / "pic.png")
    r = CliRunner().invoke(app, ["generate", "--replay", str(tmp_path / "a.wav"), "-o", str(tmp_path / "b.wav"), "-q"])
    assert r.exit_code == 1 and "not the image this output was made from" in r.output
    assert not (tmp_path / "b.wav").exists()


@pytest.mark.slow  # CLI runs of a few seconds: CI's slow run
def test_several_images_and_a_prompts_file(vis, tmp_path):
    r = _run("--image", vis / "red.png", "--image", vis / "blue.jpg", "--out-dir", tmp_path / "o", "--model",
             vis / "model", *GEN)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["red", "blue"] and rows[0]["prompt"] != rows[1]["prompt"]
    (vis / "p.jsonl").write_text('{"id": "one", "image": "red.png"}\n'
                                 '{"id": "two", "video": "clip.mp4", "prompt": "wind", "seed": 5}\n')
    r = _run("--prompts", vis / "p.jsonl", "--out-dir", tmp_path / "p", "--model", vis / "model", *GEN)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["one", "two"] and rows[1]["seed"] == 5
    assert rows[0]["prompt"] == json.loads(_run("--image", vis / "red.png", "-o", tmp_path / "x.wav", "--model",
                                                vis / "model", *GEN).stdout)["prompt"]  # same picture, same key
    assert rows[1]["visual"]["text"] == "wind"


def test_python_pipeline_and_candidates_refused(vis, tmp_path):
    from maa.infer.pipeline import load_pipeline
    from maa.infer.visual import VisualSpec, generate

    pipe = load_pipeline(vis / "model", "cpu")
    (o,) = generate(pipe, [VisualSpec(images=[str(vis / "red.png")], seed=3)], steps=2, duration=0.5)
    assert o.record["seed"] == 3 and o.record["visual"]["inputs"][0]["path"].endswith("red.png")
    assert o.audio.ndim == 1 and len(o.audio) >= 0.5 * 16000 and o.record["duration"] >= 0.5
    r = _run("--image", vis / "red.png", "-n", 2, "-o", tmp_path / "n.wav", "--model", vis / "model", *GEN)
    assert r.exit_code == 1 and "-n 2 with --image/--video" in r.output and not (tmp_path / "n.wav").exists()


@torch.no_grad()
def test_conditions_pooled_and_mixed(vis):
    """A video's condition is the normalised mean of its frames' unit vectors; with text, the
    normalised w-weighted sum; generation sees exactly the registered vector."""
    from maa.data.visual import read_video
    from maa.infer.pipeline import load_pipeline
    from maa.infer.visual import VisualSpec, prepare

    pipe = load_pipeline(vis / "model", "cpu")
    (key, mixed), recs = prepare(pipe, [VisualSpec(video=str(vis / "clip.mp4"), frames=3),
                                        VisualSpec(images=[str(vis / "red.png")], text="rain", weight=0.25)])
    frames = pipe.text.encode_images(read_video(vis / "clip.mp4", 3).frames)
    want = frames.mean(0) / frames.mean(0).norm()
    assert torch.allclose(pipe.text.encode([key]).tokens[0, 0], want, atol=1e-6)
    img = pipe.text.encode_images([Image.open(vis / "red.png").convert("RGB")])[0]
    txt = pipe.text.encode(["rain"]).pooled[0]
    mix = 0.25 * img + 0.75 * txt
    assert torch.allclose(pipe.text.encode([mixed]).tokens[0, 0], mix / mix.norm(), atol=1e-6)
    assert recs[1] == {"inputs": [recs[1]["inputs"][0]], "text": "rain", "image_weight": 0.25}


@pytest.mark.slow  # three 10 s windows: ~10 s on a shared CPU
def test_long_video_each_window_its_own_frames(vis, tmp_path):
    """--duration over one window: the clip in one share per window (at most 4), each pooled
    alone; the record lists every share's frame times and --replay gives the same bytes."""
    from maa.infer.options import read_record

    make_video(tmp_path / "long.mp4", frames=12, fps=4)  # 3 s clip, mapped onto 17 s of sound
    r = _run("--video", tmp_path / "long.mp4", "--video-frames", 2, "-d", 17, "--steps", 1, "-o", tmp_path / "l.wav",
             "--model", vis / "model", "-q")
    assert r.exit_code == 0, r.output
    rec = read_record(tmp_path / "l.wav")
    keys = rec["prompt"].split(", then ")
    assert rec["windows"] == 3 and len(set(rec["window_prompts"])) == 3  # each window its own part
    # the part of window k spans window k's new stretch, mapped from 17 s of sound onto the 3 s clip
    from maa.infer.longform import window_stretches

    shares = rec["visual"]["shares"]
    for prompt, (t0, t1) in zip(rec["window_prompts"], window_stretches(17.0)):
        d = rec["visual"]["duration"]
        assert shares[keys.index(prompt)] == [round(t0 / d, 6), round(min(t1 / d, 1.0), 6)]
    for (a, b), times in zip(shares, rec["visual"]["segments"]):
        assert all(3 * a - 0.25 <= t <= 3 * b + 0.25 for t in times)
    r = CliRunner().invoke(app, ["generate", "--replay", str(tmp_path / "l.wav"), "-o", str(tmp_path / "l2.wav"), "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "l2.wav").read_bytes() == (tmp_path / "l.wav").read_bytes()
