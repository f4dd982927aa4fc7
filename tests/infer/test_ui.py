"""maa.infer.ui without a browser: upload checks, the out-dir fence, --host/--auth, and a generation
written as `maa generate` writes it (the page itself: tests/infer/test_ui_browser.py, slow)."""

import json

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

import maa.infer.ui as ui
from maa.core.errors import MaaError
from maa.infer.options import read_record
from maa.infer.pipeline import load_pipeline
from maa.infer.ui import Studio, check_host, check_upload, model_choices, parse_spans

pytestmark = pytest.mark.usefixtures("one_thread")


def test_uploads_are_checked_before_anything_is_written(tmp_path, monkeypatch):
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(MaaError, match=r"^notes.wav: not a readable audio file; upload a wav, flac, ogg or mp3$"):
        check_upload(tmp_path / "notes.wav")
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 61, np.float32), 16000)
    with pytest.raises(MaaError, match=r"^long.wav: 61.0 s is longer than the limit of 60 s; cut it first$"):
        check_upload(tmp_path / "long.wav")
    sf.write(tmp_path / "phone.wav", np.zeros(8000, np.float32), 8000)
    with pytest.raises(MaaError, match=r"^phone.wav: sample rate 8000 Hz is below the model's 16000 Hz"):
        check_upload(tmp_path / "phone.wav")
    sf.write(tmp_path / "ok.wav", 0.1 * np.ones(44100, np.float32), 44100)
    assert check_upload(tmp_path / "ok.wav").shape == (16000,)  # resampled to 16 kHz
    monkeypatch.setattr(ui, "MAX_UPLOAD_BYTES", 2**16)
    with pytest.raises(MaaError, match=r"^ok.wav: 0.1 MB is over the upload limit of 0.0625 MB$"):
        check_upload(tmp_path / "ok.wav")


def test_only_files_under_the_out_dir_are_handed_out(tmp_path):
    s = Studio(tmp_path / "out", loader=lambda m, d: None)
    (tmp_path / "secret.wav").write_bytes(b"x")
    (tmp_path / "out" / "mine.wav").write_bytes(b"x")
    assert s.resolve("mine.wav") == (tmp_path / "out" / "mine.wav").resolve()
    for bad in ["../secret.wav", str(tmp_path / "secret.wav"), "/etc/passwd", "sub/../../secret.wav"]:
        with pytest.raises(MaaError, match="not a file under the output folder"):
            s.resolve(bad)
    (tmp_path / "out" / "link.wav").symlink_to(tmp_path / "secret.wav")
    with pytest.raises(MaaError, match="not a file under the output folder"):
        s.resolve("link.wav")


def test_serving_beyond_localhost_needs_auth():
    assert check_host("127.0.0.1", None) is None
    assert check_host("0.0.0.0", "me:pw") == ("me", "pw")
    with pytest.raises(MaaError, match=r"^--host 0.0.0.0: serving beyond this machine needs --auth user:password$"):
        check_host("0.0.0.0", None)
    with pytest.raises(MaaError, match=r"^--auth: give user:password$"):
        check_host("127.0.0.1", "nopassword")
    r = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0"])
    assert r.exit_code != 0 and "error: --host 0.0.0.0: serving beyond this machine needs --auth" in r.output


def test_spans_and_model_choices(tmp_path):
    assert parse_spans("2-3.5, 6-7") == [(2.0, 3.5), (6.0, 7.0)] and parse_spans(" ") is None
    (tmp_path / "a" / "ldm").mkdir(parents=True)
    (tmp_path / "a" / "ldm" / "config.json").write_text("{}")
    (tmp_path / "not-a-model").mkdir()
    assert model_choices(tmp_path) == ["bundled", str(tmp_path / "a")]


def test_candidates_are_written_as_generate_writes_them_and_replay(tmp_path, model_dir):
    s = Studio(tmp_path / "out", model=str(model_dir), device="cpu",
               loader=lambda m, d: load_pipeline(m, device=d, gl_iters=4))
    steps = []
    res = s.generate("rain falls", duration=1.0, steps=2, candidates=2, seed=5, loop=True,
                     on_step=lambda i, n: steps.append((i, n)))
    assert steps[-1] == (2, 2)  # one batch of two clips, two sampler steps
    assert sorted(r.record["seed"] for r in res) == [5, 6]
    for r in res:
        rec = read_record(r.wav)
        assert rec == r.record and rec["loop"] is True and r.png.exists()
    rows = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [x["path"] for x in rows] == [str(r.wav) for r in sorted(res, key=lambda r: r.record["seed"])]
    assert {h["file"] for h in s.history()} == {r.wav.name for r in res}
    again = s.replay(res[0].wav.name)
    a, _ = sf.read(res[0].wav, dtype="int16")
    b, _ = sf.read(again.wav, dtype="int16")
    assert np.array_equal(a, b) and again.record["replay_of"] == res[0].wav.name
    n = len(list((tmp_path / "out").glob("*.wav")))
    with pytest.raises(MaaError, match="inpaint spans: upload the clip"):
        s.generate("rain", duration=1.0, steps=2, inpaint="0.2-0.5")
    assert len(list((tmp_path / "out").glob("*.wav"))) == n  # refused: nothing written
