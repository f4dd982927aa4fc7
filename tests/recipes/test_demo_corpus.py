"""The demo corpus builder: parsers, MIDI writer, trimming, splits, captions; a small real slice (marked)."""

import io
import json
import struct
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from recipes import demo_corpus as dc
from recipes.fluid import Note, fluidsynth_available, midi_bytes
from recipes.opensfx import read_opensfx

SR = 16000


def wav_bytes(x, sr=44100):
    b = io.BytesIO()
    sf.write(b, x, sr, format="WAV", subtype="PCM_16")
    return b.getvalue()


def test_opensfx_parser_reads_entries_names_and_licences(tmp_path):
    tone = (0.5 * np.sin(np.arange(4410) / 7)).astype(np.float32)
    names = ['"Cow". Original "Cow - Moan 2.wav" by "Jarred Gib". Edited by "Wuzzy". License: Creative Commons Zero 1.0.',
             '"Helicopter". Original "heli.wav" by "x". License: Creative Commons Attribution-ShareAlike 3.0 Unported.',
             '"Unused/Nothing". Trivial empty sound file. License: Creative Commons Zero 1.0.']
    blobs = [bytes([len(n) + 1]) + n.encode() + b"\0" + w for n, w in zip(names, [wav_bytes(tone), wav_bytes(tone[:100]), b"\0" * 43])]
    table, offset = b"", 8 * len(blobs)
    for b in blobs:
        table += struct.pack("<II", offset | 0x80000000, len(b))  # the high bit is a format flag
        offset += len(b)
    cat = tmp_path / "opensfx.cat"
    cat.write_bytes(table + b"".join(blobs))
    e = read_opensfx(cat)
    assert [x.title for x in e] == ["Cow", "Helicopter", "Unused/Nothing"]
    assert [x.license for x in e] == ["CC0-1.0", "CC-BY-SA-3.0", "CC0-1.0"]
    assert e[0].original == "Cow - Moan 2.wav"
    x, sr = sf.read(io.BytesIO(e[0].wav), dtype="float32")
    assert sr == 44100 and np.allclose(x, tone, atol=1e-4)
    assert e[2].wav == b""  # the empty placeholders are not RIFF
    with pytest.raises(dc.MaaError, match="truncated"):
        (tmp_path / "cut.cat").write_bytes(cat.read_bytes()[:200])
        read_opensfx(tmp_path / "cut.cat")


def parse_midi(data):
    """An independent reader: [(tick, status, data bytes)] of the single track."""
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    trk = data[22:]
    assert len(trk) == length
    i, tick, out = 0, 0, []
    while i < len(trk):
        delta = 0
        while True:
            b = trk[i]
            i += 1
            delta = (delta << 7) | (b & 0x7F)
            if b < 0x80:
                break
        tick += delta
        status = trk[i]
        if status == 0xFF:
            out.append((tick, 0xFF, trk[i + 1: i + 3]))
            i += 3
        else:
            n = 1 if status & 0xF0 == 0xC0 else 2
            out.append((tick, status, tuple(trk[i + 1: i + 1 + n])))
            i += 1 + n
    return out


def test_midi_bytes_bank_program_and_note_times():
    ev = parse_midi(midi_bytes(5, 124, [Note(0.05, 2.0, 60, 100), Note(200.0, 0.5, 64, 200)]))
    assert ev[0] == (0, 0xB0, (0, 5)) and ev[1] == (0, 0xB0, (32, 0)) and ev[2] == (0, 0xC0, (124,))
    notes = [e for e in ev if e[1] in (0x90, 0x80)]
    assert notes == [(48, 0x90, (60, 100)), (48 + 1920, 0x80, (60, 0)),
                     (192000, 0x90, (64, 127)), (192480, 0x80, (64, 0))]  # long delta: multi-byte VLQ
    assert ev[-1] == (192480, 0xFF, b"\x2f\x00")
    drums = parse_midi(midi_bytes(128, 32, [Note(0, 0.1, 49, 90)]))
    assert drums[0] == (0, 0xC9, (32,)) and drums[1][1] == 0x99  # channel 10, no bank select


def test_finish_trims_pads_cuts_and_normalises():
    quiet = np.zeros(SR, np.float32)
    burst = (0.1 * np.sin(np.arange(SR * 2) / 3)).astype(np.float32)
    y = dc.finish(np.concatenate([quiet, burst, quiet]), trim_db=50)
    assert 2.0 <= len(y) / SR <= 2.1  # silence trimmed to within a few frames
    assert abs(np.abs(y).max() - 0.891) < 1e-3
    assert abs(y[-1]) < 1e-3  # faded tail
    short = dc.finish(burst[:SR // 5], trim_db=50)
    assert len(short) == SR and np.all(short[SR // 5 + 160:] == 0)  # padded to 1 s with silence
    long = dc.finish(np.tile(burst, 8), trim_db=50)
    assert len(long) == 10 * SR
    # a reverb-like exponential tail is cut where it falls trim_db below the peak
    t = np.arange(SR * 6) / SR
    tail = (np.sin(2 * np.pi * 300 * t) * np.exp(-t * 3)).astype(np.float32)  # -26 dB per second
    assert abs(len(dc.finish(tail, trim_db=35)) / SR - 35 / 26.06) < 0.1
    with pytest.raises(dc.MaaError):
        dc.finish(np.zeros(SR, np.float32), trim_db=50)


def clip(cid, cls, group):
    return dc.Clip(id=cid, labels=[cls], source="s", license="MIT", group=group, origin="", make=lambda: None)


def test_splits_keep_every_group_in_one_split():
    clips = []
    for cls, ngroups in [("dog", 7), ("rain", 12), ("bell", 2), ("cow", 3)]:
        for g in range(ngroups):
            clips += [clip(f"{cls}{g}_{v}", cls, f"{cls}:{g}") for v in range(2)]
    clips.append(clip("shared", "bell", "dog:0"))  # a recording used by two classes
    split = dc.assign_splits(clips)
    per_class = defaultdict(set)
    for c in clips:
        per_class[c.cls].add(split[c.group])
    for cls in ("dog", "rain", "cow"):  # >= 3 groups: all three splits present
        assert per_class[cls] == {"train", "valid", "test"}
    assert per_class["bell"] <= {"train", "valid", "test"} and "train" in per_class["bell"]
    assert sum(v == "train" for k, v in split.items() if k.startswith("rain")) >= 8
    assert dc.assign_splits(clips) == split  # deterministic


def test_every_label_has_natural_caption_templates():
    used = {p.cls for p in dc.PRESETS} | set(dc.SPEECH_VOICES)
    for labels in (list(dc.OPENSFX_LABELS.values()) + [l for _, l in dc.SONIC_PI_RULES]
                   + list(dc.FREEDESKTOP_LABELS.values()) + list(dc.OVOS_LABELS.values())):
        used |= {labels[0], labels[-1]}
        assert labels[0] in dc.CAPTIONS
    for label in used:
        templates = dc.CAPTIONS[label]
        assert len(templates) >= 2 and len(set(templates)) == len(templates), label
        for t in templates:
            assert len(t.split()) >= 2 and t != label.replace("_", " "), t  # a phrase, not a bare label
    classes = {p.cls for p in dc.PRESETS}
    assert all(len(dc.CAPTIONS[c]) >= 4 for c in classes)


def test_debian_copyright_and_id3_mp3(tmp_path):
    cp = tmp_path / "copyright"
    cp.write_text("Files: *\nLicense: MIT\n\nFiles: etc/samples/a.flac\n etc/samples/b.flac\nCopyright: 2013 X\n"
                  "Source: http://freesound.org/1/\nLicense: CC0\n")
    st = dc._debian_copyright(cp)
    assert st["etc/samples/b.flac"] == {"license": "CC0", "copyright": "2013 X", "source": "http://freesound.org/1/"}
    x = (0.3 * np.sin(np.arange(SR) / 5)).astype(np.float32)
    b = io.BytesIO()
    sf.write(b, x, SR, format="MP3")
    broken = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\0" * 40 + b.getvalue()  # zero-size tag, as in the ovos wheel
    y = dc._decode(broken)
    assert abs(len(y) - SR) < 2000 and np.abs(y).max() > 0.1  # decoded, not an error


# ---------------------------------------------------------------------------------------- real slice

needs_fluidsynth = pytest.mark.skipif(not (fluidsynth_available() and (dc.SF2_DIR / "FluidR3_GS.sf2").exists()),
                                      reason="fluidsynth and fluid-soundfont-gm/gs not installed")


@pytest.mark.corpus
@needs_fluidsynth
def test_small_slice_builds_splits_and_reprograms(tmp_path):
    out = tmp_path / "demo"
    res = dc.build(out, sources=("fluidr3",), classes={"dog", "piano", "rain", "siren"}, renders_per_class=6,
                   min_per_class=1)
    assert not res.failed and res.made == 24
    rows = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["labels"][0] for r in rows} == {"dog", "piano", "rain", "siren"}
    for r in rows:
        x, sr = sf.read(out / r["audio"])
        assert sr == SR and x.ndim == 1 and 1.0 <= len(x) / SR <= 10.0 and np.abs(x).max() > 0.5
        assert set(r) >= {"id", "audio", "labels", "caption", "duration", "split", "source", "license"}
        assert r["caption"] in dc.CAPTIONS[r["labels"][0]] and r["license"] == "MIT"
    groups = defaultdict(set)
    for r in rows:
        groups[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in groups.values())  # no (preset, note) in two splits
    for s in dc.SPLITS:
        assert sum(1 for _ in open(out / f"{s}.jsonl")) == sum(r["split"] == s for r in rows)
    assert json.loads((out / "classes.json").read_text())["dog"]["total"] == 6
    # rerun: nothing to make, same manifest
    before = (out / "manifest.jsonl").read_text()
    again = dc.build(out, sources=("fluidr3",), classes={"dog", "piano", "rain", "siren"}, renders_per_class=6,
                     min_per_class=1)
    assert again.made == 0 and (out / "manifest.jsonl").read_text() == before

    from maa.commands.cli import app
    r = CliRunner().invoke(app, ["reprogram", str(out / "manifest.jsonl"), "-o", str(tmp_path / "rp"), "--count", "4",
                                 "--duration", "5", "-q"])
    assert r.exit_code == 0, r.output
    comp = [json.loads(l) for l in (tmp_path / "rp" / "manifest.jsonl").read_text().splitlines()]
    assert len(comp) == 4 and all(len(c["components"]) >= 2 for c in comp)


def test_render_plan_varies_and_groups_by_preset_and_note():
    clips = dc.plan_fluidr3(renders_per_class=14)  # planning only: no fluidsynth needed
    assert len({c.id for c in clips}) == len(clips)
    by_class = defaultdict(list)
    for c in clips:
        by_class[c.cls].append(c)
    assert len(by_class) >= 40
    for cls, cs in by_class.items():
        groups = defaultdict(list)
        for c in cs:
            groups[c.group].append(c)
        assert len(groups) >= 2, cls  # several notes per class, so splits can differ
        assert all(len(v) <= 2 for v in groups.values()), cls  # two variants per (preset, note)
        assert len({c.recipe for c in cs}) == len(cs), cls  # every render differs (velocity, length, hits)
        assert all(c.license == "MIT" and c.source.startswith("fluid-soundfont-") for c in cs)
