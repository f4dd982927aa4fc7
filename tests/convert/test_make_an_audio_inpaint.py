"""The official Make-An-Audio inpainting model (inpaint7) against the golden fixtures made by the
official code (tests/fixtures/official-golden-x2a/README.md, "Inpainting fixtures"), and its key
table at full size."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from maa.core.errors import MaaError

X2A = Path(__file__).resolve().parents[1] / "fixtures" / "official-golden-x2a"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "official-keys"


def _close(name, got, want, tol):
    d = float((got.detach().float() - want.float()).abs().max())
    print(f"\n{name}: max |diff| {d:.2g} (tolerance {tol:g})")
    assert d <= tol, name


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from maa.convert.make_an_audio import convert_make_an_audio
    from maa.convert.official import convert_official as convert_checkpoint
    from maa.infer.native_inpaint import load_inpaint_model

    with pytest.raises(MaaError, match=r"the Make-An-Audio inpainting checkpoint \(9-channel UNet, no text\)"):
        convert_make_an_audio(X2A / "tiny_maa_inpaint_full.ckpt", tmp_path_factory.mktemp("x") / "v1")
    # `maa convert make-an-audio` recognises the inpainting checkpoint and writes its own folder kind
    out = convert_checkpoint(X2A / "tiny_maa_inpaint_full.ckpt", tmp_path_factory.mktemp("c") / "inpaint",
                                config=X2A / "tiny_maa_inpaint.yaml")
    cfg = json.loads((out / "ldm" / "config.json").read_text())
    assert cfg["kind"] == "inpaint-ldm" and cfg["mel_domain"] == "normdb" and cfg["mel"]["fmin"] == 125.0
    return load_inpaint_model(out)


def test_full_size_key_table_maps_without_missing_or_unexpected():
    from maa.convert.make_an_audio import map_vae, vae_config
    from maa.convert.make_an_audio_inpaint import UNET, VAE, is_inpaint_state, split_inpaint
    from maa.models.inpaint_unet import InpaintUNet, inpaint_unet_config
    from maa.models.vae import SpecVAE

    table = json.loads((KEYS / "maa_inpaint_full.json").read_text())
    # zero-stride views: shapes without memory (a meta-device torch.cat would import torch._dynamo, ~7 s)
    state = {k: torch.zeros((), dtype=getattr(torch, d.replace("torch.", ""))).expand(s) for k, s, d in table}
    assert is_inpaint_state(state)
    unet, vae, buffers = split_inpaint(state)
    dup = [k for k in state if k.startswith("cond_stage_model.")]  # the first stage again: ignored
    assert len(unet) + len(vae) + len(buffers) + len(dup) == len(table) == 938
    assert sorted(k[len("cond_stage_model."):] for k in dup) == sorted(vae)
    cfg = inpaint_unet_config(unet)
    assert (cfg.in_channels, cfg.channels, cfg.channel_mult, cfg.num_res_blocks, cfg.attn_levels) == (9, 320, (1, 2), 2, (0, 1))
    with torch.device("meta"):
        own = InpaintUNet(cfg).state_dict()
        vcfg = vae_config(vae)
        own_vae = SpecVAE(vcfg).state_dict()
    mapped = map_vae(vae, vcfg)
    for name, mine, theirs in (("unet", own, unet), ("vae", own_vae, mapped)):
        assert set(mine) == set(theirs), name
        assert all(tuple(mine[k].shape) == tuple(theirs[k].shape) for k in mine), name
    assert not any(k.startswith(UNET) and "transformer" in k for k in state) and VAE == "first_stage_model."


def test_condition_matches_official(model):
    from maa.infer.native_inpaint import condition

    io = load_file(X2A / "inpaint_cond_io.safetensors")
    masked = (1 - io["mask01"]) * io["mel01"] * 2 - 1
    assert torch.equal(masked, io["masked_mel"])  # masked frames are -1, exactly
    c = condition(model, io["mel01"], io["mask01"], io["posterior_noise"])
    assert torch.equal(c[:, 4:], io["mask_ds"])  # nearest: latent columns 5..11 are +1
    assert io["mask_ds"][0, 0, 0].tolist() == [-1] * 5 + [1] * 7 + [-1] * 4
    # 5e-5, not the README's 1e-5: a float64 run of the same weights lies 2.0e-5 from the fixture
    # and 2.1e-5 from maa's float32 result (float32 rounding of this input, not a model difference)
    _close("c_concat", c, io["c_concat"], 5e-5)
    post = model.vae.encode(io["masked_mel"])
    _close("c_concat_from_mean", torch.cat([post.mean, c[:, 4:]], 1), io["c_concat_from_mean"], 5e-5)


def test_unet_matches_official(model):
    io = load_file(X2A / "inpaint_unet_io.safetensors")
    with torch.no_grad():
        _close("eps", model.unet(io["unet_input"], io["timesteps"]), io["eps"], 1e-5)
        small = torch.cat([io["x_small"], io["c_concat"]], 1)
        _close("eps_small", model.unet(small, io["timesteps"]), io["eps_small"], 1e-5)


@pytest.mark.slow  # 10-25 s: CI runs it with the slow tests
def test_ddim_inpainting_matches_official(model):
    from maa.infer.native_inpaint import ddim_grid, sample

    io = load_file(X2A / "inpaint_ddim_io.safetensors")
    ts, a_t, a_prev = ddim_grid(model, 10)
    assert ts[::-1] == io["timesteps"].tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    _close("a_t", a_t.flip(0), io["a_t"], 1e-7)
    _close("a_prev", a_prev.flip(0), io["a_prev"], 1e-7)
    steps = []
    latent = sample(model, io["c_concat"], io["x_T"], 10, on_step=lambda x, x0: steps.append(x))
    _close("x_after_step[0]", steps[0], io["x_after_step"][0], 1e-4)
    _close("latent", latent, io["latent"], 5e-3)
    with torch.no_grad():
        decoded = model.vae.decode(latent)
    _close("decoded", decoded, io["decoded"], 1e-4)
    mel01, mask01 = load_file(X2A / "inpaint_cond_io.safetensors")["mel01"], load_file(X2A / "inpaint_cond_io.safetensors")["mask01"]
    inpainted = (1 - mask01) * mel01 + mask01 * ((decoded + 1) / 2).clamp(0, 1)
    _close("inpainted01", inpainted, io["inpainted01"], 1e-4)


@pytest.mark.slow  # 10-25 s: CI runs it with the slow tests
def test_inpaint_audio_keeps_the_input_outside_the_spans(model):
    from maa.infer.native_inpaint import inpaint_audio

    sr = 16000
    t = np.arange(int(1.2 * sr)) / sr
    wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out, info = inpaint_audio(model, wav, [(0.4, 0.6)], seed=1, steps=2, min_frames=64)
    assert out.shape == wav.shape and np.isfinite(out).all()
    keep = np.ones(len(wav), bool)
    keep[int(0.39 * sr):int(0.61 * sr)] = False
    assert np.array_equal(out[keep], wav[keep])
    assert not np.allclose(out[int(0.45 * sr):int(0.55 * sr)], wav[int(0.45 * sr):int(0.55 * sr)])
    assert info["method"] == "native-inpaint" and info["frames"] == 80 and info["vocoder"] == "griffin-lim"
    out2, _ = inpaint_audio(model, wav, [(0.4, 0.6)], seed=1, steps=2, min_frames=64)
    assert np.array_equal(out, out2)  # same seed, same audio
    with pytest.raises(MaaError, match=r"--inpaint 2-3: want START-END seconds inside the 1.20 s input"):
        inpaint_audio(model, wav, [(2.0, 3.0)], steps=2)


def test_normdb_front_end_is_transforms_16000():
    """mel01 of AudioGPT's TRANSFORMS_16000, recomputed with numpy's FFT for a few frames (centred,
    zero-padded frames, Hann, magnitude, the 125-7600 Hz Slaney bank, 20 log10 - 20 + 100, / 100, clip)."""
    from maa.convert.make_an_audio_inpaint import NORMDB_MEL as M
    from maa.core.audio import MelConfig, mel_basis
    from maa.infer.native_inpaint import mel01_of_audio

    rng = np.random.default_rng(0)
    wav = (0.2 * rng.standard_normal(8000)).astype(np.float32)
    got = mel01_of_audio(wav, M)
    assert got.shape == (80, 8000 // 256)
    fb = mel_basis(MelConfig(fmin=125.0, fmax=7600.0)).numpy()
    padded = np.pad(wav, 512)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    for j in (0, 7, 30):
        mag = np.abs(np.fft.rfft(padded[j * 256: j * 256 + 1024] * win))
        want = np.clip((20 * np.log10(np.maximum(fb @ mag, 1e-5)) - 20 + 100) / 100, 0, 1)
        assert np.abs(got[:, j] - want).max() < 1e-5
    assert (mel01_of_audio(np.zeros(4096, np.float32), M) == 0).all()  # silence: -100 dB - 20 + 100 < 0


@pytest.mark.slow
def test_generate_with_the_inpainting_model(model, tmp_path):
    """`maa generate --init-audio X --inpaint A-B --model DIR`: native inpainting, a prompt warned
    about, the record says which method ran; a rerun with the same settings skips."""
    import os
    import subprocess
    import sys

    import soundfile as sf

    from maa.infer.options import read_record

    sr = 16000
    src, out = tmp_path / "scene.wav", tmp_path / "filled.wav"
    sf.write(src, (0.2 * np.sin(2 * np.pi * 300 * np.arange(sr) / sr)).astype(np.float32), sr)
    cmd = [str(Path(sys.executable).parent / "maa"), "generate", "a door slams", "--init-audio", str(src),
           "--inpaint", "0.3-0.5", "--model", str(model.root), "-o", str(out), "--steps", "2", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-1500:]
    assert "ignores text: it fills --inpaint spans from the surrounding audio" in r.stderr
    rec = read_record(out)
    assert rec["method"] == "native-inpaint" and rec["inpaint"] == [[0.3, 0.5]] and rec["prompt_ignored"] == "a door slams"
    assert json.loads(r.stdout.splitlines()[-1])["method"] == "native-inpaint"
    before = out.stat().st_mtime_ns
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and out.stat().st_mtime_ns == before  # made already: skipped
