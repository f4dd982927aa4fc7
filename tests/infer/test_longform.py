import numpy as np
import pytest
import torch

from maa.core.audio import frames_for_duration, samples_for_frames
from maa.infer import sampling
from maa.infer.longform import generate_long, window_starts, windows_for
from maa.infer.pipeline import GenerateOptions, load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("total, window, overlap", [(100, 30, 8), (31, 30, 8), (30, 30, 8), (10, 30, 8), (78 * 12, 78, 16)])
def test_window_starts_cover_the_clip_with_at_least_the_overlap(total, window, overlap):
    s = window_starts(total, window, overlap)
    assert s[0] == 0 and (s[-1] + window == total or total <= window)
    assert all(b - a <= window - overlap for a, b in zip(s, s[1:]))  # every join holds >= overlap frames
    assert all(b > a for a, b in zip(s, s[1:]))


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=4)


OPTS = GenerateOptions(steps=3, guidance=2.0)


def test_one_window_is_ordinary_generation(model):
    long = generate_long(model, "rain falls", 0.9, OPTS, seed=4)
    ref = model(["rain falls"], [4], opts=GenerateOptions(steps=3, guidance=2.0, duration=0.9, batch_size=1))[0]
    assert long.joins == [] and len(long.windows) == 1
    np.testing.assert_allclose(long.mel, ref.mel, atol=1e-4)
    np.testing.assert_allclose(long.audio, ref.audio, atol=1e-4)


def test_windows_continue_the_previous_latent_and_the_unet_sees_one_window(model, monkeypatch):
    calls, widths = [], []
    real = sampling.sample

    def spy(model_, conditions, noise, opts, known=None, on_step=None, seed=0):
        z = real(model_, conditions, noise, opts, known, on_step, seed)
        calls.append((known and known.latent, known and known.keep, z))
        return z

    monkeypatch.setattr(sampling, "sample", spy)
    hook = model.unet.register_forward_pre_hook(lambda m, args: widths.append(args[0].shape[-1]))
    progress = []
    try:
        long = generate_long(model, lambda t0, t1: "rain" if t0 < 1.5 else "wind", 3.3, OPTS, seed=1,
                             window=1.0, overlap=0.4, on_window=lambda k, n: progress.append((k, n)))
    finally:
        hook.remove()
    n = windows_for(3.3, window=1.0, overlap=0.4)
    frames = frames_for_duration(3.3)
    assert len(long.audio) == samples_for_frames(frames) and long.mel.shape == (80, frames)
    assert progress == [(k, n) for k in range(n)] and len(calls) == n == len(long.windows) == len(long.joins) + 1
    assert set(widths) == {8}  # 1 s = 8 latent frames, whatever the duration: memory flat in it
    assert long.windows[0][0] == 0 and long.windows[-1][1] > frames / 62.5  # sampled past the end, then cut
    assert long.prompts[0] == "rain" and long.prompts[-1] == "wind"
    for (_, _, prev), (known, keep, z), (s0, _), (s1, _) in zip(calls, calls[1:], long.windows, long.windows[1:]):
        shift = round((s1 - s0) / 0.128)
        held = int((keep == 1).sum())
        assert held >= 1 and torch.equal(known[..., :held], prev[..., shift:shift + held])
        assert shift + held < prev.shape[-1] - 1  # held from the previous window's inside, not its last frames
        assert torch.equal(z[..., :held], prev[..., shift:shift + held])  # the overlap comes back as it was
        assert not torch.allclose(z[..., -2:], prev[..., -2:])
    for j, (a, b) in zip(long.joins, zip(long.windows[1:], long.windows)):
        assert a[0] < j < b[1]  # each crossfade lies in its overlap
    assert np.abs(long.audio).max() > 0 and np.isfinite(long.audio).all()
