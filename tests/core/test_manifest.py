import json

import pytest

from maa.core.errors import MaaError
from maa.core.manifest import caption_of, write_manifest
from maa.core.manifest import read_rows as read_manifest


def touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_jsonl_relative_paths_and_roundtrip(tmp_path):
    touch(tmp_path / "clips" / "a.wav")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "clips/a.wav", "caption": "a dog barks"}) + "\n\n")
    rows = read_manifest(m)
    assert rows == [{"id": "a", "audio": str((tmp_path / "clips/a.wav").resolve()), "caption": "a dog barks"}]
    write_manifest(tmp_path / "out" / "copy.jsonl", rows)
    back = json.loads((tmp_path / "out" / "copy.jsonl").read_text())
    assert back["audio"] == str((tmp_path / "clips/a.wav").resolve())  # not below out/: stays absolute
    write_manifest(tmp_path / "copy2.jsonl", rows)
    assert json.loads((tmp_path / "copy2.jsonl").read_text())["audio"] == "clips/a.wav"
    assert read_manifest(tmp_path / "copy2.jsonl") == rows


def test_folder_labels_from_subfolders(tmp_path):
    touch(tmp_path / "dog" / "1.wav")
    touch(tmp_path / "rain" / "x.flac")
    touch(tmp_path / "top.mp3")
    touch(tmp_path / "notes.txt")
    rows = read_manifest(tmp_path)
    assert [(r["id"], r.get("labels")) for r in rows] == [("dog__1", ["dog"]), ("rain__x", ["rain"]), ("top", None)]


def test_problems_raise_or_are_reported(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a", "audio": "a.wav"}\n{not json\n{"id": "a", "audio": "b.wav"}\n{"id": "c"}\n')
    with pytest.raises(MaaError, match="line 2: malformed JSON"):
        read_manifest(m)
    problems = []
    rows = read_manifest(m, on_problem=problems.append)
    assert [r["id"] for r in rows] == ["a"]
    reasons = " | ".join(p["reason"] for p in problems)
    assert "line 2: malformed JSON" in reasons and "duplicate id 'a'" in reasons and "line 4: no 'audio'" in reasons


def test_empty_and_unknown(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(MaaError, match="empty"):
        read_manifest(tmp_path / "e.jsonl")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(MaaError, match=r"x.xml: unknown manifest format; use JSONL \(.jsonl\) or a folder$"):
        read_manifest(tmp_path / "x.xml")
    with pytest.raises(MaaError, match="no such manifest"):
        read_manifest(tmp_path / "missing.jsonl")
    (tmp_path / "d").mkdir()
    with pytest.raises(MaaError, match="no audio files"):
        read_manifest(tmp_path / "d")


def test_caption_of():
    assert caption_of({"caption": "a cat"}) == "a cat"
    assert caption_of({"labels": ["dog_bark", "rain"]}) == "dog bark and rain"
    assert caption_of({}) is None


def test_single_audio_file_is_a_one_clip_manifest(tmp_path):
    p = touch(tmp_path / "my bell.oga")
    assert read_manifest(p) == [{"id": "my_bell", "audio": str(p.resolve())}]


HOSTILE_IDS = ["../../../escaped", "/etc/passwd", "a/b", "a\\b", "a\x00b", ".", "..", "", ".hidden",
               "x" * 5000, "Dog", "dog", "DOG", "clip-0123456789abcdef", "café", "a b"]


def test_safe_stem_keeps_every_id_inside_one_folder(tmp_path):
    from maa.core.io import safe_stem

    stems = [safe_stem(i) for i in HOSTILE_IDS]
    for s in stems:
        assert s and "/" not in s and "\\" not in s and "\x00" not in s and not s.startswith(".")
        assert len(s.encode()) <= 100 and (tmp_path / f"{s}.npy").parent == tmp_path
    # unique even where the file system ignores case, and stable across calls
    assert len({s.lower() for s in stems}) == len(HOSTILE_IDS)
    assert stems == [safe_stem(i) for i in HOSTILE_IDS]
    assert safe_stem("clip0") == "clip0" and safe_stem("y-abc_1.2") == "y-abc_1.2"  # plain ids keep their name
    assert safe_stem("../../../escaped").startswith("escaped-")
    for s in stems:  # every one of them can really be created, side by side
        (tmp_path / f"{s}.npy").write_bytes(b"")
    assert len(list(tmp_path.iterdir())) == len(HOSTILE_IDS)


def test_same_stem_different_formats_get_distinct_ids(tmp_path):
    for ext in ("flac", "ogg", "mp3", "wav"):
        touch(tmp_path / f"clip.{ext}")
    touch(tmp_path / "other.wav")
    rows = read_manifest(tmp_path)
    assert sorted(r["id"] for r in rows) == ["clip.flac", "clip.mp3", "clip.ogg", "clip.wav", "other"]


def test_non_utf8_manifest_warns_naming_the_file_and_line(tmp_path):
    from maa.core.errors import MaaWarning

    touch(tmp_path / "a.wav")
    m = tmp_path / "m.jsonl"
    m.write_bytes(b'{"id": "a", "audio": "a.wav"}\n{"id": "caf\xe9", "audio": "a.wav", "caption": "\xff"}\n')
    with pytest.warns(MaaWarning, match=r"m.jsonl: not UTF-8 \(line 2, byte 0xe9\); 2 undecodable"):
        rows = read_manifest(m)
    assert rows[1]["id"] == "caf\ufffd"
    m.write_text(json.dumps({"id": "café \ufffd", "audio": "a.wav"}) + "\n", encoding="utf-8")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", MaaWarning)  # real UTF-8, even with a genuine U+FFFD: no warning
        assert read_manifest(m)[0]["id"] == "café \ufffd"
