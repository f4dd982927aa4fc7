"""LoRA adapters (maa.models.lora): attach/merge/stack on the tiny model, --lora in generate, `maa lora merge`."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from maa.commands.cli import app
from typer.testing import CliRunner

from maa.core.errors import MaaError
from maa.models.lora import LoRA, attach, load_lora, merge_into, parse_spec, save_lora, target_layers, unet_sha256

pytestmark = pytest.mark.usefixtures("one_thread")


def _unet(model_dir):
    from maa.infer.pipeline import load_model

    return load_model(model_dir).unet


def make_adapter(folder: Path, model_dir: Path, seed: int, rank: int = 2, targets=("attn", "ff", "conv")) -> Path:
    """An adapter for `model_dir` with random (nonzero) weights, as if trained."""
    torch.manual_seed(seed)
    lora = LoRA.for_unet(_unet(model_dir), rank, alpha=2 * rank, targets=targets)
    with torch.no_grad():
        for p in lora.parameters():
            p.normal_(0, 0.05)
    return save_lora(lora, folder, model_dir)


def _inputs():
    g = torch.Generator().manual_seed(3)
    return (torch.randn(2, 4, 10, 8, generator=g), torch.tensor([10, 800]), torch.randn(2, 5, 384, generator=g),
            torch.ones(2, 5, dtype=torch.bool))


def test_targets_pick_the_named_layers(model_dir):
    unet = _unet(model_dir)
    names = target_layers(unet, ("attn",))
    assert names and all(n.rsplit(".", 1)[1] in "qkvout" for n in names)
    assert all(n.endswith(("conv1", "conv2")) for n in target_layers(unet, ("conv",)))
    lora = LoRA.for_unet(unet, 4)
    assert all(float(layer.up.weight.detach().abs().sum()) == 0 for layer in lora.layers.values())  # starts as the base


def test_scale_zero_and_a_new_adapter_are_the_base_bit_for_bit(tmp_path, model_dir):
    unet = _unet(model_dir)
    x = _inputs()
    with torch.no_grad():
        base = unet(*x)
        lora, _ = load_lora(make_adapter(tmp_path / "a", model_dir, 0), unet)
        h = attach(unet, lora, 0.0)
        assert torch.equal(unet(*x), base)
        h.remove()
        h = attach(unet, lora, 1.0)
        assert not torch.allclose(unet(*x), base, atol=1e-4)  # the adapter does something
        h.remove()
        assert torch.equal(unet(*x), base)  # removed: the base again


def test_merged_equals_attached_and_two_adapters_stack(tmp_path, model_dir):
    x = _inputs()
    a, _ = load_lora(make_adapter(tmp_path / "a", model_dir, 1))
    b, _ = load_lora(make_adapter(tmp_path / "b", model_dir, 2, rank=3, targets=("attn",)))
    with torch.no_grad():
        hooked = _unet(model_dir)
        base = hooked(*x)
        h = attach(hooked, a, 0.7)
        only_a = hooked(*x)
        attach(hooked, b, -0.5, h)
        both = hooked(*x)
        merged = _unet(model_dir)
        merge_into(merged, a, 0.7)
        merge_into(merged, b, -0.5)
        torch.testing.assert_close(merged(*x), both, rtol=1e-4, atol=1e-5)
    # stacking is the sum of the changes: each adapter moves the output, and B's part is not A's
    assert not torch.allclose(both, only_a, atol=1e-4) and not torch.allclose(only_a, base, atol=1e-4)


def test_parse_spec_one_line_each(tmp_path, model_dir):
    folder = make_adapter(tmp_path / "run" / "lora", model_dir, 0)
    assert parse_spec(str(tmp_path / "run")).path == folder and parse_spec(str(tmp_path / "run")).scale == 1.0
    assert parse_spec(f"{tmp_path / 'run'}:0.25").scale == 0.25
    for text, match in [(f"{tmp_path / 'run'}:abc", "must be a number"), (str(tmp_path / "nope"), "no such folder"),
                        (str(tmp_path), "no lora.json"), (f"{tmp_path / 'run'}:nan", "finite")]:
        with pytest.raises(MaaError, match=match):
            parse_spec(text)


def _gen(*args):
    return CliRunner().invoke(app, ["generate", *[str(a) for a in args]])


@pytest.mark.slow
def test_generate_with_lora_records_replays_merges_and_refuses_another_base(tmp_path, model_dir):
    a = make_adapter(tmp_path / "a", model_dir, 1)
    common = ["--model", model_dir, "--steps", 2, "-d", 0.5, "-q", "--seed", 5]
    assert _gen("a soft bell", "-o", tmp_path / "base.wav", *common).exit_code == 0
    r = _gen("a soft bell", "-o", tmp_path / "zero.wav", "--lora", f"{a}:0", *common)
    assert r.exit_code == 0, r.output
    assert np.array_equal(sf.read(str(tmp_path / "zero.wav"))[0], sf.read(str(tmp_path / "base.wav"))[0])
    r = _gen("a soft bell", "-o", tmp_path / "lora.wav", "--lora", f"{a}:0.8", *common)
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["lora"] == [{"path": str(a.resolve()), "sha256": row["lora"][0]["sha256"], "scale": 0.8}]
    assert len(row["lora"][0]["sha256"]) == 16
    lora_audio = sf.read(str(tmp_path / "lora.wav"))[0]
    assert not np.allclose(lora_audio, sf.read(str(tmp_path / "base.wav"))[0], atol=1e-4)
    # --replay takes the adapters from the record: the same samples
    assert _gen("--replay", tmp_path / "lora.wav", "-o", tmp_path / "again.wav", "-q").exit_code == 0
    assert np.array_equal(sf.read(str(tmp_path / "again.wav"))[0], lora_audio)
    # merged: a plain model folder that generates (nearly) the same audio without --lora
    r = CliRunner().invoke(app, ["lora", "merge", str(model_dir), f"{a}:0.8", "-o", str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "merged" / "merged.json").read_text())["lora"][0]["scale"] == 0.8
    r = _gen("a soft bell", "-o", tmp_path / "m.wav", *[c if c != model_dir else tmp_path / "merged" for c in common])
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(sf.read(str(tmp_path / "m.wav"), dtype="float32")[0], lora_audio, atol=2e-3)
    r = CliRunner().invoke(app, ["lora", "merge", str(model_dir), str(a), "-o", str(tmp_path / "merged")])
    assert r.exit_code == 1 and "exists" in r.output
    # an adapter for another base: one line, unless --force
    other = make_adapter(tmp_path / "other", tmp_path / "merged", 1)
    assert unet_sha256(tmp_path / "merged") != unet_sha256(model_dir)
    r = _gen("a soft bell", "-o", tmp_path / "x.wav", "--lora", other, *common)
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "another base model" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.wav").exists()
    r = _gen("a soft bell", "-o", tmp_path / "x.wav", "--lora", other, "--force", *common)
    assert r.exit_code == 0 and "applied anyway" in r.output, r.output
    r = CliRunner().invoke(app, ["lora", "merge", str(model_dir), str(other), "-o", str(tmp_path / "m2")])
    assert r.exit_code == 1 and "another base model" in r.output and not (tmp_path / "m2").exists()
    for spec, match in [(f"{a}:abc", "must be a number"), (tmp_path / "missing", "no such folder")]:
        r = _gen("a soft bell", "-o", tmp_path / "y.wav", "--lora", spec, *common)
        assert r.exit_code == 1 and r.output.count("error:") == 1 and match in r.output, r.output


def test_pipeline_takes_lora_and_refuses_another_base(tmp_path, model_dir):
    import maa

    a = make_adapter(tmp_path / "a", model_dir, 1)
    pipe = maa.load_pipeline(model_dir, device="cpu", lora=[f"{a}:0.5"])
    out = pipe("a soft bell", duration=0.5, steps=2)[0]
    assert out.record["lora"] == [{"path": str(a.resolve()), "sha256": out.record["lora"][0]["sha256"], "scale": 0.5}]
    meta = json.loads((a / "lora.json").read_text())
    meta["base"]["unet_sha256"] = "0" * 16
    (a / "lora.json").write_text(json.dumps(meta))
    r = _gen("a soft bell", "-o", tmp_path / "x.wav", "--lora", a, "--model", model_dir, "--steps", 1, "-d", 0.5, "-q")
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "another base model (UNet hash 0000" in r.output
    r = _gen("a soft bell", "-o", tmp_path / "x.wav", "--lora", f"{a}:x", "--model", model_dir, "-q")
    assert r.exit_code == 1 and "the scale after ':' must be a number" in r.output
