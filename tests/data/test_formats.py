"""maa.data.formats: one reader per data-set format, the same ids through every entry point."""

import json

import numpy as np
import soundfile as sf

from maa.data.formats import read_manifest
from maa.data.importers import import_audiocaps, import_clotho
from maa.eval.evaluate import EvalConfig, _load_rows
from recipes import datasets

CLOTHO = ("file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
          "Rain on roof.wav,r1,r2,r3,r4,r5\n"
          "dog-bark.wav,d1,d2,d3,d4,d5\n")


def wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def test_audiocaps_clotho_tsv(tmp_path):
    wav(tmp_path / "Yabcdefghijk.wav")
    (tmp_path / "ac.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                     "91139,abcdefghijk,30,A man speaks\n91140,abcdefghijk,30,Someone talks\n")
    rows = read_manifest(tmp_path / "ac.csv")  # one row per YouTube clip, every caption kept
    assert [(r["id"], r["caption"], r["captions"]) for r in rows] == [
        ("ac_abcdefghijk", "A man speaks", ["A man speaks", "Someone talks"])]
    assert rows[0]["audio"].endswith("Yabcdefghijk.wav")

    (tmp_path / "cl.csv").write_text(CLOTHO)
    rows = read_manifest(tmp_path / "cl.csv")  # one row per clip; audio not on disk keeps its path
    assert [(r["id"], r["caption"]) for r in rows] == [("clotho_Rain_on_roof", "r1"), ("clotho_dog-bark", "d1")]
    assert rows[0]["captions"] == ["r1", "r2", "r3", "r4", "r5"] and rows[0]["audio"] == str(tmp_path / "Rain on roof.wav")

    (tmp_path / "m.tsv").write_text("name\tdataset\taudio_path\tcaption\tmel_path\nx\tac\tx.wav\tbirds sing\tx.npy\n")
    rows = read_manifest(tmp_path / "m.tsv")
    assert rows[0]["caption"] == "birds sing" and rows[0]["mel"].endswith("x.npy")


def test_the_same_clotho_csv_gives_the_same_ids_everywhere(tmp_path):
    root = tmp_path / "sets"
    clotho = root / "clotho"
    for name in ("Rain on roof.wav", "dog-bark.wav"):
        wav(clotho / "evaluation" / name)
    (clotho / "clotho_captions_evaluation.csv").write_text(CLOTHO)
    (clotho / "evaluation" / "captions.csv").write_text(CLOTHO)  # the same CSV beside its audio, as `maa eval` gets it
    want = [("clotho_Rain_on_roof", "r1"), ("clotho_dog-bark", "d1")]

    def ids(rows):
        return sorted((r["id"], r["caption"]) for r in rows)

    # the manifest loader every command uses (here `maa eval`'s), with the audio folder given or beside the CSV
    assert ids(_load_rows(str(clotho / "evaluation" / "captions.csv"), "REFERENCE", EvalConfig(), [])) == want
    assert ids(read_manifest(clotho / "clotho_captions_evaluation.csv", audio_dir=clotho / "evaluation")) == want
    # the importer, in the library and as `python -m recipes.datasets import clotho`
    assert ids(import_clotho(clotho).rows) == want
    datasets.main(["import", "clotho", "--root", str(root), "-o", str(tmp_path / "out"), "--no-hash"])
    lines = (tmp_path / "out" / "test-clotho.jsonl").read_text().splitlines()
    assert ids(json.loads(line) for line in lines) == want
    assert ids(read_manifest(tmp_path / "out" / "test-clotho.jsonl")) == want  # and read back as a manifest


def test_the_same_audiocaps_csv_gives_the_same_ids_everywhere(tmp_path):
    ac = tmp_path / "audiocaps"
    wav(ac / "test" / "Yabcdefghijk_30.wav")
    text = "audiocap_id,youtube_id,start_time,caption\n1,abcdefghijk,30,a car passes\n2,abcdefghijk,30,an engine\n"
    (ac / "test.csv").write_text(text)
    want = [("ac_abcdefghijk", "a car passes")]
    assert [(r["id"], r["caption"]) for r in read_manifest(ac / "test.csv")] == want
    assert [(r["id"], r["caption"]) for r in import_audiocaps(ac).rows] == want
