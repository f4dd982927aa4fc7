"""`maa generate`: records inside the wav, replay, `maa info`, resumable --prompts, checks before the load."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.infer.options import read_record, wav_bytes

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def _run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def _no_load(monkeypatch):
    """Fail loudly if the command gets as far as loading the model."""
    import maa.infer.pipeline

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(maa.infer.pipeline, "load_model", refuse)


def test_record_chunk_round_trip_and_libsndfile_reads_it(tmp_path):
    x = (0.3 * np.sin(np.arange(4000) / 7)).astype(np.float32)
    rec = {"prompt": "a dög barks " + "x" * 3000, "seed": 3, "maa": "0.1.0"}  # longer than libsndfile's comment limit
    (tmp_path / "a.wav").write_bytes(wav_bytes(x, rec))
    y, sr = sf.read(tmp_path / "a.wav", dtype="int16")
    ref, _ = sf.read(_plain(tmp_path, x), dtype="int16")
    assert sr == 16000 and np.array_equal(y, ref)  # the audio is untouched by the chunk
    assert read_record(tmp_path / "a.wav") == rec
    short = {"prompt": "rain", "seed": 1, "maa": "0.1.0"}
    (tmp_path / "b.wav").write_bytes(wav_bytes(x, short))
    with sf.SoundFile(tmp_path / "b.wav") as f:  # libsndfile parses the chunk as the file's comment
        assert json.loads(f.comment) == short
    assert read_record(_plain(tmp_path, x)) is None


def _plain(tmp_path, x):
    sf.write(tmp_path / "plain.wav", x, 16000, subtype="PCM_16")
    return tmp_path / "plain.wav"


def test_replay_is_sample_exact_from_a_mixed_batch(tmp_path, model_dir):
    # -n 2 -b 3: prompt 2's first candidate shares a batch with prompt 1's two; stochastic DDIM (eta)
    # draws its noise for the whole batch from the first row's seed, so the replay must rebuild all that
    (tmp_path / "p.txt").write_text("dog|a dog barks loudly in the yard\nbell|a bell rings, then rain falls\n")
    r = _run("generate", "--prompts", tmp_path / "p.txt", "--out-dir", tmp_path / "out", "--model", model_dir,
             "-d", 0.6, "--steps", 3, "-n", 2, "-b", 3, "--sampler", "ddim", "--eta", 0.7, "--seed", 4, "-q")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # in the order they were finished
    bell = next(row for row in rows if row["id"] == "bell")
    assert bell["parts"] == ["a bell rings", "rain falls"] and bell["candidate_seeds"] == [6, 7]
    assert any(c and c["at"] > 0 for c in bell["batch"])  # it really sat behind others in its batch
    for row in rows:
        again = tmp_path / f"again_{row['id']}.wav"
        r = _run("generate", "--replay", row["path"], "-o", again, "-q", "--manifest", tmp_path / "m.jsonl")
        assert r.exit_code == 0, r.output
        a, _ = sf.read(row["path"], dtype="int16")
        b, _ = sf.read(again, dtype="int16")
        assert np.array_equal(a, b)
        assert read_record(again) == read_record(row["path"])
    # and a plain generation of the same prompt alone is not bit-equal (the replay's batch matters)
    r = _run("generate", "a bell rings, then rain falls", "--seed", 6, "-o", tmp_path / "alone.wav", "--model", model_dir,
             "-d", 0.6, "--steps", 3, "--sampler", "ddim", "--eta", 0.7, "-q")
    assert r.exit_code == 0
    assert not np.array_equal(sf.read(tmp_path / "alone.wav", dtype="int16")[0], sf.read(bell["path"], dtype="int16")[0])


def test_replay_uses_the_recorded_cpu_thread_count(tmp_path, model_dir):
    """A CPU matmul's sums depend on the thread count, so a replay under another default (the
    free-core policy) must run with the threads the record names."""
    import torch

    args = ["--model", model_dir, "-d", 0.6, "--steps", 3, "-q"]
    r = _run("generate", "a dog barks loudly", "-o", tmp_path / "t2.wav", "--threads", 2, *args)
    assert r.exit_code == 0, r.output
    assert read_record(tmp_path / "t2.wav")["threads"] == 2
    r = _run("generate", "a dog barks loudly", "-o", tmp_path / "t1.wav", "--threads", 1, *args)
    assert r.exit_code == 0, r.output
    a, b = (sf.read(tmp_path / f, dtype="float32")[0] for f in ("t2.wav", "t1.wav"))
    if np.array_equal(a, b):
        pytest.skip("this tiny model gives equal samples at 1 and 2 threads here; nothing to tell apart")
    torch.set_num_threads(1)  # as the free-core policy would choose beside a busy neighbour
    r = _run("generate", "--replay", tmp_path / "t2.wav", "-o", tmp_path / "again.wav", "-q")
    assert r.exit_code == 0, r.output
    assert np.array_equal(sf.read(tmp_path / "again.wav", dtype="float32")[0], a)


def test_info_prints_the_record(tmp_path, model_dir):
    r = _run("generate", "a dog barks", "-o", tmp_path / "d.wav", "--model", model_dir, "-d", 0.3, "--steps", 2,
             "--negative", "noise", "-q")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    r = _run("info", tmp_path / "d.wav")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec == {k: v for k, v in row.items() if k not in ("id", "path")}
    for key in ("prompt", "negative", "seed", "sampler", "steps", "guidance", "duration", "model_sha256", "maa"):
        assert key in rec
    assert rec["negative"] == "noise" and len(rec["model_sha256"]) == 16
    sf.write(tmp_path / "plain.wav", np.zeros(100), 16000)
    r = _run("info", tmp_path / "plain.wav")
    assert r.exit_code == 1 and "holds no generation record" in r.output and "Traceback" not in r.output
    r = _run("generate", "--replay", tmp_path / "plain.wav", "-o", tmp_path / "x.wav")
    assert r.exit_code == 1 and "holds no generation record" in r.output


def test_rerun_skips_what_is_made_and_redoes_what_changed(tmp_path, model_dir):
    (tmp_path / "p.txt").write_text("a|a dog barks\nb|rain falls\n")
    args = ["generate", "--prompts", tmp_path / "p.txt", "--out-dir", tmp_path / "o", "--model", model_dir, "-d", 0.3,
            "--manifest", tmp_path / "m.jsonl", "-q"]
    assert _run(*args, "--steps", 2).exit_code == 0
    first = (tmp_path / "m.jsonl").read_text()
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").iterdir()}
    r = _run(*args, "--steps", 2)
    assert r.exit_code == 0 and "2 output(s) already made with these settings, skipped" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").iterdir()} == stamp
    assert (tmp_path / "m.jsonl").read_text() == first  # the manifest still lists both
    # other settings: an output that holds another generation is not replaced without --overwrite (issue 23)
    r = _run(*args, "--steps", 3)
    assert r.exit_code == 1 and r.stderr.count("error:") == 1 and "holds another generation" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "o").iterdir()} == stamp
    r = _run(*args, "--steps", 3, "--overwrite")
    assert r.exit_code == 0 and "skipped" not in r.stderr
    assert json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])["steps"] == 3


def test_interrupted_run_continues_to_the_same_bytes(tmp_path, model_dir, monkeypatch):
    import maa.infer.job as record  # the job writes each output

    (tmp_path / "p.txt").write_text("".join(f"p{i}|a sound number {i}\n" for i in range(3)))
    common = ["generate", "--prompts", tmp_path / "p.txt", "--model", model_dir, "-d", 0.3, "--steps", 2, "-b", 3,
              "-n", 2, "-q"]  # batches [p0 p0 p1] [p1 p2 p2]: the rerun resamples p0's batch for p1
    assert _run(*common, "--out-dir", tmp_path / "ref", "--manifest", tmp_path / "ref.jsonl").exit_code == 0
    save, calls = record.save_wav_with_record, []

    def second_write_interrupted(*a):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return save(*a)

    monkeypatch.setattr(record, "save_wav_with_record", second_write_interrupted)
    r = _run(*common, "--out-dir", tmp_path / "run", "--manifest", tmp_path / "run.jsonl")
    assert r.exit_code == 130 and "finished outputs are kept" in r.output
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == 1 == len(list((tmp_path / "run").glob("*.wav")))
    monkeypatch.setattr(record, "save_wav_with_record", save)
    r = _run(*common, "--out-dir", tmp_path / "run", "--manifest", tmp_path / "run.jsonl")
    assert r.exit_code == 0 and "1 output(s) already made with these settings, skipped" in r.stderr
    names = sorted(p.name for p in (tmp_path / "ref").glob("*.wav"))
    assert len(names) == 3 and sorted(p.name for p in (tmp_path / "run").glob("*.wav")) == names
    for n in names:  # the resumed batches hold the same clips as the uninterrupted run's: the same bits
        assert (tmp_path / "run" / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n
    strip = lambda text: [{k: v for k, v in json.loads(line).items() if k != "path"} for line in text.splitlines()]
    assert strip((tmp_path / "run.jsonl").read_text()) == strip((tmp_path / "ref.jsonl").read_text())


@pytest.mark.slow
def test_kill_in_the_middle_then_rerun_gives_the_same_bytes(tmp_path, model_dir):
    prompts = "".join(f"p{i}|a sound number {i}\n" for i in range(4))
    (tmp_path / "p.txt").write_text(prompts)
    common = ["--prompts", tmp_path / "p.txt", "--model", model_dir, "-d", 0.5, "--steps", 20, "-b", 1, "-q",
              "--threads", 1]
    ref = _run("generate", *common, "--out-dir", tmp_path / "ref", "--manifest", tmp_path / "ref.jsonl")
    assert ref.exit_code == 0, ref.output
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "maa.commands.cli", "generate", *map(str, common), "--out-dir", str(out),
           "--manifest", str(tmp_path / "run.jsonl")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (tmp_path / "run.jsonl").exists():  # the manifest line is an output's last step
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in out.glob("*.wav"))
    assert 1 <= len(done) < 4, done
    listed = [Path(json.loads(line)["path"]).name for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert set(listed) <= set(done) and len(done) - len(listed) <= 1  # at most the one killed between wav and line
    stamp = {n: (out / n).stat().st_mtime_ns for n in done}
    r = _run("generate", *common, "--out-dir", out, "--manifest", tmp_path / "run.jsonl")
    assert r.exit_code == 0, r.output
    assert f"{len(done)} output(s) already made with these settings, skipped" in r.stderr
    assert all((out / n).stat().st_mtime_ns == stamp[n] for n in done)  # kept, not redone
    names = sorted(p.name for p in (tmp_path / "ref").glob("*.wav"))
    assert sorted(p.name for p in out.glob("*.wav")) == names and len(names) == 4
    for n in names:
        assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n
    strip = lambda text: [{k: v for k, v in json.loads(line).items() if k != "path"} for line in text.splitlines()]
    assert strip((tmp_path / "run.jsonl").read_text()) == strip((tmp_path / "ref.jsonl").read_text())


def test_bad_outputs_and_inputs_are_refused_before_the_load(tmp_path, model_dir, monkeypatch):
    _no_load(monkeypatch)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "p.txt").write_text("a dog\n|  \n")
    (tmp_path / "good.txt").write_text("a dog\nrain\n")
    cases = [
        (["a dog", "-o", tmp_path / "adir"], "is a folder"),
        (["--prompts", tmp_path / "good.txt", "--out-dir", tmp_path / "afile"], "is a file"),
        (["a dog", "-o", tmp_path / "afile" / "x.wav"], "is a file, not a folder"),
        (["a dog", "-o", tmp_path / "x.wav", "-n", 2, "--scorer", f"maa-clap:{tmp_path / 'nope'}"], "does not exist"),
        (["--prompts", tmp_path / "p.txt", "--out-dir", tmp_path / "o"], "line 2: empty prompt"),
        (["a dog", "-o", tmp_path / "x.wav", "--manifest", tmp_path / "adir"], "--manifest"),
        (["a dog", "-o", tmp_path / "x.wav", "--sampler", "euler"], "--sampler"),
        (["a dog", "-o", tmp_path / "x.wav", "-d", 100_000, "--steps", 1000], "pass --force"),
        (["a dog", "-o", tmp_path / "x.wav", "-d", 10, "--steps", 2_000_000], "--steps 2000000: want a whole number"),
    ]
    for args, message in cases:
        r = _run("generate", *args, "--model", model_dir)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output and "Traceback" not in r.output and "loaded" not in r.output, (args, r.output)
        assert r.output.count("error:") == 1


def test_long_duration_states_its_cost_and_guidance_below_one_warns(tmp_path, model_dir):
    # over 10 s, generation goes window by window (maa.infer.longform): memory stays one window's,
    # so what is refused is the time of very many steps
    r = _run("generate", "a dog", "-o", tmp_path / "x.wav", "--model", model_dir, "-d", 100_000, "--steps", 1000)
    line = next(s for s in r.output.splitlines() if s.startswith("error:"))
    assert r.exit_code == 1 and "GB and" in line and "(latent 4x10x78)" in line and "--force" in line
    r = _run("generate", "a dog", "-o", tmp_path / "x.wav", "--model", model_dir, "-d", 0.3, "--steps", 1, "-g", 0.5, "-q")
    assert r.exit_code == 0, r.output
    assert "warning: --guidance 0.5 is below 1" in r.stderr and "GB and" in r.stderr


@pytest.mark.parametrize("name", ["replay_compose.wav", "replay_plain.wav"])
def test_a_wav_written_before_the_one_sampling_path_still_replays(tmp_path, model_dir, name):
    """tests/fixtures/replay: wavs of the code before issue 22 (a split prompt sampled as a batch of its
    parts; DDIM with eta noise) made again from their records by today's code."""
    old = ROOT / "tests" / "fixtures" / "replay" / name
    r = _run("generate", "--replay", old, "--model", model_dir, "-o", tmp_path / "new.wav", "-q")
    assert r.exit_code == 0, r.output
    assert "another model" not in r.stderr  # the tiny model is made again byte for byte
    new_rec, old_rec = read_record(tmp_path / "new.wav"), read_record(old)
    assert {k: v for k, v in new_rec.items() if k != "model"} == {k: v for k, v in old_rec.items() if k != "model"}
    a, b = sf.read(str(old), dtype="float32")[0], sf.read(str(tmp_path / "new.wav"), dtype="float32")[0]
    assert a.shape == b.shape and np.abs(a).max() > 0.01
    np.testing.assert_allclose(b, a, atol=2e-3)


def test_audio_to_audio_replays_although_the_duration_was_rounded(tmp_path, model_dir):
    """The init audio is read up to the duration asked + 1 s, the record keeps the rounded duration
    (0.5 s -> 0.528 s): the replay finds the part of the file the record's hash is of."""
    from tests.conftest import real_ish

    sf.write(str(tmp_path / "init.wav"), real_ish(3.0, seed=1), 16000)
    r = _run("generate", "rain", "--init-audio", tmp_path / "init.wav", "-d", 0.5, "--steps", 2, "--model", model_dir,
             "-o", tmp_path / "a2a.wav", "-q")
    assert r.exit_code == 0, r.output
    assert read_record(tmp_path / "a2a.wav")["duration"] != 0.5
    r = _run("generate", "--replay", tmp_path / "a2a.wav", "-o", tmp_path / "again.wav", "-q")
    assert r.exit_code == 0, r.output
    assert np.array_equal(sf.read(str(tmp_path / "a2a.wav"))[0], sf.read(str(tmp_path / "again.wav"))[0])
    sf.write(str(tmp_path / "init.wav"), real_ish(3.0, seed=2), 16000)  # another clip under the same name
    r = _run("generate", "--replay", tmp_path / "a2a.wav", "-o", tmp_path / "again2.wav", "-q")
    assert r.exit_code == 1 and "not the init audio this output was made from" in r.output


def test_inpaint_mode_is_recorded_and_replayed_bit_exactly(tmp_path, model_dir):
    x = np.tile(np.sin(np.arange(1600) / 5.0).astype(np.float32) * 0.3, 10)  # 1 s
    sf.write(tmp_path / "in.wav", x, 16000, subtype="PCM_16")
    common = ["--init-audio", tmp_path / "in.wav", "--inpaint", "0.3-0.7", "--model", model_dir, "--steps", 2, "--seed", 3, "-q"]
    for name, mode in (("keep", ["--context", "rain falls"]), ("old", ["--inpaint-mode", "replace"]),
                       ("sum", ["--context", "rain falls", "--scene-mix", "sum"])):
        r = _run("generate", "a door slams", *common, *mode, "-o", tmp_path / f"{name}.wav")
        assert r.exit_code == 0, r.output
        r = _run("generate", "--replay", tmp_path / f"{name}.wav", "-o", tmp_path / f"{name}_again.wav", "-q")
        assert r.exit_code == 0, r.output
        a, b = (sf.read(tmp_path / f"{name}{s}.wav", dtype="int16")[0] for s in ("", "_again"))
        assert np.array_equal(a, b)
    keep, old = read_record(tmp_path / "keep.wav"), read_record(tmp_path / "old.wav")
    assert (keep["inpaint_mode"], keep["context"], keep["inpaint_context"]) == ("keep-scene", "rain falls", "rain falls")
    assert keep["scene_mix"] == "duck"
    assert old["inpaint_mode"] == "replace" and "context" not in old and old["inpaint_method"] == "text-conditioned"
    assert "scene_mix" not in old and read_record(tmp_path / "sum.wav")["scene_mix"] == "sum"
    assert not np.array_equal(*(sf.read(tmp_path / f"{n}.wav", dtype="int16")[0] for n in ("keep", "sum")))
    for bad, line in ((["--scene-mix", "loud"], "--scene-mix 'loud': choose one of duck, sum"),
                      (["--inpaint-mode", "replace", "--scene-mix", "sum"], "--scene-mix: only with --inpaint and --inpaint-mode keep-scene")):
        r = _run("generate", "a door slams", *common, *bad, "-o", tmp_path / "bad.wav")
        assert r.exit_code != 0 and line in r.output and "Traceback" not in r.output and not (tmp_path / "bad.wav").exists()
    assert not np.array_equal(*(sf.read(tmp_path / f"{n}.wav", dtype="int16")[0] for n in ("keep", "old")))


def test_a_record_from_before_keep_scene_replays_as_replace():
    from maa.infer.options import GenerateOptions

    old = {"prompt": "a door", "steps": 2, "inpaint": [[0.3, 0.7]], "inpaint_method": "text-conditioned"}
    assert GenerateOptions.from_record(old).inpaint_mode == "replace"
    new = dict(old, inpaint_mode="keep-scene", inpaint_context="wind blows")
    o = GenerateOptions.from_record(new)
    assert (o.inpaint_mode, o.context) == ("keep-scene", "wind blows")  # the caption picked then, not re-picked
    assert o.scene_mix == "sum"  # keep-scene's mix before "duck" (tests/infer/test_inpaint.py: bit for bit)
    assert GenerateOptions.from_record(dict(new, scene_mix="duck")).scene_mix == "duck"
    assert GenerateOptions.from_record({"prompt": "rain", "steps": 2}).inpaint_mode == "keep-scene"  # no inpaint: unused
