"""maa.data.reprogram and `maa reprogram`: composition numerics, spans, captions, determinism, bad input."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.errors import MaaError
from maa.data.reprogram import (
    LEVELS_DB,
    SIMULTANEOUS,
    ComposeConfig,
    Event,
    Reprogrammer,
    active_rms,
    compose,
    example_rng,
    phrase_of,
    place,
)
from tests.conftest import real_ish

SR = 16000


def tone(seconds, freq, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds, seed=0, amp=0.2):
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def events3():
    return [Event("a", tone(1.0, 440), "a bell rings", ["bell"]),
            Event("b", noise(1.5, 1), "rain falls", ["rain"]),
            Event("c", real_ish(1.2, seed=2), "a violin plays", ["violin"])]


# Steady events with no silence and no fades: the composition must be exactly a scaled
# concatenation / weighted sum of the inputs, so the numerical check needs no tolerance tricks.
PLAIN = dict(fade=0.0, trim_db=200.0, duration=6.0)


def fit(y, columns):
    """Least-squares coefficients of y on the columns, and the relative residual."""
    A = np.stack(columns, axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, y.astype(np.float64), rcond=None)
    return coef, np.linalg.norm(A @ coef - y) / np.linalg.norm(y)


def shifted(x, start_s, n):
    out = np.zeros(n)
    o = int(round(start_s * SR))
    out[o:o + len(x)] = x[: n - o]
    return out


def test_place_is_concatenation_and_weighted_sum():
    a, b = tone(0.5, 300), noise(0.25)
    cat = place([a, b], [0, len(a)], [1.0, 1.0], len(a) + len(b) + 100)
    np.testing.assert_array_equal(cat, np.concatenate([a, b, np.zeros(100, np.float32)]))
    mix = place([a, b], [0, 0], [0.5, 2.0], len(a))
    np.testing.assert_allclose(mix, 0.5 * a + 2.0 * np.pad(b, (0, len(a) - len(b))), atol=1e-7)
    assert len(place([a], [0], [1.0], 100)) == 100  # cut to length


@pytest.mark.parametrize("seed", range(4))
def test_sequential_equals_concatenation_of_parts(seed):
    ev = events3()[:2]
    cfg = ComposeConfig(gap=(0.1, 0.4), **PLAIN)
    c = compose(ev, np.random.default_rng(seed), cfg, kind="sequential")
    n = len(c.audio)
    assert n == 6 * SR
    parts = {e.id: e.audio for e in ev}
    cols = [shifted(parts[i], s[0], n) for i, s in zip(c.components, c.spans)]
    coef, resid = fit(c.audio, cols)
    assert resid < 1e-5
    # each part was level-matched to the same loudness before the single final gain
    rms = [active_rms(parts[i]) for i in c.components]
    np.testing.assert_allclose(coef * rms, coef[0] * rms[0], rtol=1e-4)
    # the gap between the parts is silent
    gap = c.audio[int(c.spans[0][1] * SR) + 2: int(c.spans[1][0] * SR) - 2]
    assert len(gap) > 0 and np.abs(gap).max() == 0


@pytest.mark.parametrize("template", list(SIMULTANEOUS))
def test_simultaneous_equals_weighted_sum(template):
    ev = events3()[:2]
    c = compose(ev, np.random.default_rng(3), ComposeConfig(**PLAIN), kind="simultaneous", template=template)
    n = len(c.audio)
    parts = {e.id: e.audio / active_rms(e.audio) for e in ev}  # level-matched inputs
    cols = [shifted(parts[i], s[0], n) for i, s in zip(c.components, c.spans)]
    coef, resid = fit(c.audio, cols)
    assert resid < 1e-5
    fg = c.components.index(ev[0].id)  # the first event is the foreground, the other at a relative level
    rel_db = 20 * np.log10(coef[1 - fg] / coef[fg])
    lo, hi = LEVELS_DB[template]
    assert lo - 1e-3 <= rel_db <= hi + 1e-3


def test_spans_match_where_the_energy_is():
    # bursts padded with silence: trimming must find them, and spans must sit on the energy
    quiet = np.zeros(int(0.4 * SR), np.float32)
    ev = [Event("x", np.concatenate([quiet, tone(0.8, 500), quiet]), "a beep sounds", ["beep"]),
          Event("y", np.concatenate([quiet, noise(0.6, 5), quiet]), "water splashes", ["water"])]
    for seed in range(5):
        c = compose(ev, np.random.default_rng(seed), ComposeConfig(duration=4.0, gap=(0.2, 0.5)), kind="sequential")
        energy = c.audio.astype(np.float64) ** 2
        inside = np.zeros(len(c.audio), bool)
        for (s, e), cid in zip(c.spans, c.components):
            seg = c.audio[int(s * SR): int(e * SR)]
            assert abs((e - s) - (0.8 if cid == "x" else 0.6)) < 0.025  # the burst, not its silent padding
            assert np.sqrt(np.mean(seg[len(seg) // 4: -len(seg) // 4] ** 2)) > 0.05
            inside[int(s * SR): int(e * SR)] = True
        assert energy[~inside].sum() < 1e-6 * energy.sum()
        # which part is where: the tone's span is narrow-band at 500 Hz, the noise span is not
        for (s, e), cid in zip(c.spans, c.components):
            seg = c.audio[int(s * SR): int(e * SR)]
            spec = np.abs(np.fft.rfft(seg))
            peak_share = spec[np.argmax(spec) - 3: np.argmax(spec) + 4].sum() / spec.sum()
            assert (peak_share > 0.3) == (cid == "x")


def test_captions_name_events_in_order():
    ev = events3()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        c = compose(ev[: 2 + seed % 2], rng, ComposeConfig(duration=5.0))
        for p in c.phrases:
            assert p in c.caption
        pos = [c.caption.index(p) for p in c.phrases]  # phrases are listed in order of onset
        if c.template in ("before", "then", "followed_by"):
            assert pos == sorted(pos), c.caption
            assert [s[0] for s in c.spans] == sorted(s[0] for s in c.spans)
        elif c.template == "after":  # "B after A": the later event is named first
            assert pos[0] > pos[1], c.caption
        elif "+" in c.template:  # "A while B, then C": C starts last and is named last
            assert pos[2] == max(pos), c.caption
    assert compose(ev[:2], np.random.default_rng(0), kind="sequential", template="before").caption == \
        "a bell rings before rain falls"
    assert compose(ev[:2], np.random.default_rng(0), kind="sequential", template="after").caption == \
        "rain falls after a bell rings"
    assert compose(ev[:2], np.random.default_rng(0), kind="simultaneous", template="background").caption == \
        "a bell rings while rain falls in the background"


def test_never_clips_and_exact_length():
    loud = [Event(str(i), np.clip(np.random.default_rng(i).standard_normal(SR * 3), -1, 1).astype(np.float32),
                  f"sound {i}", [str(i)]) for i in range(3)]
    for seed in range(6):
        c = compose(loud, np.random.default_rng(seed), ComposeConfig(duration=2.5))
        assert len(c.audio) == int(2.5 * SR)
        assert np.abs(c.audio).max() <= 0.89 + 1e-6
        assert all(0 <= s < e <= 2.5 for s, e in c.spans)


def test_deterministic_for_a_seed_and_independent_of_count():
    gen = Reprogrammer(events3(), ComposeConfig(duration=3.0))
    a, b = gen.sample(example_rng(7, 3)), gen.sample(example_rng(7, 3))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.caption == b.caption
    assert not np.array_equal(a.audio, gen.sample(example_rng(8, 3)).audio)


def test_reprogrammer_picks_distinct_kinds():
    ev = [Event(f"d{i}", tone(1, 300 + i), "a dog barks", ["dog"]) for i in range(5)] + [
        Event("r", noise(1), "rain falls", ["rain"])]
    gen = Reprogrammer(ev, ComposeConfig(duration=3.0))
    for k in range(10):
        labels = [e.labels[0] for e in gen.pick(np.random.default_rng(k))]
        assert len(labels) == len(set(labels)) == 2  # only 2 kinds exist, even when 3 are asked for
    with pytest.raises(MaaError, match="at least 2 different"):
        Reprogrammer(ev[:3])


def test_phrase_of():
    assert phrase_of({"caption": "A dog barks."}) == "a dog barks"
    assert phrase_of({"labels": ["car_horn"]}) == "car horn sounds"
    assert phrase_of({"labels": ["dog", "rain"]}) == "dog and rain sounds"
    assert phrase_of({"caption": "", "labels": []}) is None


# ---------------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def write_clips(root: Path, n=4, caption=True):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    names = ["a dog barks", "rain falls", "a bell rings", "a car horn honks", "a man speaks"]
    for i in range(n):
        x = real_ish(1.0 + 0.3 * i, seed=i) if i % 2 else tone(1.0 + 0.2 * i, 300 + 100 * i)
        sf.write(root / f"c{i}.wav", x, SR)
        row = {"id": f"c{i}", "audio": f"c{i}.wav", "labels": [names[i].split()[1]], "license": "CC0-1.0"}
        if caption:
            row["caption"] = names[i]
        rows.append(row)
    man = root / "clips.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return man, rows


def run(*args):
    return runner.invoke(app, ["reprogram", *map(str, args)])


def test_cli_writes_wavs_and_manifest_and_same_seed_same_bytes(tmp_path):
    man, _ = write_clips(tmp_path / "in")
    r1 = run(man, "-o", tmp_path / "o1", "--count", 5, "--seed", 3, "--duration", 3, "-q")
    r2 = run(man, "-o", tmp_path / "o2", "--count", 5, "--seed", 3, "--duration", 3, "-q")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output
    rows = [json.loads(l) for l in (tmp_path / "o1" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    for r in rows:
        wav = tmp_path / "o1" / r["audio"]
        x, sr = sf.read(wav)
        assert sr == SR and x.ndim == 1 and len(x) == 3 * SR and r["duration"] == 3.0
        assert 2 <= len(r["components"]) == len(r["spans"]) <= 3
        assert set(r["components"]) <= {"c0", "c1", "c2", "c3"}
        assert all(p in r["caption"] for p in r["phrases"])
        assert (wav.read_bytes() == (tmp_path / "o2" / r["audio"]).read_bytes())
    assert (tmp_path / "o1" / "manifest.jsonl").read_text() == (tmp_path / "o2" / "manifest.jsonl").read_text()
    r3 = run(man, "-o", tmp_path / "o3", "--count", 2, "--seed", 4, "--duration", 3, "-q")
    assert r3.exit_code == 0
    a = (tmp_path / "o1" / rows[0]["audio"]).read_bytes()
    assert a != (tmp_path / "o3" / "audio" / "reprog_4_000000.wav").read_bytes()


def test_cli_manifest_to_stdout_and_labels_only(tmp_path):
    man, _ = write_clips(tmp_path / "in", caption=False)
    r = run(man, "-o", tmp_path / "o", "--count", 3, "--duration", 2, "-m", "-", "-q")
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(rows) == 3 and all("sounds" in row["caption"] for row in rows)
    assert not (tmp_path / "o" / "manifest.jsonl").exists()


def test_cli_bad_inputs(tmp_path):
    man, rows = write_clips(tmp_path / "in")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = run(empty, "-o", tmp_path / "o", "-q")
    assert r.exit_code == 1 and "empty" in r.output and "Traceback" not in r.output

    r = run(man, "-o", tmp_path / "o", "--count", 0)
    assert r.exit_code == 1 and "--count 0" in r.output

    nolabel = tmp_path / "nolabel.jsonl"
    nolabel.write_text("".join(json.dumps({"id": x["id"], "audio": str(tmp_path / "in" / x["audio"])}) + "\n" for x in rows))
    r = run(nolabel, "-o", tmp_path / "o2", "-q")
    assert r.exit_code == 1 and "neither caption nor labels" in r.output
    assert not (tmp_path / "o2" / "manifest.jsonl").exists()

    # one unreadable clip is skipped and reported; the run still succeeds with the rest
    (tmp_path / "in" / "c3.wav").write_bytes(b"not audio at all")
    r = run(man, "-o", tmp_path / "o3", "--count", 2, "--duration", 2, "-q")
    assert r.exit_code == 0 and "c3.wav" in r.output and "skipped" in r.output
    assert all("c3" not in json.loads(l)["components"] for l in (tmp_path / "o3" / "manifest.jsonl").read_text().splitlines())

    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run(man, "-o", blocker / "out", "-q")
    assert r.exit_code == 1 and "not writable" in r.output and "Traceback" not in r.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_cli_read_only_folder(tmp_path):
    man, _ = write_clips(tmp_path / "in")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run(man, "-o", ro / "out", "-q")
        assert r.exit_code == 1 and "not writable" in r.output
    finally:
        ro.chmod(0o700)
