"""Importers: each data set's shipped layout -> rows; the combined manifest keeps test clips out of training."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from maa.core.errors import MaaError
from maa.data.formats import read_manifest
from maa.data.importers import (
    YouTubeClips,
    combine,
    expand_captions,
    import_audiocaps,
    import_audioset,
    import_clotho,
    import_esc50,
    import_fsd50k,
    import_set,
    import_urbansound8k,
    import_wavcaps,
)
from recipes.mock_datasets import build


def wav(path, seconds=0.2, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32), 16000)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    root = tmp_path_factory.mktemp("mock")
    build(root, seconds=0.3)
    return root


def test_youtube_names_with_and_without_start_time(tmp_path):
    for name in ("Yabcdefghij1.wav", "Yzz_zzzzzzzz_30.flac", "Yzz_zzzzzzzz_40.000_50.000.wav", "klmnopqrstu_5.wav", "123.wav"):
        wav(tmp_path / "sub" / name)
    clips = YouTubeClips(tmp_path)
    assert clips.find("abcdefghij1").name == "Yabcdefghij1.wav"
    assert clips.find("zz_zzzzzzzz", "40").name == "Yzz_zzzzzzzz_40.000_50.000.wav"   # the start time picks the file
    assert clips.find("zz_zzzzzzzz", 30).name == "Yzz_zzzzzzzz_30.flac"
    assert clips.find("klmnopqrstu", "99").name == "klmnopqrstu_5.wav"              # the only file of that video
    assert clips.find("nothere1234", "0", other="123").name == "123.wav"            # audiocap_id naming
    assert clips.find("nothere1234") is None


def test_audiocaps_groups_captions_and_lists_missing_clips(mock):
    got = import_audiocaps(mock / "audiocaps")
    test = [r for r in got.rows if r["split"] == "test"]
    assert len(test) == 4 and all(len(r["captions"]) == 5 and r["caption"] == r["captions"][0] for r in test)
    assert got.counts() == {"clips": 13, "train": 7, "val": 2, "test": 4, "missing": 1}
    assert got.missing[0]["split"] == "train" and got.missing[0]["id"].startswith("ac_")
    assert all(r["key"] == "youtube:" + r["id"][3:] for r in got.rows)


def test_clotho_five_captions_freesound_keys_and_wrong_columns(mock, tmp_path):
    got = import_clotho(mock / "clotho")
    assert {r["split"] for r in got.rows} == {"train", "val", "test"}
    assert all(len(r["captions"]) == 5 for r in got.rows)
    assert all(r["key"].startswith("freesound:") for r in got.rows)  # sound_id from the metadata CSV
    write(tmp_path / "clotho_captions_development.csv", "fname,text\na.wav,x\n")
    with pytest.raises(MaaError, match="no column file_name, caption_1 .*found: fname, text"):
        import_clotho(tmp_path)


def test_wavcaps_subsets_ids_and_bare_list_json(mock, tmp_path):
    got = import_wavcaps(mock / "wavcaps")
    assert {r["source"] for r in got.rows} == {"wavcaps/FreeSound", "wavcaps/BBC_Sound_Effects", "wavcaps/SoundBible",
                                               "wavcaps/AudioSet_SL"}
    assert any(r["key"].startswith("youtube:") for r in got.rows if r["source"].endswith("AudioSet_SL"))
    # the GitHub release's SoundBible file is a bare list; a listed clip not on disk is counted
    write(tmp_path / "json_files" / "SoundBible" / "sb_final.json",
          json.dumps([{"id": "2219", "caption": "An airplane is landing."}, {"id": "9", "caption": "x"}]))
    wav(tmp_path / "audio" / "SoundBible" / "2219.flac")
    one = import_wavcaps(tmp_path)
    assert [r["caption"] for r in one.rows] == ["An airplane is landing."] and len(one.missing) == 1


def test_label_only_sets_give_labels_not_captions(tmp_path):
    write(tmp_path / "esc" / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,True,1,A\n")
    wav(tmp_path / "esc" / "audio" / "1-1-A-0.wav")
    write(tmp_path / "us" / "metadata" / "UrbanSound8K.csv",
          "slice_file_name,fsID,start,end,salience,fold,classID,class\n100-1-0-0.wav,100,0,1,1,3,1,car_horn\n")
    wav(tmp_path / "us" / "audio" / "fold3" / "100-1-0-0.wav")
    write(tmp_path / "fsd" / "FSD50K.ground_truth" / "dev.csv", 'fname,labels,mids,split\n64760,"Electric_guitar,Music",x,val\n')
    wav(tmp_path / "fsd" / "FSD50K.dev_audio" / "64760.wav")
    write(tmp_path / "as" / "class_labels_indices.csv", "index,mid,display_name\n0,/m/09x0r,Speech\n1,/m/0bt9lr,Dog\n")
    write(tmp_path / "as" / "balanced_train_segments.csv",
          '# Segments csv\n# YTID, start_seconds, end_seconds, positive_labels\n--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/0bt9lr"\n')
    wav(tmp_path / "as" / "audio" / "Y--PJHxphWEs_30.000_40.000.wav")
    rows = {s: imp(tmp_path / s).rows for s, imp in (("esc", import_esc50), ("us", import_urbansound8k),
                                                      ("fsd", import_fsd50k), ("as", import_audioset))}
    assert rows["esc"][0]["labels"] == ["dog"] and "caption" not in rows["esc"][0]
    assert rows["us"][0]["labels"] == ["car_horn"]
    assert rows["fsd"][0]["labels"] == ["Electric_guitar", "Music"] and rows["fsd"][0]["split"] == "val"
    assert rows["fsd"][0]["key"] == "freesound:64760"
    assert rows["as"][0]["labels"] == ["Speech", "Dog"] and rows["as"][0]["key"] == "youtube:--PJHxphWEs"


def test_combine_drops_test_overlaps_and_duplicates_and_states_the_check(mock, tmp_path):
    sets = [import_set(n, mock) for n in ("audiocaps", "clotho", "wavcaps", "esc50")]
    s = combine(sets, tmp_path / "out")
    assert s["dropped"] == {"test_overlap_key": 1, "test_overlap_hash": 1, "duplicate_key": 1, "duplicate_hash": 0}
    assert s["test_clips_kept_out_of_training"]["ok"] is True
    train = read_manifest(tmp_path / "out" / "train.jsonl") + read_manifest(tmp_path / "out" / "val.jsonl")
    test = read_manifest(tmp_path / "out" / "test-audiocaps.jsonl") + read_manifest(tmp_path / "out" / "test-clotho.jsonl")
    # independent check: no training file has the bytes or the YouTube id of a test file
    test_bytes = {Path(r["audio"]).read_bytes() for r in test}
    assert not any(Path(r["audio"]).read_bytes() in test_bytes for r in train)
    assert not {r["key"] for r in train} & {r["key"] for r in test}
    assert s["train"] + s["val"] == len(train) == 36 - 1 - 6 - 3  # 36 listed, 1 missing, 6 test, 3 dropped
    assert s["needs_caption"] == 6 and len(read_manifest(tmp_path / "out" / "events.jsonl")) == 6
    missing = [json.loads(l) for l in (tmp_path / "out" / "missing.jsonl").read_text().splitlines()]
    assert [m["set"] for m in missing] == ["audiocaps"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["missing"] == 1


def test_expand_captions_one_row_per_caption():
    rows = [{"id": "c", "audio": "a.wav", "caption": "one", "captions": ["one", "two", "three"]}, {"id": "l", "audio": "b.wav"}]
    out = expand_captions(rows)
    assert [(r["id"], r.get("caption")) for r in out] == [("c", "one"), ("c_c2", "two"), ("c_c3", "three"), ("l", None)]
    assert all("captions" not in r for r in out)


def test_unknown_set_and_missing_folder(tmp_path):
    with pytest.raises(MaaError, match="unknown; choose from audiocaps"):
        import_set("nope", tmp_path)
    with pytest.raises(MaaError, match="no such folder"):
        import_set("clotho", tmp_path)
