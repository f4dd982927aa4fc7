"""`maa mel` end to end through the CLI, on a folder of mixed and broken files."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.audio import load_audio, mel_spectrogram
from tests.conftest import real_ish

runner = CliRunner()


def messy_folder(root):
    root.mkdir()
    y = real_ish(1.5)
    sf.write(root / "mono16k.wav", y, 16000)
    sf.write(root / "stereo44k.flac", np.stack([y, -y * 0.5], 1)[:, :].repeat(1, 0), 44100)
    sf.write(root / "six48k.ogg", np.stack([y] * 6, 1), 48000, format="OGG")
    sf.write(root / "eight_k.wav", y[::2], 8000)
    sf.write(root / "ninetysix_k.wav", np.repeat(y, 6), 96000)
    sf.write(root / "tiny_10ms.wav", y[:160], 16000)
    sf.write(root / "silence.wav", np.zeros(16000, np.float32), 16000)
    sf.write(root / "song.mp3", y, 16000, format="MP3")
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("hello, I am not a wav\n")
    sf.write(root / "nan.wav", np.array([0.0, np.nan] * 800, np.float32), 16000, subtype="FLOAT")
    sf.write(root / "zero.wav", np.zeros((0, 1), np.float32), 16000)
    return 8, 4  # good, bad


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_mel_on_messy_folder(tmp_path):
    good, bad = messy_folder(tmp_path / "in")
    out = tmp_path / "out"
    r = run("mel", tmp_path / "in", "-o", out, "--duration", "2", "-j", "0", "-q")
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == good
    for row in rows:
        mel = np.load(out / row["mel"])
        assert mel.shape == (80, 2 * 16000 // 256 - 1) == (80, row["frames"]) and mel.dtype == np.float16
    # values equal the front end applied to the decoded audio, padded to 2 s
    m = np.load(out / "mels" / "mono16k.npy").astype(np.float32)
    ref = mel_spectrogram(np.pad(load_audio(tmp_path / "in" / "mono16k.wav"), (0, 32000 - 24000))).numpy()
    assert np.abs(m - ref).max() < 5e-3  # float16 storage
    failed = [json.loads(l) for l in (out / "failed.jsonl").read_text().splitlines()]
    assert sorted(f["id"] for f in failed) == ["empty", "nan", "text", "zero"]
    for f in failed:
        assert f["audio"] in f["reason"] and "\n" not in f["reason"]
    assert "silent" in r.output and "Traceback" not in r.output
    assert "done 8, skipped 0, failed 4" in r.output

    r2 = run("mel", tmp_path / "in", "-o", out, "--duration", "2", "-j", "0", "-q")
    assert "done 0, skipped 8, failed 4" in r2.output
    r3 = run("mel", tmp_path / "in", "-o", out, "--duration", "2", "-j", "0", "-q", "--strict")
    assert r3.exit_code == 1
    r4 = run("mel", tmp_path / "in", "-o", out, "--duration", "3", "-q")
    assert r4.exit_code == 1 and "other settings" in r4.output


def test_full_length_and_workers(tmp_path):
    (tmp_path / "in").mkdir()
    for i, sec in enumerate([0.5, 1.0, 3.0]):
        sf.write(tmp_path / "in" / f"c{i}.wav", real_ish(sec, seed=i), 16000)
    r = run("mel", tmp_path / "in", "-o", tmp_path / "o", "--full", "--dtype", "float32", "-j", "2", "-b", "1", "-q")
    assert r.exit_code == 0, r.output
    frames = {json.loads(l)["id"]: json.loads(l)["frames"] for l in (tmp_path / "o/manifest.jsonl").read_text().splitlines()}
    assert frames == {"c0": 30, "c1": 61, "c2": 186}


def test_stdin_stdout_and_shards(tmp_path):
    (tmp_path / "in").mkdir()
    lines = []
    for i in range(4):
        sf.write(tmp_path / "in" / f"c{i}.wav", real_ish(0.5, seed=i), 16000)
        lines.append(json.dumps({"id": f"c{i}", "audio": str(tmp_path / "in" / f"c{i}.wav"), "caption": "a tone"}))
    stdin = "\n".join(lines) + "\n"
    r = runner.invoke(app, ["mel", "-", "-o", str(tmp_path / "o"), "-d", "1", "-m", "-", "-q", "--shard", "1/2"], input=stdin)
    assert r.exit_code == 0
    out_rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert [x["id"] for x in out_rows] == ["c1", "c3"] and all(x["caption"] == "a tone" for x in out_rows)


def test_nothing_succeeds_exits_nonzero(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.wav").write_text("nope")
    r = run("mel", tmp_path / "in", "-o", tmp_path / "o", "-q")
    assert r.exit_code == 1 and "no clip could be processed" in r.output


def test_manifest_problems_are_listed_and_run_continues(tmp_path):
    sf.write(tmp_path / "a.wav", real_ish(0.5), 16000)
    (tmp_path / "m.jsonl").write_text(
        '{"id": "a", "audio": "a.wav"}\n{broken\n{"id": "a", "audio": "a.wav"}\n{"id": "m", "audio": "missing.wav"}\n'
    )
    r = run("mel", tmp_path / "m.jsonl", "-o", tmp_path / "o", "-q")
    assert r.exit_code == 0
    reasons = (tmp_path / "o" / "failed.jsonl").read_text()
    assert "malformed JSON" in reasons and "duplicate id" in reasons and "file not found" in reasons


def test_hour_long_clip_is_cropped_cheaply(tmp_path):
    p = tmp_path / "in" / "hour.wav"
    p.parent.mkdir()
    with sf.SoundFile(p, "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        for _ in range(60):
            f.write(np.full(8000 * 60, 0.1, np.float32))
    r = run("mel", tmp_path / "in", "-o", tmp_path / "o", "-q")
    assert r.exit_code == 0 and np.load(tmp_path / "o/mels/hour.npy").shape == (80, 624)
    r = run("mel", tmp_path / "in", "-o", tmp_path / "o2", "--full", "-q")
    assert r.exit_code == 1 and "too long to load whole" in r.output


@pytest.mark.parametrize("args,msg", [(["--dtype", "int8"], "--dtype"), (["--shard", "3/2"], "--shard"),
                                      (["--device", "cuda:7"], None)])
def test_bad_options(tmp_path, args, msg):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", real_ish(0.5), 16000)
    r = run("mel", tmp_path / "in", "-o", tmp_path / "o", "-q", *args)
    import torch

    if msg is None and torch.cuda.is_available():
        pytest.skip("has CUDA")
    assert r.exit_code == 1 and (msg or "CUDA is not available") in r.output


def test_rerun_writes_the_same_manifest(tmp_path):
    messy_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert run("mel", tmp_path / "in", "-o", out, "-d", "1", "-j", "0", "-q").exit_code == 0
    first = (out / "manifest.jsonl").read_bytes()
    assert all({"sr", "duration"} <= set(json.loads(l)) for l in first.decode().splitlines())
    (out / "mels" / "song.npy").unlink()  # a half-finished rerun: one clip redone, the rest skipped
    r = run("mel", tmp_path / "in", "-o", out, "-d", "1", "-j", "0", "-q")
    assert r.exit_code == 0 and "done 1, skipped 7" in r.output, r.output
    assert (out / "manifest.jsonl").read_bytes() == first
    assert run("mel", tmp_path / "in", "-o", out, "-d", "1", "-j", "0", "-q").exit_code == 0
    assert (out / "manifest.jsonl").read_bytes() == first


def test_hostile_ids_stay_inside_and_keep_their_id(tmp_path):
    from maa.data.formats import read_manifest
    from maa.data.mel_job import MelJob, compute_mels

    sf.write(tmp_path / "a.wav", real_ish(0.5), 16000)
    ids = ["../../../escaped", str(tmp_path / "abs" / "x"), "a/b", "a\x00b", "x" * 400, "Dog", "dog"]
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": i, "audio": "a.wav"}) + "\n" for i in ids))
    summary = compute_mels(read_manifest(m), MelJob(out_dir=tmp_path / "out" / "o", duration=0.5, workers=0))
    assert summary.done == len(ids) and [r["id"] for r in summary.rows] == ids
    mels = sorted((tmp_path / "out" / "o" / "mels").iterdir())
    assert len(mels) == len(ids) and {p.resolve() for p in mels} == {Path(r["mel"]) for r in summary.rows}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl", "out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["o"]


def test_damaged_settings_file_is_one_line(tmp_path):
    sf.write(tmp_path / "a.wav", real_ish(0.5), 16000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mel_config.json").write_text('{"mel": {"sr"')
    r = run("mel", tmp_path / "a.wav", "-o", tmp_path / "out", "-q")
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "mel_config.json: damaged" in r.output


def test_decoder_warnings_reach_stderr_from_workers(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        sf.write(tmp_path / "in" / f"loud{i}.wav", 2 * real_ish(0.5, seed=i), 16000, subtype="FLOAT")
    r = run("mel", tmp_path / "in", "-o", tmp_path / "out", "-d", "0.5", "-j", "2", "-b", "1", "-q")
    assert r.exit_code == 0, r.output
    lines = [l for l in r.output.splitlines() if l.startswith("warning:") and "clipped to +-1" in l]
    assert sorted(l.split("/")[-1].split(":")[0] for l in lines) == ["loud0.wav", "loud1.wav", "loud2.wav"]


def test_a_leftover_with_nan_inside_is_redone(tmp_path):
    """Issue 23: a .npy with a valid header but NaN inside was reused by a rerun; now it is computed again."""
    sf.write(tmp_path / "a.wav", real_ish(1.0), 16000)
    out = tmp_path / "out"
    assert run("mel", tmp_path / "a.wav", "-o", out, "-d", "1", "-q").exit_code == 0
    good = np.load(out / "mels" / "a.npy")
    bad = good.copy()
    bad[3, 5] = np.nan
    np.save(out / "mels" / "a.npy", bad)
    r = run("mel", tmp_path / "a.wav", "-o", out, "-d", "1", "-q")
    assert r.exit_code == 0 and "done 1, skipped 0" in r.output, r.output
    assert np.array_equal(np.load(out / "mels" / "a.npy"), good)
