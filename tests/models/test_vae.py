"""Spectrogram VAE, multi-window discriminator, mel crops and `maa train-vae`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maa.core.audio import mel_spectrogram
from maa.core.checkpoint import num_params
from maa.core.errors import MaaError
from maa.data.mels import MelCrops, band_means, tile_crop
from maa.models.vae import PRESETS, SpecVAE, VAEConfig, load_vae, preset
from maa.train.discriminators import (
    DiscConfig,
    MultiWindowDiscriminator,
    hinge_d_loss,
    hinge_g_loss,
)
from maa.train.loop import TrainConfig, read_metrics, train
from maa.train.vae import VAELossConfig, VAETask, adaptive_weight
from tests.conftest import real_ish

ROOT = Path(__file__).resolve().parents[1]
MAA = str(Path(sys.executable).with_name("maa"))


pytestmark = pytest.mark.usefixtures("one_thread")


def _mels(folder: Path, n=6, seconds=(1.0, 2.5)) -> Path:
    """n real-ish mels of varied lengths and pitch, plus a manifest as `maa mel` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        secs = seconds[0] + (seconds[1] - seconds[0]) * i / max(n - 1, 1)
        wav = real_ish(secs, seed=i)
        wav = np.interp(np.arange(len(wav)) * (1 + 0.15 * i), np.arange(len(wav)), wav).astype(np.float32)  # pitch
        m = mel_spectrogram(wav).numpy().astype(np.float16)
        np.save(folder / f"c{i}.npy", m)
        rows.append({"id": f"c{i}", "audio": f"c{i}.wav", "mel": f"c{i}.npy", "frames": m.shape[1]})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "manifest.jsonl"


def _task(vae_cfg=None, loss=None, frames=64, windows=(16, 32)):
    torch.manual_seed(0)
    return VAETask(SpecVAE(vae_cfg or preset("tiny")), MultiWindowDiscriminator(DiscConfig(windows=windows, channels=16)),
                   loss or VAELossConfig(disc_start=10**9), frames)


def _cfg(out, **kw):
    base = dict(out_dir=Path(out), steps=10, batch_size=4, lr=2e-3, log_every=1, val_every=10**6, ckpt_every=10**6,
                quiet=True)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("frames", [8, 64, 96, 624])
def test_latent_shapes(frames):
    vae = SpecVAE(preset("tiny")).eval()
    post = vae.encode(torch.full((2, 80, frames), -3.0))
    assert post.mean.shape == (2, 4, 10, frames // 8) == (2, *vae.latent_shape(frames))
    assert vae.decode(post.mean).shape == (2, 1, 80, frames)


def test_paper_latent_of_a_10_s_clip_and_preset_sizes():
    small = SpecVAE(preset("small")).eval()
    with torch.no_grad():
        z = small.encode(torch.full((1, 80, 624), -3.0)).mean
    assert z.shape == (1, 4, 10, 78)
    assert num_params(SpecVAE(preset("tiny"))) < 1_000_000
    assert num_params(small) <= 3_000_000
    base = SpecVAE(preset("base"))
    assert 50e6 < num_params(base) < 90e6 and base.latent_shape(624) == (4, 10, 78)
    # attention: one per middle block, plus one after each res block of levels 2 and 3 (2 per level in
    # the encoder, 3 in the decoder)
    assert sum(isinstance(m, type(base.decoder.mid[1])) for m in base.modules()) == 2 + 2 * 2 + 2 * 3


def test_any_length_pads_with_silence_and_crops_back():
    vae = SpecVAE(preset("tiny")).eval()
    mel = torch.randn(2, 80, 61) - 3
    z = vae.encode_mel(mel)
    assert z.shape == (2, 4, 10, 8)  # 61 -> 64 frames
    padded = torch.cat([mel, torch.full((2, 80, 3), -5.0)], -1)
    assert torch.allclose(z, vae.encode_mel(padded), atol=1e-6)
    assert vae.reconstruct(mel).shape == (2, 80, 61)
    with pytest.raises(MaaError, match="multiple of 8"):
        vae.encode(mel)
    with pytest.raises(MaaError, match="want"):
        vae.encode(torch.zeros(1, 64, 64))


def test_posterior_kl_matches_the_closed_form():
    from maa.models.vae import Posterior

    mean, logvar = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5)
    p = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    q = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ref = torch.distributions.kl_divergence(p, q).flatten(1).sum(1)
    assert torch.allclose(Posterior(mean, logvar).kl(), ref, atol=1e-5)


def test_config_round_trip():
    c = VAEConfig.from_dict(json.loads(json.dumps(PRESETS["small"].to_dict())))
    assert c == PRESETS["small"]
    with pytest.raises(MaaError, match="choose one of"):
        preset("huge")


# ----------------------------------------------------------------------------- discriminator and losses


def test_discriminator_crops_real_and_fake_alike_and_handles_short_mels():
    d = MultiWindowDiscriminator(DiscConfig(windows=(8, 32, 128), channels=8, dropout=0.0)).eval()
    x = torch.randn(2, 1, 80, 48)
    real, fake = d(x, x.clone(), starts=[3, 10, 0])
    for (lr, fr), (lf, ff) in zip(real, fake):
        assert torch.equal(lr, lf)  # same crops, same input -> same scores
    # the 128-frame window is cut to the 48 available frames
    assert real[2][0].shape == (2, 10 * 6)
    # hinge losses against a hand computation
    a, b = torch.tensor([[0.5, -2.0]]), torch.tensor([[1.5, -0.5]])
    assert torch.isclose(hinge_d_loss([(a, [])], [(b, [])]), torch.tensor((0.5 + 3.0) / 2 + (2.5 + 0.5) / 2))
    assert torch.isclose(hinge_g_loss([(b, [])]), torch.tensor(-0.5))


def test_adaptive_weight_is_the_gradient_norm_ratio():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    rec = (3 * w).sum()  # grad (3, 3): norm 3*sqrt(2)
    g = (w ** 2).sum()  # grad (2, 4): norm sqrt(20)
    assert torch.isclose(adaptive_weight(rec, g, w), torch.tensor(3 * 2 ** 0.5 / (20 ** 0.5 + 1e-4)))


def test_gan_terms_act(tmp_path):
    ds = MelCrops.from_manifest(_mels(tmp_path / "m", n=4), frames=64)
    task = _task(loss=VAELossConfig(disc_start=3))
    train(task, ds, None, _cfg(tmp_path / "run", steps=24, lr=2e-3))
    rows = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert all("d_loss" not in r for r in rows[:3])  # off before disc_start
    d = [r["d_loss"] for r in rows[3:]]
    assert len(d) == 21 and all(r["d_weight"] > 0 for r in rows[3:])
    # the discriminator learns to separate real from reconstructed crops (its hinge loss starts at
    # 2 per window, i.e. 4, with logits near 0); 24 steps move it only a little, so compare means
    assert np.mean(d[-8:]) < np.mean(d[:3])
    gap = [r["logits_real"] - r["logits_fake"] for r in rows[3:]]
    assert np.mean(gap[-8:]) > max(0.05, np.mean(gap[:3]))


@pytest.mark.slow  # ~6 s
def test_kl_weight_shrinks_the_posterior_toward_the_prior(tmp_path):
    ds = MelCrops.from_manifest(_mels(tmp_path / "m", n=4), frames=64)
    kls = {}
    for w in (0.0, 1e3):
        train(_task(loss=VAELossConfig(kl_weight=w, disc_start=10**9)), ds, None, _cfg(tmp_path / f"kl{w}", steps=25))
        kls[w] = np.mean([r["kl"] for r in read_metrics(tmp_path / f"kl{w}")[-5:]])
    assert kls[1e3] < 0.5 * kls[0.0]


@pytest.mark.slow  # ~20 s on 2 cores: CI runs it with the slow tests
def test_tiny_overfits_one_batch(tmp_path):
    # two mels of exactly 32 frames and batch 2: every step sees the same batch
    man = _mels(tmp_path / "m", n=2, seconds=(0.528, 0.528))
    ds = MelCrops.from_manifest(man, frames=32)
    assert all(ds.mel(i).shape[1] == 32 for i in range(2))
    task = _task(frames=32)
    train(task, ds, None, _cfg(tmp_path / "run", steps=300, batch_size=2, lr=3e-3, grad_clip=None, log_every=50))
    batch = torch.stack([ds[i] for i in range(2)])[:, 0]
    err = (task.vae.eval().reconstruct(batch) - batch).abs().mean().item()
    baseline = (batch - torch.from_numpy(band_means(ds))[:, None]).abs().mean().item()
    assert err < 0.16 and err < baseline / 4, (err, baseline)  # about 0.11 vs 0.70


def test_vae_resume_is_exact_with_gan_and_sampling(tmp_path):
    ds = MelCrops.from_manifest(_mels(tmp_path / "m", n=5), frames=48)
    loss = VAELossConfig(disc_start=2, fm_weight=0.5)

    def run(out, resume=False, stop=None):
        task = _task(loss=loss, frames=48)
        if stop is not None:
            orig = task.train_step

            def step(batch, s, cfg):
                if s == stop:
                    raise KeyboardInterrupt
                return orig(batch, s, cfg)
            task.train_step = step
        return train(task, ds, ds, _cfg(out, steps=8, ckpt_every=4, val_every=4, max_val_batches=1), resume=resume)

    run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop=6)
    run(tmp_path / "b", resume=True)
    a = [r for r in read_metrics(tmp_path / "a")]
    b = [r for r in read_metrics(tmp_path / "b")]
    assert [(r["kind"], r["step"]) for r in a] == [(r["kind"], r["step"]) for r in b]
    for ra, rb in zip(a, b):
        for k in ("rec_l1", "kl", "d_loss", "g_loss", "fm", "mel_l1"):
            if k in ra:
                assert abs(ra[k] - rb[k]) <= 1e-6, (ra["step"], k, ra[k], rb[k])


# ----------------------------------------------------------------------------- data


def test_tile_crop_and_reproducible_random_crops(tmp_path):
    m = np.arange(80 * 10, dtype=np.float32).reshape(80, 10)
    assert np.array_equal(tile_crop(m, 25, 7), np.tile(m, (1, 4))[:, 7:32])
    assert np.array_equal(tile_crop(np.tile(m, (1, 5)), 24, 3), np.tile(m, (1, 5))[:, 3:27])
    ds = MelCrops.from_manifest(_mels(tmp_path, n=3), frames=120)
    a = ds.get(0, np.random.default_rng([0, 5]))
    b = ds.get(0, np.random.default_rng([0, 5]))
    assert a.shape == (1, 80, 120) and torch.equal(a, b)
    full = ds.mel(0).astype(np.float32)  # 62 frames: shorter than the crop, so tiled
    assert full.shape[1] < 120
    assert any(np.array_equal(a[0].numpy(), tile_crop(full, 120, s)) for s in range(full.shape[1]))


def test_manifest_without_mels_is_refused(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"id": "x", "audio": "x.wav"}) + "\n")
    with pytest.raises(MaaError, match="run `maa mel"):
        MelCrops.from_manifest(p)
    bad = tmp_path / "b.jsonl"
    np.save(tmp_path / "bad.npy", np.zeros((64, 10), np.float32))
    bad.write_text(json.dumps({"id": "x", "audio": "x.wav", "mel": "bad.npy"}) + "\n")
    with pytest.raises(MaaError, match=r"bad\.npy: mel of shape"):
        MelCrops.from_manifest(bad).get(0, None)


# ----------------------------------------------------------------------------- command


def _maa(*args):
    from maa.commands.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, [str(a) for a in args])
    r.returncode = r.exit_code
    return r


def test_train_vae_command_writes_a_loadable_model_and_evaluates(tmp_path):
    man = _mels(tmp_path / "m", n=8)
    run = tmp_path / "run"
    r = _maa("train-vae", man, "-o", run, "--preset", "tiny", "--steps", 12, "-b", 4, "--frames", 64,
             "--val-fraction", 0.25, "--val-every", 6, "--ckpt-every", 6, "--log-every", 3, "--threads", 1, "-q",
             "--disc-start", 6, "--disc-channels", 8)
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout.strip().splitlines()[-1])
    assert final["step"] == 12 and final["val_mel_l1"] > 0 and "d_loss" in final
    assert {p.name for p in (run / "vae").iterdir()} == {"config.json", "vae.safetensors", "disc.safetensors"}
    assert sorted(p.name for p in (run / "val").iterdir()) == ["step_0000006.png", "step_0000012.png"]
    assert "6 training mels, 2 held out" in r.stderr
    vae = load_vae(run / "vae")
    assert vae.cfg == preset("tiny")

    r = _maa("train-vae", man, "--eval-only", "--vae", run / "vae", "--per-clip", "-q")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.strip().splitlines()]
    assert [l["id"] for l in lines[:-1]] == [f"c{i}" for i in range(8)]
    summary = lines[-1]
    weighted = sum(l["mel_l1"] * l["frames"] for l in lines[:-1]) / sum(l["frames"] for l in lines[:-1])
    assert summary["clips"] == 8 and abs(weighted - summary["mel_l1"]) < 1e-5
    # independent check of the reported error on one clip
    m = torch.from_numpy(np.load(tmp_path / "m" / "c3.npy").astype(np.float32))[None]
    assert abs((vae.reconstruct(m) - m).abs().mean().item() - lines[3]["mel_l1"]) < 1e-5

    # resume past the end: more steps continue from step 12
    # (no --preset: a resumed run keeps its own architecture)
    r = _maa("train-vae", man, "-o", run, "--steps", 14, "-b", 4, "--frames", 64,
             "--val-fraction", 0.25, "--threads", 1, "-q", "--resume", "--disc-start", 6)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 14
    steps = [row["step"] for row in read_metrics(run) if row["kind"] == "train"]
    assert steps == [3, 6, 9, 12, 14]


def test_decoder_only_fine_tuning_keeps_the_latents(tmp_path):
    from safetensors.torch import load_file

    man = _mels(tmp_path / "m", n=6)
    base = tmp_path / "base"
    common = ("-b", 3, "--frames", 64, "--val-fraction", 0, "--threads", 1, "-q", "--disc-channels", 8)
    r = _maa("train-vae", man, "-o", base, "--preset", "tiny", "--steps", 3, *common)
    assert r.returncode == 0, r.stderr
    ft = tmp_path / "ft"
    r = _maa("train-vae", man, "-o", ft, "--init", base / "vae", "--decoder-only", "--disc-start", 0,
             "--steps", 4, "--lr", 1e-2, *common)
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(base / "vae" / "vae.safetensors")), load_file(str(ft / "vae" / "vae.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("encoder."))  # same latent space
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    assert load_vae(ft / "vae").cfg == preset("tiny")  # the architecture comes from --init, not --preset
    r = _maa("train-vae", man, "-o", tmp_path / "x", "--decoder-only")
    assert r.returncode == 1 and "--init" in r.stderr
    r = _maa("train-vae", man, "-o", tmp_path / "x", "--init", tmp_path / "nope")
    assert r.returncode == 1 and "not a VAE folder" in r.stderr


def test_train_vae_command_errors_are_one_line(tmp_path):
    man = _mels(tmp_path / "m", n=2)
    for args, msg in [(("--frames", 60), "multiple of 8"), (("--preset", "huge"), "choose one of"),
                      ((), "-o RUN is required")]:
        out = ["-o", tmp_path / "run"] if msg != "-o RUN is required" else []
        r = _maa("train-vae", man, *out, *args)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _maa("train-vae", man, "--eval-only", "--vae", tmp_path / "nope")
    assert r.returncode == 1 and "no such model folder" in r.stderr
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_state.pt").write_bytes(b"")
    r = _maa("train-vae", man, "-o", tmp_path / "run")
    assert r.returncode == 1 and "pass --resume to continue" in r.stderr


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_vae_under_torchrun_with_two_processes(tmp_path):
    man = _mels(tmp_path / "m", n=8)
    run = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    args = [torchrun, "--nproc-per-node", "2", "--master-port", str(_free_port()), MAA, "train-vae", man, "-o", run,
            "--preset", "tiny", "--steps", 6, "-b", 2, "--frames", 64, "--threads", 1, "-q", "--disc-start", 3,
            "--log-every", 1, "--val-every", 3]
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(r.stdout.strip().splitlines()) == 1  # only rank 0 prints
    rows = read_metrics(run)
    assert [x["step"] for x in rows if x["kind"] == "train"] == list(range(1, 7))
    assert load_vae(run / "vae").cfg == preset("tiny")
