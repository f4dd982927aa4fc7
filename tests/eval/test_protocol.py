"""`maa eval --protocol make-an-audio`: missing weights fail in one line; clips are cut/padded to 10 s,
one caption per clip, 10 IS splits; the eval card names the extractors with their weights' SHA-256."""

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from maa.core.errors import MaaError
from maa.eval import metrics
from maa.eval.extractors import Embedded, Extractor
from maa.eval.protocol import (
    LAION_FILE,
    PANNS_FILE,
    VGGISH_FILE,
    evaluate_protocol,
    protocol_extractors,
    reranking_of,
)
from tests.conftest import real_ish


class Recorder(Extractor):
    """Cheap features of the signal; remembers the length of every clip it was given."""

    sample_rate = 16000

    def __init__(self, spec):
        self.name, _, self.weights = spec.partition(":")
        self.fingerprint = f"{self.name}-test"
        self.dim, self.n_classes = 3, (3 if self.name == "panns-cnn14" else 0)
        self.frame_level = self.name == "vggish"
        self.lengths = []

    @staticmethod
    def feats(w):
        return np.array([np.abs(w).mean(), w.std(), np.abs(np.diff(w)).mean()], np.float32)

    def embed(self, wavs):
        self.lengths += [len(w) for w in wavs]
        e = np.stack([self.feats(w) for w in wavs])
        frames = [np.stack([self.feats(w[i:i + 16000]) for i in range(0, len(w), 16000)]) for w in wavs]
        return Embedded(e, e * 10 if self.n_classes else None, frames if self.frame_level else None)


class RecorderClap(Recorder):
    def embed_text(self, texts):
        return np.stack([[1.0, len(t) / 10, 0.5] for t in texts])


@pytest.fixture
def layout(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / PANNS_FILE).write_bytes(b"panns stand-in")
    (weights / VGGISH_FILE).write_bytes(b"vggish stand-in")
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    rows = []
    for i, seconds in enumerate((3.0, 12.0, 5.0)):  # one clip longer than 10 s: cut; the others padded
        sf.write(gen / f"ac_{i}.wav", real_ish(seconds, seed=i), 16000)
        sf.write(ref / f"ac_{i}.wav", real_ish(seconds, seed=10 + i), 16000)
        for k in range(5):  # five captions per clip, as in the AudioCaps test set
            rows.append({"id": f"ac_{i}" if k == 0 else f"ac_{i}_c{k + 1}", "audio": f"ref/ac_{i}.wav",
                         "caption": f"clip {i} caption {k + 1}"})
    (tmp_path / "ref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (gen / "generated.jsonl").write_text("".join(json.dumps({"id": f"ac_{i}", "prompt": "p", "candidates": 4}) + "\n"
                                                 for i in range(3)))
    return tmp_path


def test_missing_weights_fail_in_one_line_naming_files_and_folder(tmp_path):
    with pytest.raises(MaaError) as e:
        protocol_extractors("make-an-audio", ["aisfx"], tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    for part in (PANNS_FILE, VGGISH_FILE, LAION_FILE, str(tmp_path), "MAA_EVAL_WEIGHTS"):
        assert part in msg
    with pytest.raises(MaaError, match="unknown; choose from make-an-audio"):
        protocol_extractors("audioldm", [], tmp_path)


def test_given_specs_win_and_default_aisfx_is_dropped(layout, tmp_path):
    w = layout / "weights"
    own = tmp_path / "own.pth"
    own.write_bytes(b"x")
    specs = protocol_extractors("make-an-audio", [f"panns-cnn14:{own}", "maa-clap:runs/clap", "aisfx"], w)
    assert specs == [f"panns-cnn14:{own}", f"vggish:{w / VGGISH_FILE}", "maa-clap:runs/clap", "aisfx"]
    (w / LAION_FILE).write_bytes(b"laion")
    assert protocol_extractors("make-an-audio", ["aisfx"], w) == [
        f"panns-cnn14:{w / PANNS_FILE}", f"vggish:{w / VGGISH_FILE}", f"laion-clap:{w / LAION_FILE}"]


def test_protocol_pads_to_10s_one_caption_per_clip_and_writes_the_card(layout):
    made = {}

    def load(spec, device):
        made[spec.partition(":")[0]] = ex = (RecorderClap if spec.startswith("maa-clap") else Recorder)(spec)
        return ex

    clap_dir = layout / "clap"
    clap_dir.mkdir()
    (clap_dir / "model.safetensors").write_bytes(b"clap stand-in")
    res = evaluate_protocol(str(layout / "gen"), str(layout / "ref.jsonl"), "make-an-audio",
                            [f"maa-clap:{clap_dir}"], load=load, folder=layout / "weights")
    # every extractor saw 3 + 3 clips, each exactly 10 s at 16 kHz (cut or zero-padded)
    for ex in made.values():
        assert ex.lengths == [160000] * 6
    assert set(res["extractors"]) == {"panns-cnn14", "vggish", "maa-clap"}
    # FD against a direct computation on the padded audio
    def padded(folder, i):
        w = sf.read(layout / folder / f"ac_{i}.wav", dtype="float32")[0][:160000]
        return np.pad(w, (0, 160000 - len(w)))
    g = np.stack([Recorder.feats(padded("gen", i)) for i in range(3)])
    r = np.stack([Recorder.feats(padded("ref", i)) for i in range(3)])
    panns = res["extractors"]["panns-cnn14"]
    assert panns["fd"] == pytest.approx(metrics.frechet_distance_of(g, r), rel=1e-5)
    assert panns["is_splits"] == 3 and panns["n_pairs"] == 3  # 10 splits asked for, capped at the clip count
    assert res["extractors"]["maa-clap"]["n_prompts"] == 3
    card = res["eval_card"]
    assert card["protocol"] == "make-an-audio" and card["clip_seconds"] == 10.0 and card["sample_rate"] == 16000
    assert card["caption_policy"]["rows"] == 15 and card["caption_policy"]["clips"] == 3
    assert card["clips"] == {"generated": 3, "reference": 3, "pairs": 3, "paired_by": "id", "skipped": 0}
    assert card["reranking"]["used"] is True and card["reranking"]["candidates"] == 4
    hashes = {e["name"]: e.get("sha256") for e in card["extractors"]}
    assert hashes["panns-cnn14"] == hashlib.sha256(b"panns stand-in").hexdigest()
    assert hashes["vggish"] == hashlib.sha256(b"vggish stand-in").hexdigest()
    assert hashes["maa-clap"] == hashlib.sha256(b"clap stand-in").hexdigest()
    assert card["is_splits"] == 10
    assert all(e["fingerprint"].endswith("-pad10s") for e in (b["extractor"] for b in res["extractors"].values()))


def test_reranking_read_from_the_generate_manifest(tmp_path):
    assert reranking_of(str(tmp_path))["used"] is None
    (tmp_path / "g.jsonl").write_text(json.dumps({"id": "a", "prompt": "x", "path": "a.wav"}) + "\n")
    assert reranking_of(str(tmp_path)) == {"used": False, "candidates": 1, "from": str(tmp_path / "g.jsonl")}


def test_cli_protocol_without_weights_is_one_error_line(layout, tmp_path, monkeypatch):
    from maa.commands.cli import app
    from typer.testing import CliRunner

    monkeypatch.setenv("MAA_EVAL_WEIGHTS", str(tmp_path / "nothing"))
    res = CliRunner().invoke(app, ["eval", str(layout / "gen"), str(layout / "ref.jsonl"), "--protocol", "make-an-audio"])
    assert res.exit_code == 1
    errors = [l for l in res.output.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and PANNS_FILE in errors[0] and "Traceback" not in res.output
