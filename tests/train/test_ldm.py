import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maa.core.audio import frames_for_duration, seconds_for_frames
from maa.core.errors import MaaError
from maa.infer.pipeline import load_model, resolve_model_dir
from maa.train.ldm import (
    CaptionedMels,
    LDMSetup,
    LDMTask,
    encode_latents,
    measure_scale,
)
from tests.ldm_fixtures import write_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def test_duration_rounding():
    assert frames_for_duration(10.0) == 624 and seconds_for_frames(624) == 10.0  # the paper's 10 s crop
    assert frames_for_duration(1.0) == 64 and frames_for_duration(0.01) == 8
    assert all(frames_for_duration(d) % 8 == 0 for d in (0.3, 1.7, 2.5, 7.77, 30.0))
    assert abs(seconds_for_frames(frames_for_duration(4.0)) - 4.0) <= 0.064 + 1e-9  # within half a latent frame
    with pytest.raises(MaaError, match="positive"):
        frames_for_duration(0)


def test_model_folder_round_trip_and_errors(model_dir, tmp_path, monkeypatch):
    m = load_model(model_dir)
    assert m.unet.cfg.context_dim == 384 and m.vocoder.kind == "griffin-lim" and m.config["kind"] == "ldm"
    assert resolve_model_dir(model_dir / "ldm") == model_dir  # RUN/ldm is accepted too
    with pytest.raises(MaaError, match="not a generation model folder"):
        resolve_model_dir(tmp_path)
    import maa.infer.pipeline

    assert resolve_model_dir(None) == maa.infer.pipeline.BUNDLED_MODEL  # the bundled model ships with the package
    monkeypatch.setattr(maa.infer.pipeline, "BUNDLED_MODEL", tmp_path / "not-installed")
    with pytest.raises(MaaError, match="no bundled model yet; train one with"):
        resolve_model_dir(None)


def test_dataset_crops_cache_and_scale(tmp_path, model_dir):
    from maa.models.vae import load_vae

    rows = [json.loads(l) for l in write_clips(tmp_path, n=4, seconds=1.04).read_text().splitlines()]
    for r in rows:
        r["audio"] = str(tmp_path / r["audio"])
    vae = load_vae(model_dir / "vae")
    ds = CaptionedMels(rows, frames=64)
    item = ds.get(0, np.random.default_rng(0))
    assert item["mel"].shape == (1, 80, 64) and item["caption"] == "a soft bell rings" and not item["cached"]
    # a clip of exactly the crop length: its cached latent is the latent of its mel
    ds.latents = encode_latents(vae, [ds.mel(i) for i in range(4)], 64)
    cached = ds.get(0, np.random.default_rng(0))
    assert cached["cached"] and cached["latent"].shape == (4, 10, 8)
    ref = vae.encode_mel(torch.from_numpy(ds.mel(0).astype(np.float32))[None])[0]
    assert torch.allclose(cached["latent"], ref, atol=1e-2)  # float16 storage
    s = measure_scale(vae, CaptionedMels(rows, frames=64))
    z = torch.stack([vae.encode_mel(torch.from_numpy(tile).float()[None])[0] for tile in
                     [np.asarray(CaptionedMels(rows, 64)[i]["mel"][0]) for i in range(4)]])
    assert s == pytest.approx(1 / float(z.std()), rel=1e-4)


def test_reprogrammed_items(tmp_path):
    from maa.data.reprogram import ComposeConfig, Reprogrammer, load_events

    rows = [json.loads(l) for l in write_clips(tmp_path, n=4).read_text().splitlines()]
    for r in rows:
        r["audio"] = str(tmp_path / r["audio"])
    rp = Reprogrammer(load_events(rows), ComposeConfig(duration=1.04))
    ds = CaptionedMels(rows, frames=64, reprogrammer=rp, reprogram_prob=1.0)
    item = ds.get(0, np.random.default_rng(3))
    assert item["mel"].shape == (1, 80, 64)
    assert "bell" in item["caption"] and ("tone" in item["caption"] or "buzzing" in item["caption"])
    assert ds[0]["caption"] == "a soft bell rings"  # no rng (validation): the row itself


@pytest.mark.slow  # ~6 s
def test_training_loss_falls(tmp_path, model_dir):
    from maa.models.diffusion import DiffusionConfig
    from maa.models.unet import preset
    from maa.models.vae import load_vae
    from maa.parts.text import load_text_encoder
    from maa.train.loop import TrainConfig, read_metrics, train

    rows = [json.loads(l) for l in write_clips(tmp_path / "clips", n=8).read_text().splitlines()]
    for r in rows:
        r["audio"] = str(tmp_path / "clips" / r["audio"])
    vae = load_vae(model_dir / "vae")
    ds = CaptionedMels(rows, frames=32)
    setup = LDMSetup(unet=preset("tiny"), diffusion=DiffusionConfig(scale_factor=measure_scale(vae, ds)), frames=32)
    task = LDMTask(setup, vae, load_text_encoder("minilm"))
    cfg = TrainConfig(out_dir=tmp_path / "run", steps=60, batch_size=8, lr=2e-3, log_every=1, ckpt_every=1000,
                      val_every=1000, quiet=True)
    train(task, ds, None, cfg)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if r.get("kind") == "train"]
    assert len(losses) == 60 and np.isfinite(losses).all()
    assert np.mean(losses[-15:]) < 0.6 * np.mean(losses[:5])
    saved = json.loads((tmp_path / "run" / "ldm" / "config.json").read_text())
    assert saved["diffusion"]["scale_factor"] == setup.diffusion.scale_factor
    assert (tmp_path / "run" / "ldm" / "unet.safetensors").exists()


def test_cli_train_ldm_then_generate(tmp_path, model_dir):
    from maa.commands.cli import app

    manifest = write_clips(tmp_path / "clips", n=6)
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train-ldm", str(manifest), "--vae", str(model_dir / "vae"), "-o", str(run),
                                 "--preset", "tiny", "--steps", "4", "-b", "2", "--duration", "0.5", "--val-fraction",
                                 "0.34", "--val-every", "4", "--cache-latents", "--reprogram-prob", "0.5", "-q"])
    assert r.exit_code == 0, r.output
    final = json.loads(r.stdout.strip().splitlines()[-1])
    assert final["step"] == 4 and "val_loss" in final
    cfg = json.loads((run / "ldm" / "config.json").read_text())
    assert cfg["train_frames"] == 32 and cfg["diffusion"]["scale_factor"] > 0 and cfg["text_encoder"] == "minilm"
    assert (run / "vae" / "vae.safetensors").exists()  # RUN is a complete model folder
    r = CliRunner().invoke(app, ["generate", "a soft bell rings", "-o", str(tmp_path / "b.wav"), "--model", str(run),
                                 "--duration", "0.5", "--steps", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["path"] == str(tmp_path / "b.wav")


def test_cli_train_ldm_errors(tmp_path, model_dir):
    from maa.commands.cli import app

    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    r = CliRunner().invoke(app, ["train-ldm", str(tmp_path / "m.jsonl"), "--vae", str(model_dir / "vae"), "-o",
                                 str(tmp_path / "run")])
    assert r.exit_code == 1 and "no row has a caption or labels" in r.output
    r = CliRunner().invoke(app, ["train-ldm", str(tmp_path / "m.jsonl"), "--vae", str(model_dir / "vae"), "-o",
                                 str(tmp_path / "run"), "--reprogram-prob", "2"])
    assert r.exit_code == 1 and "--reprogram-prob" in r.output


def test_resume_is_exact(tmp_path, model_dir):
    from maa.commands.cli import app

    from maa.train.loop import read_metrics

    manifest = write_clips(tmp_path / "clips", n=4, seconds=0.6)
    common = [str(manifest), "--vae", str(model_dir / "vae"), "--preset", "tiny", "-b", "2", "--duration", "0.5",
              "--val-fraction", "0", "--log-every", "1", "--reprogram-prob", "0.5", "-q"]
    r = CliRunner().invoke(app, ["train-ldm", *common, "-o", str(tmp_path / "a"), "--steps", "4"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train-ldm", *common, "-o", str(tmp_path / "b"), "--steps", "2", "--ckpt-every", "2"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train-ldm", *common, "-o", str(tmp_path / "b"), "--steps", "4", "--resume"])
    assert r.exit_code == 0, r.output
    la = [m["loss"] for m in read_metrics(tmp_path / "a") if m["kind"] == "train"]
    lb = [m["loss"] for m in read_metrics(tmp_path / "b") if m["kind"] == "train"]
    assert len(la) == 4 and la == lb


def test_latent_cache_and_reprogram_pool(tmp_path, model_dir, monkeypatch):
    from pathlib import Path

    from maa.models.vae import load_vae
    from maa.train import ldm
    from maa.train.ldm import cache_dataset_latents, latent_key, load_latent_cache

    rows = [json.loads(l) for l in write_clips(tmp_path, n=6, seconds=1.04).read_text().splitlines()]
    for r in rows:
        r["audio"] = str(tmp_path / r["audio"])
    for i, r in enumerate(rows[4:]):
        r["caption"] = f"composition {i}"
    vae = load_vae(model_dir / "vae")
    pool = CaptionedMels(rows[4:], frames=64)
    ds = CaptionedMels(rows[:4], frames=64, pool=pool, reprogram_prob=0.5)
    path, tag = tmp_path / "cache" / "latents.safetensors", {"vae": "abc", "frames": 64}
    assert cache_dataset_latents(vae, {"": ds, "pool/": pool}, path, tag) == 6
    ref = encode_latents(vae, [CaptionedMels(rows, 64).mel(0)], 64)[0]
    assert torch.equal(ds.latents[0], ref)
    assert load_latent_cache(path, {"vae": "other", "frames": 64}) == {}  # another VAE: recomputed
    # a second run reads the file: no clip is decoded or encoded again, even with the audio gone
    monkeypatch.setattr(ldm, "encode_latents", lambda *a, **k: pytest.fail("re-encoded"))
    moved = [dict(r, audio="/elsewhere/" + Path(r["audio"]).name) for r in rows]
    ds2, pool2 = CaptionedMels(moved[:4], 64), CaptionedMels(moved[4:], 64)
    assert cache_dataset_latents(vae, {"": ds2, "pool/": pool2}, path, tag) == 0
    assert latent_key(moved[0]) == latent_key(rows[0]) and torch.equal(ds2.latents[0], ref)
    assert torch.equal(pool2.latents[1], pool.latents[1]) and not torch.equal(pool2.latents[1], ds2.latents[1])
    # about half of the items come from the pool, with the pool's captions
    rng = np.random.default_rng(0)
    caps = [ds.get(0, rng)["caption"] for _ in range(200)]
    assert set(caps) <= {ds.captions[0], "composition 0", "composition 1"}
    assert 70 < sum(c.startswith("composition") for c in caps) < 130


def test_cli_train_ldm_pool_and_caches(tmp_path, model_dir, monkeypatch):
    from maa.commands.cli import app

    manifest = write_clips(tmp_path / "clips", n=6)
    pool = write_clips(tmp_path / "pool", n=3)
    run = tmp_path / "run"
    args = ["train-ldm", str(manifest), "--vae", str(model_dir / "vae"), "-o", str(run), "--preset", "tiny",
            "--channels", "16", "-b", "2", "--duration", "0.5", "--val-fraction", "0", "--cache-latents",
            "--reprogram-pool", str(pool), "--reprogram-prob", "0.5", "-q"]
    r = CliRunner().invoke(app, args + ["--steps", "2"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "ldm" / "config.json").read_text())["unet"]["channels"] == 16
    assert (run / "cache" / "text.safetensors").exists() and (run / "cache" / "latents.safetensors").exists()
    # resuming needs neither the text encoder nor the clips: both come from RUN/cache
    from maa.parts import text as text_mod

    monkeypatch.setattr(text_mod, "load_text_encoder", lambda *a, **k: pytest.fail("text encoder loaded"))
    for wav in (tmp_path / "clips").rglob("*.wav"):
        wav.unlink()
    r = CliRunner().invoke(app, args + ["--steps", "4", "--resume"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 4
    r = CliRunner().invoke(app, args[:-3] + ["--reprogram-pool", str(pool), "--steps", "1"])
    assert r.exit_code == 1 and "--reprogram-prob" in r.output


def _old_style_model(root: Path, model_dir: Path) -> Path:
    """A model folder like the bundled one: a UNet saved before position maps existed."""
    import shutil

    from maa.core.checkpoint import save_weights
    from maa.models.diffusion import DiffusionConfig
    from maa.models.unet import UNet
    from maa.models.unet import preset as unet_preset

    torch.manual_seed(3)
    cfg = unet_preset("tiny", coords=False)
    unet = UNet(cfg)
    with torch.no_grad():
        for p in unet.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    old = {k: v for k, v in cfg.to_dict().items() if k != "coords"}
    save_weights(root / "ldm", {"unet": unet}, {"kind": "ldm", "unet": old, "text_encoder": "minilm",
                                                "diffusion": DiffusionConfig(scale_factor=0.5).to_dict()})
    shutil.copytree(model_dir / "vae", root / "vae")
    return root


def test_init_adds_position_maps_without_changing_the_function(tmp_path, model_dir):
    from maa.infer.pipeline import load_model
    from maa.models.unet import UNet, UNetConfig
    from maa.train.ldm import init_from

    old_dir = _old_style_model(tmp_path / "old", model_dir)
    old = load_model(old_dir).unet
    assert old.cfg.coords is False
    new = UNet(UNetConfig.from_dict({**old.cfg.to_dict(), "coords": True})).eval()
    cfg = init_from(old_dir, new)
    assert cfg["diffusion"]["scale_factor"] == 0.5 and new.conv_in.weight.shape[1] == 6
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 10, 12, generator=g), torch.randn(2, 5, 384, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(new(x, torch.tensor([5, 700]), ctx), old(x, torch.tensor([5, 700]), ctx))


def test_cli_train_ldm_init(tmp_path, model_dir):
    from maa.commands.cli import app

    old_dir = _old_style_model(tmp_path / "old", model_dir)
    (old_dir / "vocoder").mkdir()
    (old_dir / "vocoder" / "config.json").write_text('{"kind": "stand-in"}')
    manifest = write_clips(tmp_path / "clips", n=4)
    run = tmp_path / "run"
    args = ["train-ldm", str(manifest), "--vae", str(old_dir / "vae"), "-o", str(run), "--channels", "48",
            "-b", "2", "--duration", "0.5", "--val-fraction", "0", "--steps", "2", "-q"]
    r = CliRunner().invoke(app, args + ["--init", str(old_dir)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "ldm" / "config.json").read_text())
    # the init's shape and latent scale win over --preset/--channels; position maps are added
    assert cfg["unet"]["channels"] == 32 and cfg["unet"]["coords"] is True
    assert cfg["diffusion"]["scale_factor"] == 0.5
    # RUN keeps the init's vocoder (a complete model folder), not its clap (it has none)
    assert (run / "vocoder" / "config.json").read_text() == '{"kind": "stand-in"}' and not (run / "clap").exists()
    r = CliRunner().invoke(app, args + ["-o", str(tmp_path / "run2"), "--init", str(manifest)])
    assert r.exit_code == 1 and "--init" in r.output and "Traceback" not in r.output
