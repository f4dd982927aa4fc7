"""`maa train-ldm --init MODEL --lora RANK`: only the adapter trains, the base is read-only, resume is exact."""

import json

import pytest
import torch
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.checkpoint import load_safetensors, sha256_file
from tests.ldm_fixtures import write_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(manifest, model_dir, run, *extra):
    args = ["train-ldm", str(manifest), "--init", str(model_dir), "-o", str(run), "-b", "2", "--duration", "0.5",
            "--val-fraction", "0", "--lr", "1e-2", "--ema", "0", "-q", *[str(a) for a in extra]]
    return CliRunner().invoke(app, args)


def _files(model_dir):
    return {p.relative_to(model_dir): sha256_file(p) for p in sorted(model_dir.rglob("*")) if p.is_file()}


def test_lora_trains_only_the_adapter(tmp_path, model_dir):
    manifest = write_clips(tmp_path / "clips", n=4)
    before = _files(model_dir)
    r = _train(manifest, model_dir, tmp_path / "full", "--lora", 2, "--lora-targets", "attn,conv", "--steps", 2)
    assert r.exit_code == 0, r.output
    assert _files(model_dir) == before  # the base model folder is only read
    meta = json.loads((tmp_path / "full" / "lora" / "lora.json").read_text())
    assert meta["rank"] == 2 and meta["alpha"] == 2.0 and meta["targets"] == ["attn", "conv"]
    assert meta["base"]["unet_sha256"] == sha256_file(model_dir / "ldm" / "unet.safetensors")[:16]
    assert meta["data"]["clips"] == 4 and meta["data"]["labels"] == {"bell": 2, "tone": 2}
    assert not (tmp_path / "full" / "ldm").exists()  # no copy of the base UNet
    weights = load_safetensors(tmp_path / "full" / "lora" / "lora.safetensors")
    assert set(weights) and all(k.endswith((".down.weight", ".up.weight")) for k in weights)
    assert any(k.endswith(".conv1.up.weight") for k in weights) and not any(".ff." in k for k in weights)
    assert all(float(v.abs().sum()) > 0 for k, v in weights.items() if k.endswith(".up.weight"))  # it learned
    state = torch.load(tmp_path / "full" / "trainer_state.pt", weights_only=True)
    assert list(state["modules"]) == ["lora"] and set(state["modules"]["lora"]) == set(weights)
    # the optimizer holds state for the adapter's tensors only
    n_opt = len(state["optimizers"]["lora"]["state"])
    assert n_opt == len(weights)


@pytest.mark.slow
def test_lora_resumes_exactly(tmp_path, model_dir):
    manifest = write_clips(tmp_path / "clips", n=4)
    r = _train(manifest, model_dir, tmp_path / "full", "--lora", 2, "--lora-targets", "attn,conv", "--steps", 4)
    assert r.exit_code == 0, r.output
    weights = load_safetensors(tmp_path / "full" / "lora" / "lora.safetensors")
    # 2 steps, then --resume to 4: the same adapter bit for bit
    r = _train(manifest, model_dir, tmp_path / "half", "--lora", 2, "--lora-targets", "attn,conv", "--steps", 2)
    assert r.exit_code == 0, r.output
    r = _train(manifest, model_dir, tmp_path / "half", "--lora", 2, "--lora-targets", "attn,conv", "--steps", 4)
    assert r.exit_code == 1 and "--resume" in r.output  # the run-folder rule
    r = _train(manifest, model_dir, tmp_path / "half", "--lora", 2, "--lora-targets", "attn,conv", "--steps", 4, "--resume")
    assert r.exit_code == 0, r.output
    resumed = load_safetensors(tmp_path / "half" / "lora" / "lora.safetensors")
    diff = max(float((resumed[k] - weights[k]).abs().max()) for k in weights)
    assert diff == 0, diff


def test_bad_lora_values_one_line_each(tmp_path, model_dir):
    manifest = write_clips(tmp_path / "clips", n=2)
    run = tmp_path / "run"
    for extra, match in [(["--lora", 0], "--lora 0: the rank must be a whole number >= 1"),
                         (["--lora", -3], "--lora -3: the rank must be"),
                         (["--lora", 2, "--lora-targets", "attn,mlp"], "--lora-targets attn,mlp: want"),
                         (["--lora", 2, "--lora-alpha", -1], "--lora-alpha -1"),
                         (["--lora-alpha", 4], "only with --lora RANK")]:
        r = _train(manifest, model_dir, run, *extra, "--steps", 1)
        assert r.exit_code != 0 and r.output.count("error:") == 1 and match in r.output, (extra, r.output)
        assert "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train-ldm", str(manifest), "-o", str(run), "--lora", "2", "--steps", "1"])
    assert r.exit_code == 1 and "--init MODEL" in r.output
