"""`make finetune` (recipes/finetune.mk + recipes/finetune.py): folder -> captions -> held-out split -> LoRA -> card."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recipes.finetune import card, import_folder, prompts, split

REPO = Path(__file__).resolve().parents[2]


def _folder(root: Path, per_label: int = 3) -> Path:
    """root/<label>/clipN.wav for two labels, plus one clip without a label."""
    import numpy as np

    from maa.core.audio import save_wav

    t = np.arange(8000) / 16000
    for k, label in enumerate(["soft_bell", "buzz"]):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            save_wav(root / label / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 200 * k + 20 * i) * t)).astype(np.float32))
    save_wav(root / "loose.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32))
    return root


def test_import_split_prompts(tmp_path):
    folder = _folder(tmp_path / "clips", per_label=4)
    rows = import_folder(folder, tmp_path / "clips.jsonl")
    by_id = {r["id"]: r for r in rows}
    # the sub-folder names the sound: label and caption, `_` read as a space; the loose clip has no text yet
    assert by_id["soft_bell__clip0"]["labels"] == ["soft bell"] and by_id["soft_bell__clip0"]["caption"] == "soft bell"
    assert "caption" not in by_id["loose"] and by_id["loose"]["duration"] == 0.5
    train, held = split(tmp_path / "clips.jsonl", tmp_path / "data", holdout=0.5)
    # held out round-robin over the labels, never a label's last clip; the uncaptioned clip is left out
    assert len(held) == 2 and {r["labels"][0] for r in held} == {"soft bell", "buzz"}
    assert {r["id"] for r in train} | {r["id"] for r in held} == set(by_id) - {"loose"}
    assert prompts(tmp_path / "data" / "heldout.jsonl", tmp_path / "prompts.txt") == 2
    assert sorted((tmp_path / "prompts.txt").read_text().splitlines()) == ["buzz__clip3|buzz", "soft_bell__clip3|soft bell"]
    (tmp_path / "few.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "caption": "x"}) + "\n")
    from maa.core.errors import MaaError

    with pytest.raises(MaaError, match="needs a few more"):
        split(tmp_path / "few.jsonl", tmp_path / "few")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_finetune_end_to_end(tmp_path, model_dir):
    folder = _folder(tmp_path / "clips")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MAA_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    args = [f"FOLDER={folder}", f"MODEL={model_dir}", f"RUN={run}", "STEPS=3", "BATCH=2", "LORA_RANK=2", "FT_DUR=0.5",
            "HOLDOUT=0.3"]

    def make(*targets, check=True):
        p = subprocess.run(["make", "-C", str(REPO), *targets, *args], env=env, capture_output=True, text=True)
        if check and p.returncode:
            pytest.fail(f"make {' '.join(targets)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    make("finetune")
    out = json.loads((run / "card.line").read_text())
    # 7 clips with text after captioning (the loose one too), 2 held out
    assert out["rank"] == 2 and out["steps"] == 3 and out["clips"] == 5 and out["held_out"] == 2
    for side in ("before", "after"):
        assert {"fd_aisfx", "clap_score_maa-clap"} <= set(out[side]), out[side]
    assert out["before"]["fd_aisfx"] != out["after"]["fd_aisfx"]  # the adapter changed the generated audio
    assert "| fd_aisfx |" in (run / "CARD.md").read_text()
    gen = json.loads((run / "eval" / "after.jsonl").read_text().splitlines()[0])
    assert gen["lora"][0]["scale"] == 1.0
    # the loose clip was captioned by `maa caption` (retrieval from the bank)
    caps = {json.loads(x)["id"]: json.loads(x) for x in (run / "data" / "captioned.jsonl").read_text().splitlines()}
    assert caps["loose"]["caption_source"] == "retrieval"
    # everything done: a rerun has nothing to do; a lost stamp reruns only its stage
    assert make("-q", str(run / "CARD.md"), check=False).returncode == 0
    (run / "CARD.md").unlink()
    again = make("finetune").stdout
    assert "recipes.finetune card" in again and "train-ldm" not in again


def test_card_reads_the_run(tmp_path):
    run = tmp_path / "run"
    (run / "adapter" / "lora").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "eval").mkdir()
    (run / "adapter" / "lora" / "lora.json").write_text(json.dumps({
        "kind": "maa-lora", "rank": 4, "alpha": 4.0, "targets": ["attn", "ff"], "train": {"steps_done": 10, "batch_size": 2},
        "base": {"model": "m", "unet_sha256": "ab"}, "data": {"clips": 5, "labels": {"x": 5}}}))
    (run / "adapter" / "lora" / "lora.safetensors").write_bytes(b"0" * 2_000_000)
    (run / "adapter" / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 10, "samples_per_s": 4.0}) + "\n")
    (run / "data" / "heldout.jsonl").write_text("{}\n{}\n")
    for side, fd in (("before", 30.0), ("after", 20.0)):
        (run / "eval" / f"{side}.metrics.json").write_text(json.dumps(
            {"extractors": {"aisfx": {"fd": fd}, "maa-clap:x": {"fd": 1.0, "clap_score": 0.5}}}))
    out = card(run)
    assert out["adapter_mb"] == 2.0 and out["steps_per_s"] == 2.0 and out["held_out"] == 2
    assert out["before"] == {"fd_aisfx": 30.0, "fd_maa-clap": 1.0, "clap_score_maa-clap": 0.5}
    assert "| fd_aisfx | 30 | 20 |" in (run / "CARD.md").read_text()
