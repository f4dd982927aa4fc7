import json

import numpy as np
import pytest
import soundfile as sf
import torch
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.mel import frames_for_duration, samples_for_frames, seconds_for_frames
from maa.infer.pipeline import (
    GenerateOptions,
    _layout,
    generate,
    load_model,
    sampler_calls,
)
from maa.infer.temporal import part_span
from tests.conftest import real_ish
from tests.ldm_fixtures import make_model_dir

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=4)


def _run(*args, input=None):
    return CliRunner().invoke(app, ["generate", *[str(a) for a in args]], input=input)


def test_cli_writes_a_16k_wav_of_the_requested_duration(tmp_path, model_dir):
    r = _run("a dog barks", "-o", tmp_path / "dog.wav", "--model", model_dir, "--duration", 1.5, "--steps", 4,
             "--png", "-q")
    assert r.exit_code == 0, r.output
    info = sf.info(str(tmp_path / "dog.wav"))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    row = json.loads(r.stdout)
    frames = 96  # 1.5 s = 92.75 frames -> 12 latent frames
    assert row["frames"] == frames and info.frames == (frames + 1) * 256 and row["duration"] == 1.552
    assert "rounded to 96 mel frames = 1.552 s" in r.stderr
    assert row["seed"] == 0 and row["sampler"] == "dpm++" and row["steps"] == 4 and row["vocoder"] == "griffin-lim"
    assert (tmp_path / "dog.png").stat().st_size > 1000


def test_same_seed_same_audio_and_batches_do_not_matter(model):
    opts = GenerateOptions(steps=3, duration=0.5, batch_size=2)
    a = generate(model, ["a dog barks", "rain"], [7, 8], opts)
    b = generate(model, ["a dog barks", "rain"], [7, 8], opts)
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    single = generate(model, ["rain"], [8], GenerateOptions(steps=3, duration=0.5, batch_size=1))
    assert torch.allclose(single[0].latent, a[1].latent, atol=1e-4)
    other = generate(model, ["rain"], [9], opts)
    assert not torch.allclose(other[0].latent, a[1].latent)


def test_every_sampler_runs_and_counts_steps(model):
    for sampler in ("ddim", "plms", "dpm++"):
        n = []
        out = generate(model, ["a bell"], [0], GenerateOptions(steps=5, sampler=sampler, duration=0.3),
                       on_step=lambda: n.append(1))
        assert len(n) == 5 and np.isfinite(out[0].audio).all() and out[0].mel.shape == (80, 16)


def test_negative_prompt_and_guidance_one(model):
    base = GenerateOptions(steps=3, duration=0.3)
    plain = generate(model, ["a dog barks"], [1], base)[0].latent
    neg = generate(model, ["a dog barks"], [1], GenerateOptions(steps=3, duration=0.3, negative="loud noise"))[0].latent
    assert not torch.allclose(plain, neg, atol=1e-6)
    # guidance 1 is the conditional prediction alone: the negative prompt then plays no part
    g1 = generate(model, ["a dog barks"], [1], GenerateOptions(steps=3, duration=0.3, guidance=1.0))[0].latent
    g1n = generate(model, ["a dog barks"], [1], GenerateOptions(steps=3, duration=0.3, guidance=1.0, negative="x"))[0]
    assert torch.equal(g1, g1n.latent)


def test_audio_to_audio_strength(model):
    x = real_ish(0.6)
    n0 = []
    out0 = generate(model, ["a bell"], [0], GenerateOptions(steps=10, duration=0.6, init_audio=x, strength=0.0),
                    on_step=lambda: n0.append(1))[0]
    assert len(out0.audio) == (32 + 1) * 256  # 0.6 s -> 36 frames -> 32 (4 latent frames)
    assert n0 == [] and np.array_equal(out0.audio, x[: len(out0.audio)])
    n3 = []
    out3 = generate(model, ["a bell"], [0], GenerateOptions(steps=10, duration=0.6, init_audio=x, strength=0.3),
                    on_step=lambda: n3.append(1))[0]
    assert len(n3) == 3 and not np.allclose(out3.audio, x[: len(out3.audio)], atol=1e-2)


def test_split_prompt_audio_to_audio_takes_the_init_under_each_part(model):
    x = real_ish(1.5)  # longer than the 1 s clip, so no part is padded
    opts = GenerateOptions(steps=10, duration=1.0, init_audio=x, strength=0.0)
    out = generate(model, ["a bell, then a dog"], [0], opts)[0]
    n = samples_for_frames(frames_for_duration(1.0))
    assert out.parts == ["a bell", "a dog"] and np.array_equal(out.audio, x[:n])  # strength 0 keeps the input
    _, jobs, (ov,) = _layout(["a bell, then a dog"], [0], opts, model.vae.factor)
    start = part_span(1, 2, n, ov)[0]
    assert np.array_equal(jobs[0].init, x[:len(jobs[0].init)]) and np.array_equal(jobs[1].init, x[start:start + len(jobs[1].init)])
    edited = generate(model, ["a bell, then a dog"], [0], GenerateOptions(steps=10, duration=1.0, init_audio=x, strength=0.3))[0]
    assert edited.audio.shape == (n,) and not np.allclose(edited.audio, x[:n], atol=1e-2)


def test_progress_total_counts_every_part(model):
    prompts = ["a bell", "a bell, then a dog", "rain"]
    opts = GenerateOptions(steps=3, duration=0.6, batch_size=2)
    calls = []
    generate(model, prompts, [0, 1, 2], opts, on_step=lambda: calls.append(1))
    # one batch of the two whole prompts, one of the two parts (shorter clips): 2 x 3 steps
    assert len(calls) == sampler_calls(opts, prompts, model.vae.factor) == 6


def test_cli_strength_zero_returns_the_input(tmp_path, model_dir):
    from maa.core.audio import save_wav

    x = real_ish(1.0)
    save_wav(tmp_path / "in.wav", x)
    r = _run("a bell", "-o", tmp_path / "o.wav", "--model", model_dir, "--duration", 1.0, "--init-audio",
             tmp_path / "in.wav", "--strength", 0, "-q")
    assert r.exit_code == 0, r.output
    y, sr = sf.read(str(tmp_path / "o.wav"), dtype="float32")
    assert sr == 16000 and np.abs(y[:16000] - np.clip(x, -1, 1)).max() < 1e-4  # 16-bit rounding only
    assert json.loads(r.stdout)["strength"] == 0.0


def test_prompt_files_candidates_and_manifest(tmp_path, model_dir):
    (tmp_path / "p.txt").write_text("# comment\nbark|a dog barks\n\nrain falls on a roof\n"
                                    '{"id": "bell", "prompt": "a bell rings", "seed": 42}\n')
    r = _run("--prompts", tmp_path / "p.txt", "--out-dir", tmp_path / "out", "--model", model_dir, "--duration", 0.3,
             "--steps", 2, "-n", 2, "--seed", 10, "--manifest", tmp_path / "gen.jsonl", "-q")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and "keeping the first candidate" in r.stderr
    rows = [json.loads(l) for l in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["bark.wav", "0001_rain_falls_on_a_roof.wav", "bell.wav"]
    assert [r["seed"] for r in rows] == [10, 12, 42]  # prompt i, candidate 0: seed + i * K
    assert all(Path(r["path"]).exists() and r["candidates"] == 2 for r in rows)


def test_bundled_model_generates_offline(tmp_path):
    """The design card's one-liner: no --model, the bundled weights, a valid 16 kHz wav."""
    r = _run("dog barking", "-o", tmp_path / "out.wav", "--duration", 2, "--steps", 5, "-q")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["vocoder"] == "vocos" and row["model"].endswith("assets/model")
    wav, sr = sf.read(tmp_path / "out.wav")
    # 2 s is rounded to whole latent frames (8 mel frames = 128 ms): the row states the length used
    assert sr == 16000 and abs(row["duration"] - 2) < 0.13 and len(wav) == round(row["duration"] * 16000)
    assert 0.01 < np.abs(wav).max() <= 1.0


def test_cli_errors_and_warnings(tmp_path, model_dir, monkeypatch):
    import maa.infer.pipeline

    monkeypatch.setattr(maa.infer.pipeline, "BUNDLED_MODEL", tmp_path / "not-installed")
    r = _run("   ", "-o", tmp_path / "x.wav", "--model", model_dir)
    assert r.exit_code == 1 and "empty prompt" in r.output
    r = _run("a dog", "-o", tmp_path / "x.wav")
    assert r.exit_code == 1 and "no bundled model yet; train one with" in r.output
    r = _run("a dog", "-o", tmp_path / "x.wav", "--model", model_dir, "--sampler", "euler")
    assert r.exit_code == 1 and "--sampler" in r.output
    r = _run("dog " * 100, "-o", tmp_path / "long.wav", "--model", model_dir, "--duration", 0.3, "--steps", 1, "-q")
    assert r.exit_code == 0 and "longer than 77 tokens" in r.stderr


def test_wav_to_stdout(model_dir):
    import io

    r = _run("a dog", "-o", "-", "--model", model_dir, "--duration", 0.3, "--steps", 1, "-q")
    assert r.exit_code == 0
    y, sr = sf.read(io.BytesIO(r.stdout_bytes))
    assert sr == 16000 and len(y) == 17 * 256


from pathlib import Path  # noqa: E402


def test_order_words_split_the_prompt_over_time(tmp_path, model, model_dir):
    opts = GenerateOptions(steps=4, duration=1.0)
    ab, ba, mixed = generate(model, ["a bell rings, then a dog barks", "a dog barks before a bell rings",
                                     "a bell rings, then a dog barks"], [3, 3, 3], opts)
    assert ab.parts == ["a bell rings", "a dog barks"] and ba.parts == ["a dog barks", "a bell rings"]
    n = samples_for_frames(frames_for_duration(1.0))
    assert ab.audio.shape == (n,) and ab.mel.shape == (80, frames_for_duration(1.0)) and np.isfinite(ab.audio).all()
    assert not np.allclose(ab.audio, ba.audio, atol=1e-3)
    np.testing.assert_allclose(ab.audio, mixed.audio, atol=1e-5)  # deterministic, whatever else is in the batch
    # in a batch with one-part prompts the split prompt still gets its parts; those get none
    one, split = generate(model, ["a bell rings", "a bell rings, then a dog barks"], [3, 3], opts)
    assert one.parts is None and np.allclose(split.audio, ab.audio, atol=1e-5)
    plain = generate(model, ["a bell rings, then a dog barks"], [3], GenerateOptions(steps=4, duration=1.0, compose=False))[0]
    assert plain.parts is None and not np.allclose(plain.audio, ab.audio, atol=1e-3)
    # each part is a clip of its own: its text, its seed, its share of the time plus the crossfade
    _, jobs, (ov,) = _layout(["a bell rings, then a dog barks"], [3], opts, model.vae.factor)
    f = jobs[0].frames
    assert f < frames_for_duration(1.0) and samples_for_frames(f) >= n // 2 + ov // 2
    part_opts = GenerateOptions(steps=4, duration=seconds_for_frames(f))
    bell, dog = generate(model, ["a bell rings", "a dog barks"], [3, 3 + 1_000_003], part_opts)
    assert torch.allclose(ab.latent, torch.cat([bell.latent, dog.latent], dim=-1), atol=1e-4)
    start, end = part_span(1, 2, n, ov)
    np.testing.assert_allclose(ab.audio[:start], bell.audio[:start], atol=1e-5)  # before the crossfade: A alone
    np.testing.assert_allclose(ab.audio[part_span(0, 2, n, ov)[1]:], dog.audio[part_span(0, 2, n, ov)[1] - start:end - start],
                               atol=1e-5)  # after it: B alone, from its own start
    r = _run("a bell rings, then a dog barks", "-o", tmp_path / "s.wav", "--model", model_dir, "-d", 1, "--steps", 2, "-q")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parts"] == ["a bell rings", "a dog barks"]
    r = _run("a bell rings, then a dog barks", "-o", tmp_path / "s.wav", "--model", model_dir, "-d", 1, "--steps", 2,
             "-q", "--no-compose")
    assert r.exit_code == 0 and "parts" not in json.loads(r.stdout)
