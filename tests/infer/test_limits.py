"""maa.infer.limits: the bounds of a generation and the record rules, as pure functions (issue 23)."""

import json
import math

import pytest

from maa.core.errors import MaaError
from maa.infer import limits as L

GOOD = {"prompt": "a dog barks", "seed": 0, "steps": 12, "sampler": "dpm++", "guidance": 3.0, "negative": "",
        "duration": 1.04, "eta": 0.0, "compose": True, "fast": "auto", "frames": 64, "model": "/m",
        "model_sha256": "ab", "text_encoder": "minilm", "vocoder": "vocos", "threads": 1, "device": "cpu",
        "maa": "0.1.0", "parts": ["a dog", "rain"],
        "batch": [{"size": 2, "at": 0, "seed0": 0}, {"size": 2, "at": 1, "seed0": 0, "pad_text": "a dog"}]}


@pytest.mark.parametrize("value", [1e9, math.inf, 1e308, -1.0, 0.0, math.nan, "10", True, None])
def test_durations_out_of_bounds(value):
    with pytest.raises(MaaError, match=r"^--duration .*: want a length in seconds above 0 and at most 134185"):
        L.check_seconds(value)


def test_bounds_hold_at_their_edges():
    assert L.check_seconds(L.MAX_SECONDS) == L.MAX_SECONDS and L.check_seconds(0.01) == 0.01
    assert round(L.MAX_SECONDS * 16000 * 2) + 2**20 == 2**32  # the 16-bit wav's 4 GiB, less a MiB for header and record
    assert L.check_steps(1000) == 1000
    for bad in (0, 1001, 2.0, "12", True):
        with pytest.raises(MaaError, match="--steps"):
            L.check_steps(bad)
    assert L.check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63, 2**70, 1.5, "7", False):
        with pytest.raises(MaaError, match=r"--seed .*: want a whole number from 0 to 2\^63-1"):
            L.check_seed(bad)


def test_settings_name_the_flag_or_the_record_field():
    with pytest.raises(MaaError, match=r"^--eta nan: want a finite number in \[0, 1000\]"):
        L.check_settings({"eta": math.nan})
    with pytest.raises(MaaError, match=r"^x.wav: the record's guidance nan: want a finite number"):
        L.check_settings({"guidance": math.nan}, "x.wav: the record's")
    with pytest.raises(MaaError, match="^-n 100000"):
        L.check_settings({"candidates": 100_000})
    with pytest.raises(MaaError, match=r"^--timeline 'inf-inf'|^--timeline '0-inf'"):
        L.check_settings({"timeline": [{"start": 0, "end": math.inf, "prompt": "rain"}]})
    with pytest.raises(MaaError, match="the number of events"):
        L.check_timeline([{"start": 0, "end": 1, "prompt": "x"}] * (L.MAX_EVENTS + 1))
    L.check_settings({"duration": 10.0, "steps": 25, "guidance": 1.0, "eta": 0.5, "timeline": None, "inpaint": [(1, 2)]})


@pytest.mark.parametrize("field, value, says", [
    ("seed", "7", "the record's seed '7'"),
    ("seed", 2**70, "the record's seed 1180591620717411303424"),
    ("seed", -1, "the record's seed -1"),
    ("seed", 1.5, "the record's seed 1.5"),
    ("steps", "12", "the record's steps '12'"),
    ("duration", 1e9, "the record's duration 1000000000.0"),
    ("eta", math.nan, "the record's eta nan"),
    ("guidance", math.inf, "the record's guidance inf"),
    ("threads", "8", "the record's threads '8'"),
    ("prompt", "", "the record's prompt ''"),
    ("sampler", "euler", "the record's sampler 'euler'"),
    ("batch", [{"size": 2, "at": 5, "seed0": 0}], "the record's batch row 5"),
])
def test_a_tampered_record_names_its_field(field, value, says):
    with pytest.raises(MaaError) as e:
        L.check_record({**GOOD, field: value}, "x.wav")
    assert str(e.value).startswith(f"x.wav: {says}") and "\n" not in str(e.value)


def test_a_good_record_passes_and_text_is_bounded():
    assert L.check_record(dict(GOOD), "x.wav") == GOOD
    assert L.record_from_text(json.dumps(GOOD).encode() + b"\0", "x.wav") == GOOD
    with pytest.raises(MaaError, match="nested too deep"):
        L.record_from_text(b"[" * 100_000 + b"]" * 100_000, "x.wav")
    with pytest.raises(MaaError, match="more than the 1048576"):
        L.record_from_text(b" " * (L.MAX_RECORD_BYTES + 1), "x.wav")
    with pytest.raises(MaaError, match="the record's seed is missing"):
        L.record_from_text(b'{"prompt": "x", "maa": "0.1"}', "x.wav")
    with pytest.raises(MaaError, match=r"^x.wav: holds no generation record \(its comment is JSON, but not"):
        L.record_from_text(b'{"prompt": "x", "seed": 1}', "x.wav")


def test_outputs_never_replace_inputs_or_foreign_files(tmp_path):
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"RIFF")
    with pytest.raises(MaaError, match=r"^-o .*in.wav: is the input --init-audio .*in.wav; writing it would destroy"):
        L.check_not_input(tmp_path / "." / "in.wav", {"--init-audio": wav, "--replay": None})
    L.check_not_input(tmp_path / "out.wav", {"--init-audio": wav})
    with pytest.raises(MaaError, match="holds no maa generation record.*--overwrite"):
        L.check_replaceable(wav, lambda p: False, overwrite=False)
    L.check_replaceable(wav, lambda p: False, overwrite=True)
    L.check_replaceable(wav, lambda p: True, overwrite=False)
    L.check_replaceable(tmp_path / "new.wav", lambda p: False, overwrite=False)
    with pytest.raises(MaaError, match="holds another generation"):
        L.check_same_record(wav, True, overwrite=False)
    L.check_same_record(wav, True, overwrite=True)


def test_replay_alone_and_duration_notes():
    with pytest.raises(MaaError, match="^--replay x.wav: replays the record's own prompt; the prompt 'rain'"):
        L.check_replay_alone("x.wav", "rain", None)
    L.check_replay_alone("x.wav", None, None)
    assert L.duration_notes(5, True, "in.wav") == [
        "--duration 5: not used with --inpaint; the output has the length of --init-audio in.wav"]
    assert L.duration_notes(5, True, None, 12.0)[0].endswith("the clip lasts 12 s")
    assert L.duration_notes(5, False, "in.wav", 12.0) == [] == L.duration_notes(20, True, None, 12.0)
