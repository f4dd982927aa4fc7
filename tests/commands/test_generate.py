"""`maa generate` from the command line (the library behind it: tests/infer/test_pipeline.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_cli_order_words_give_parts_in_the_record(tmp_path, model_dir):
    r = _run("a bell rings, then a dog barks", "-o", tmp_path / "s.wav", "--model", model_dir, "-d", 1, "--steps", 2, "-q")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parts"] == ["a bell rings", "a dog barks"]
    r = _run("a bell rings, then a dog barks", "-o", tmp_path / "s.wav", "--model", model_dir, "-d", 1, "--steps", 2,
             "-q", "--no-compose", "--overwrite")
    assert r.exit_code == 0 and "parts" not in json.loads(r.stdout)
