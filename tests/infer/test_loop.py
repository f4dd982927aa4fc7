"""--loop (maa.infer.loop): the wrap of a looped clip, its record and replay, and its refusals."""

import numpy as np
import pytest
import soundfile as sf
import torch
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.audio import frames_for_duration
from maa.core.errors import MaaError
from maa.infer.loop import circular, wrap_pad
from maa.infer.loop_figures import crossfade_loop, wrap_figures
from maa.infer.options import read_record
from maa.infer.pipeline import GenerateOptions, load_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def test_wrap_pad_pastes_the_other_end_on_each_side():
    x = torch.arange(5.0).view(1, 5)
    assert wrap_pad(x, 2).tolist() == [[3, 4, 0, 1, 2, 3, 4, 0, 1]]
    assert wrap_pad(torch.arange(2.0), 3).tolist() == [1, 0, 1, 0, 1, 0, 1, 0]  # shorter than the pad: wraps again


def test_circular_denoiser_is_equivariant_to_rolling_the_latent():
    """On a circle there is no first frame: rolling the input rolls the prediction (a denoiser that
    sees its neighbours, like a convolution with zero padding, would not be)."""
    conv = torch.nn.Conv1d(1, 1, 5, padding=2)
    eps = circular(lambda x, t: conv(x), width=12, pad=4)
    x = torch.randn(1, 1, 12)
    with torch.no_grad():
        np.testing.assert_allclose(torch.roll(eps(x, 0), 5, -1), eps(torch.roll(x, 5, -1), 0), atol=1e-6)
        assert not torch.allclose(torch.roll(conv(x), 5, -1), conv(torch.roll(x, 5, -1)), atol=1e-3)


def test_crossfade_loop_joins_end_to_start():
    x = np.linspace(-1, 1, 32000, dtype=np.float32)
    y = crossfade_loop(x, fade=0.5)
    assert len(y) == 32000 - 8000
    assert y[0] == pytest.approx(x[-8000], abs=1e-6) and y[-1] == pytest.approx(x[-8001], abs=1e-6)  # the wrap: neighbours
    assert y[8000] == pytest.approx(x[8000], abs=1e-6)  # after the fade: the clip itself


@pytest.fixture(scope="module")
def pipe(model_dir):
    return load_pipeline(model_dir, device="cpu", gl_iters=4)


def test_looped_clip_has_no_seam_at_the_wrap(pipe):
    o = pipe(["rain falls"], seed=3, steps=3, duration=3.0, loop=True, scorer=False)[0]
    frames = frames_for_duration(3.0)
    assert len(o.audio) == frames * 256 and o.mel.shape == (80, frames)  # exactly one period
    assert o.record["loop"] is True and "parts" not in o.record and o.record["duration"] == len(o.audio) / 16000
    f = wrap_figures(o.audio)
    assert f["flux_ratio"] <= 1.1, f  # the wrap is no more abrupt than the clip itself
    assert f["level_step_db"] <= f["inside_level_step_db_p90"], f
    plain = pipe(["rain falls"], seed=3, steps=3, duration=3.0, scorer=False)[0]
    assert "loop" not in plain.record  # recorded only when used: older records still match
    assert wrap_figures(plain.audio)["flux_ratio"] > f["flux_ratio"]  # the same clip, not looped: a seam


def test_loop_is_one_part_and_refuses_what_it_cannot_loop(pipe):
    o = pipe(["a door slams, then a bell rings"], seed=0, steps=2, duration=2.0, loop=True, scorer=False)[0]
    assert "parts" not in o.record
    with pytest.raises(MaaError, match=r"^--loop with --duration 20: a loop is one window, at most 10 s"):
        GenerateOptions(loop=True, duration=20.0).check()
    with pytest.raises(MaaError, match=r"^--loop with --inpaint or --timeline"):
        GenerateOptions(loop=True, duration=4.0, timeline=[{"start": 0, "end": 2, "prompt": "rain"}]).check()


def test_loop_record_and_replay_round_trip(tmp_path, model_dir):
    run = lambda *a: CliRunner().invoke(app, [str(x) for x in a])
    r = run("generate", "an engine idles", "--model", model_dir, "-d", "2", "--steps", "2", "--loop", "--png",
            "--gl-iters", "4", "-o", tmp_path / "loop.wav", "-q", "--manifest", tmp_path / "m.jsonl")
    assert r.exit_code == 0, r.output
    rec = read_record(tmp_path / "loop.wav")
    assert rec["loop"] is True
    assert (tmp_path / "loop.png").exists()
    r = run("generate", "--replay", tmp_path / "loop.wav", "-o", tmp_path / "again.wav", "-q", "--manifest", tmp_path / "m2.jsonl")
    assert r.exit_code == 0, r.output
    a, _ = sf.read(tmp_path / "loop.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "again.wav", dtype="int16")
    assert len(a) == frames_for_duration(2.0) * 256 and np.array_equal(a, b)
    assert read_record(tmp_path / "again.wav")["loop"] is True
