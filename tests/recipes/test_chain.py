"""The paper-scale chain (recipes/datasets.mk) end to end on the mock data sets, tiny presets, CPU.

mock-datasets -> import -> mel -> caption -> pool -> train-vae -> train-clap -> train-ldm ->
train-vocoder -> bundle -> generate the AudioCaps test prompts -> eval --protocol make-an-audio
(PANNs/VGGish in their official layouts with random weights: the real ones cannot be downloaded
here). Then: a rerun does nothing, and a stage whose stamp is gone resumes its run folder.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import librosa
import pytest
import torch

from maa.eval.extractors import _ConvStft
from maa.eval.protocol import PANNS_FILE, VGGISH_FILE
from tests.eval.test_extractors import (
    cnn14_16k_layout,
    random_state_dict,
    vggish_layout,
)

REPO = Path(__file__).resolve().parents[2]
STAGES = ["recipes.datasets import", "maa mel", "maa caption", "maa reprogram", "maa train-vae", "maa train-clap",
          "maa train-ldm", "maa train-vocoder", "recipes.bundle", "maa generate", "maa eval"]
TINY = ["PRESET=tiny", "GPUS=0", "MEL_SHARDS=2", "MEL_ARGS=--workers 0", "VAE_STEPS=2", "VAE_BATCH=2", "VAE_ARGS=--frames 64 --ckpt-every 2 --val-every 2",
        "CLAP_STEPS=2", "CLAP_BATCH=4", "CLAP_ARGS=--frames 64 --channels 8,16 --embed-dim 16", "LDM_STEPS=2",
        "LDM_BATCH=2", "LDM_ARGS_EXTRA=--duration 1 --ckpt-every 1", "VOC_PRESET=tiny", "VOC_STEPS=2", "VOC_BATCH=2",
        "POOL_COUNT=4", "POOL_SECONDS=3", "GEN_STEPS=2", "GEN_ARGS="]


def write_eval_weights(folder: Path) -> None:
    """PANNs CNN14 16 kHz and VGGish files in the official layouts (random weights, real front end)."""
    folder.mkdir(parents=True)
    sd = random_state_dict(cnn14_16k_layout())
    stft = _ConvStft(512, 160)
    sd["spectrogram_extractor.stft.conv_real.weight"] = stft.conv_real.weight.data.clone()
    sd["spectrogram_extractor.stft.conv_imag.weight"] = stft.conv_imag.weight.data.clone()
    sd["logmel_extractor.melW"] = torch.tensor(librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T)
    torch.save({"iteration": 0, "model": sd}, folder / PANNS_FILE)
    torch.save(random_state_dict(vggish_layout(), seed=1), folder / VGGISH_FILE)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_chain_on_mock_datasets(tmp_path):
    write_eval_weights(tmp_path / "weights")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MAA_EVAL_WEIGHTS": str(tmp_path / "weights"),
           "MAA_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run_dir = tmp_path / "run"
    args = ["DATA=audiocaps clotho wavcaps esc50", f"ROOT={tmp_path / 'mock'}", f"RUN={run_dir}", *TINY]

    def make(*targets, check=True):
        p = subprocess.run(["make", "-C", str(REPO), *targets, *args], env=env, capture_output=True, text=True, check=False)
        if check and p.returncode:
            pytest.fail(f"make {' '.join(targets)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    make("mock-datasets", f"MOCK_ROOT={tmp_path / 'mock'}")
    plan = make("-n", "model").stdout
    at = [plan.find(s) for s in STAGES]
    assert -1 not in at, [s for s, i in zip(STAGES, at) if i < 0]
    assert at.index(min(at)) == 0 and plan.find("maa eval") == max(at)  # import first, eval last
    assert not (run_dir / ".import.done").exists()                        # -n only prints

    out = make("model").stdout
    assert "model: " in out
    summary = json.loads((run_dir / "data" / "summary.json").read_text())
    assert summary["test_clips_kept_out_of_training"]["ok"] is True
    assert summary["dropped"]["test_overlap_key"] == 1 and summary["dropped"]["test_overlap_hash"] == 1
    assert summary["missing"] == 1
    mels = (run_dir / "mels.jsonl").read_text().splitlines()
    assert len(mels) == summary["train"]                                  # both mel shards merged
    train = [json.loads(l) for l in (run_dir / "train.jsonl").read_text().splitlines()]
    assert len(train) == summary["train_captions"]                        # one row per caption
    assert all(r.get("caption") and r.get("mel") for r in train)          # label-only clips got captions
    assert any(r.get("caption_source") in ("labels", "retrieval") for r in train)
    m = json.loads((run_dir / "metrics.json").read_text())
    card = m["eval_card"]
    assert card["protocol"] == "make-an-audio" and card["clip_seconds"] == 10.0
    assert card["clips"]["generated"] == card["clips"]["reference"] == card["clips"]["pairs"] == 4
    assert {e["name"] for e in card["extractors"]} == {"panns-cnn14", "vggish", "maa-clap"}
    assert all(len(e["sha256"]) == 64 for e in card["extractors"])
    for key in ("fd", "kl", "is"):
        assert key in m["extractors"]["panns-cnn14"]
    assert "fad" in m["extractors"]["vggish"] and "clap_score" in m["extractors"]["maa-clap"]

    # a rerun finds everything done
    assert make("-q", str(run_dir / "metrics.json"), check=False).returncode == 0
    # an interrupted stage (stamp gone) continues its run folder with --resume, up to the new step count
    (run_dir / ".ldm.done").unlink()
    args[args.index("LDM_STEPS=2")] = "LDM_STEPS=3"
    again = make("stage-ldm").stdout
    assert "train-ldm" in again and "--resume" in again
    steps = [json.loads(l)["step"] for l in (run_dir / "ldm-run" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3


def test_pair_and_merge_steps(tmp_path):
    """generate's rows (names may carry a suffix) -> eval rows under the test ids; shard manifests joined once."""
    from recipes.datasets import main

    ref = tmp_path / "test.jsonl"
    ref.write_text("".join(json.dumps({"id": i, "audio": f"{i}.wav", "caption": f"cap {i}"}) + "\n"
                           for i in ("ac_a", "ac_a_b")))
    gen = tmp_path / "generated.jsonl"
    gen.write_text(json.dumps({"id": "ac_a_b-0123456789abcdef", "prompt": "cap ac_a_b", "path": str(tmp_path / "x.wav"),
                               "candidates": 4}) + "\n" + json.dumps({"id": "ac_a", "prompt": "cap ac_a", "path": "y.wav"}) + "\n")
    main(["pair", str(gen), str(ref), "-o", str(tmp_path / "gen.jsonl")])
    rows = [json.loads(l) for l in (tmp_path / "gen.jsonl").read_text().splitlines()]
    assert [(r["id"], r["caption"], r["candidates"]) for r in rows] == [("ac_a_b", "cap ac_a_b", 4), ("ac_a", "cap ac_a", 1)]
    gen.write_text(json.dumps({"id": "other", "prompt": "p", "path": "z.wav"}) + "\n")
    with pytest.raises(SystemExit, match="matches no clip"):
        main(["pair", str(gen), str(ref), "-o", str(tmp_path / "gen.jsonl")])
    for k in range(2):
        (tmp_path / f"manifest-{k}-of-2.jsonl").write_text(
            "".join(json.dumps({"id": i, "audio": "a.wav"}) + "\n" for i in [f"c{k}"] + ["c0"] * k))  # c0 twice
    main(["merge", str(tmp_path / "manifest-0-of-2.jsonl"), str(tmp_path / "manifest-1-of-2.jsonl"), "-o", str(tmp_path / "m.jsonl")])
    assert [json.loads(l)["id"] for l in (tmp_path / "m.jsonl").read_text().splitlines()] == ["c0", "c1"]
