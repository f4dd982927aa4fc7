"""Neural vocoder (maa/models/vocos.py), its CLI, and the official-BigVGAN loader (maa/models/bigvgan.py)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maa.core.audio import mel_spectrogram, save_wav
from maa.core.errors import MaaError
from maa.models.vocos import VocosGenerator, istft_same, preset, stft_same
from maa.parts.vocoders import load_neural_vocoder, mel_refine
from maa.train.loop import TrainConfig, read_metrics, train
from maa.train.vocoder import AudioSegments, VocoderTask, log_mel, mr_stft_distance
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- generator pieces


def test_istft_inverts_the_stft_framed_like_maa_mel():
    x = torch.from_numpy(real_ish(1.0, seed=3))[None]
    frames = x.shape[-1] // 256 - 1
    window = torch.hann_window(1024, dtype=torch.float64)
    padded = torch.nn.functional.pad(x.double()[:, None], (384, 384), mode="reflect")[:, 0]
    spec = torch.stft(padded, 1024, 256, 1024, window, center=False, return_complex=True)[..., :frames]
    y = istft_same(spec, 1024, 256, window)
    assert y.shape == (1, frames * 256)
    # sample t of the output is sample t of the input: the vocoder's frames sit where maa.core.audio's do
    assert torch.allclose(y, x[:, :frames * 256].double(), atol=1e-9)


def test_generator_maps_frames_to_hop_samples():
    gen = VocosGenerator(preset("tiny")).eval()
    mel = mel_spectrogram(torch.from_numpy(real_ish(1.0)))[None].repeat(2, 1, 1)
    with torch.no_grad():
        wav = gen(mel)
    assert wav.shape == (2, mel.shape[-1] * 256) and torch.isfinite(wav).all()


def test_loss_mel_equals_maa_mel_inside_full_scale():
    x = 0.5 * torch.from_numpy(real_ish(1.0, seed=1))[None]  # peak < 1: maa.core.audio's clamp is a no-op
    assert torch.allclose(log_mel(x), mel_spectrogram(x), atol=1e-4)


def test_mr_stft_distance_is_zero_for_identical_and_grows_with_noise():
    x = torch.from_numpy(real_ish(1.0))[None]
    assert float(mr_stft_distance(x, x)) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    small = float(mr_stft_distance(x + 0.01 * torch.randn(x.shape, generator=g), x))
    big = float(mr_stft_distance(x + 0.1 * torch.randn(x.shape, generator=g), x))
    assert 0 < small < big


def test_mel_refine_pulls_the_mel_onto_the_target():
    x = 0.5 * torch.from_numpy(real_ish(1.0, seed=4))[None]
    frames = x.shape[-1] // 256 - 1
    y = x[:, :frames * 256]
    target = mel_spectrogram(x)
    window = torch.hann_window(1024)
    assert torch.allclose(istft_same(stft_same(y, 1024, 256, window), 1024, 256, window), y, atol=1e-5)
    # a wrong spectral tilt and a noise floor: refinement must bring the mel back
    g = torch.Generator().manual_seed(0)
    bad = torchaudio_lowpass(y) + 0.01 * torch.randn(y.shape, generator=g)
    before = (mel_spectrogram(bad) - mel_spectrogram(y)).abs().mean()
    fixed = mel_refine(bad, target, iters=8)
    after = (mel_spectrogram(fixed) - mel_spectrogram(y)).abs().mean()
    assert fixed.shape == y.shape and after < 0.3 * before


def torchaudio_lowpass(x):
    import torchaudio

    return torchaudio.functional.lowpass_biquad(x, 16000, 1500.0)


def test_audio_segments_crop_length_and_determinism(tmp_path):
    save_wav(tmp_path / "a.wav", real_ish(1.5))
    save_wav(tmp_path / "short.wav", real_ish(0.2))
    ds = AudioSegments([{"audio": str(tmp_path / "a.wav")}, {"audio": str(tmp_path / "short.wav")}], 16)
    a = ds.get(0, np.random.default_rng(5))["audio"]
    b = ds.get(0, np.random.default_rng(5))["audio"]
    assert a.shape == (17 * 256,) and torch.equal(a, b)
    assert ds.get(1, np.random.default_rng(0))["audio"].shape == (17 * 256,)  # zero-padded
    assert float(a.abs().max()) <= 0.95 + 1e-6


# ----------------------------------------------------------------------------- training + round trip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny vocoder trained on one clip: 60 reconstruction steps, then 15 with the GAN on."""
    d = tmp_path_factory.mktemp("voc")
    save_wav(d / "clip.wav", real_ish(1.0, seed=2))
    torch.manual_seed(0)
    cfg = preset("tiny", disc_start=60)
    task = VocoderTask(cfg)
    ds = AudioSegments([{"audio": str(d / "clip.wav")}], cfg.segment_frames)
    val = AudioSegments([{"audio": str(d / "clip.wav")}], cfg.segment_frames * 2, gain=False)
    tcfg = TrainConfig(out_dir=d / "run", steps=75, batch_size=4, lr=3e-3, grad_clip=100.0, log_every=15,
                       val_every=15, ckpt_every=75, quiet=True)
    final = train(task, ds, val, tcfg)
    return d, task, final


def test_tiny_vocoder_loss_falls_on_one_clip(tiny_run):
    d, _, final = tiny_run
    vals = [r for r in read_metrics(d / "run") if r["kind"] == "val"]
    trains = [r for r in read_metrics(d / "run") if r["kind"] == "train"]
    assert vals[-1]["mel_l1"] < 0.6 * vals[0]["mel_l1"]
    assert vals[-1]["mr_stft"] < vals[0]["mr_stft"]
    assert "d_loss" in trains[-1] and "d_loss" not in trains[0]  # the GAN phase ran
    assert final["step"] == 75


def test_trained_vocoder_round_trips_through_its_folder(tiny_run, tmp_path):
    d, task, _ = tiny_run
    folder = d / "run" / "vocoder"
    meta = json.loads((folder / "config.json").read_text())
    assert meta["kind"] == "vocos" and meta["mel"]["n_mels"] == 80
    mel = mel_spectrogram(torch.from_numpy(real_ish(0.7, seed=9)))
    voc = load_neural_vocoder(d / "run")  # the run folder works as well as run/vocoder
    with torch.no_grad():
        ref = task.gen.eval()(mel[None])[0].clamp(-1, 1)
    out = voc(mel)
    assert out.shape == (mel.shape[-1] * 256,) and voc.sample_rate == 16000 and voc.kind == "vocos"
    assert torch.allclose(out, ref, atol=1e-5)
    # fp16 weights (how the bundled model ships) load and give nearly the same audio
    from safetensors.torch import load_file, save_file

    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((folder / "config.json").read_text())
    save_file({k: v.half() for k, v in load_file(str(folder / "generator.safetensors")).items()},
              str(half / "generator.safetensors"))
    out16 = load_neural_vocoder(half)(mel[None])[0]
    assert (out16 - out).abs().max() < 0.02
    # refinement (asked for in the call, or by config.json) brings the output's mel closer to the input
    refined = load_neural_vocoder(folder, refine=6)(mel)
    err = lambda w: float((mel_spectrogram(w) - mel[:, :-1]).abs().mean())  # noqa: E731  (F*256 samples: F-1 frames)
    assert err(refined) < 0.7 * err(out)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(MaaError, match="no such vocoder folder"):
        load_neural_vocoder(tmp_path / "nope")
    (tmp_path / "config.json").write_text(json.dumps({"kind": "vae"}))
    with pytest.raises(MaaError, match="not a vocoder"):
        load_neural_vocoder(tmp_path)


# ----------------------------------------------------------------------------- CLI


def test_cli_trains_and_writes_the_folder(tmp_path):
    from maa.commands.cli import app

    for i in range(3):
        save_wav(tmp_path / "clips" / "tone" / f"c{i}.wav", real_ish(0.8, seed=i))
    r = CliRunner().invoke(app, ["train-vocoder", str(tmp_path / "clips"), "-o", str(tmp_path / "run"),
                                 "--preset", "tiny", "--steps", "6", "-b", "2", "--disc-start", "3", "--lr-half-life", "4",
                                 "--refine", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "vocoder" / "generator.safetensors").exists()
    saved = json.loads((tmp_path / "run" / "vocoder" / "config.json").read_text())["vocoder"]
    assert saved["refine"] == 2 and saved["lr_half_life"] == 4 and saved["disc_start"] == 3
    assert load_neural_vocoder(tmp_path / "run")(torch.full((80, 10), -5.0)).shape == (2560,)


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    from maa.commands.cli import app

    r = CliRunner().invoke(app, ["train-vocoder", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "run")])
    assert r.exit_code == 1 and "missing.jsonl" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train-vocoder", str(tmp_path), "-o", str(tmp_path / "run"), "--preset", "huge"])
    assert r.exit_code == 1 and "huge" in r.output


# ----------------------------------------------------------------------------- official BigVGAN weights

# What the 16 kHz / 80-band BigVGAN checkpoint holds, written out here from the published
# architecture (not from maa/models/bigvgan.py), with a smaller initial channel count for speed.
BIGVGAN_ARGS = """resblock: '1'
num_mels: 80
upsample_rates: [4, 4, 2, 2, 2, 2]
upsample_kernel_sizes: [8, 8, 4, 4, 4, 4]
upsample_initial_channel: {c0}
resblock_kernel_sizes: [3, 7, 11]
resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
activation: snakebeta
snake_logscale: true
resolutions: [[1024, 120, 600], [2048, 240, 1200], [512, 50, 240]]
mpd_reshapes: [2, 3, 5, 7, 11]
"""


def bigvgan_shapes(c0: int) -> dict[str, tuple]:
    """Key -> shape of BigVGAN v1's generator state dict with weight norm (weight_g/weight_v)."""
    shapes = {}

    def conv(name, c_out, c_in, k, transposed=False, bias=True):
        if transposed:  # ConvTranspose1d weight is (in, out, k); weight norm's dim 0 is `in`
            shapes[f"{name}.weight_g"], shapes[f"{name}.weight_v"] = (c_in, 1, 1), (c_in, c_out, k)
        else:
            shapes[f"{name}.weight_g"], shapes[f"{name}.weight_v"] = (c_out, 1, 1), (c_out, c_in, k)
        if bias:
            shapes[f"{name}.bias"] = (c_out,)

    def act(name, ch):
        shapes[f"{name}.act.alpha"] = shapes[f"{name}.act.beta"] = (ch,)
        shapes[f"{name}.upsample.filter"] = shapes[f"{name}.downsample.lowpass.filter"] = (1, 1, 12)

    conv("conv_pre", c0, 80, 7)
    rates, kernels = [4, 4, 2, 2, 2, 2], [8, 8, 4, 4, 4, 4]
    for i, (u, k) in enumerate(zip(rates, kernels)):
        conv(f"ups.{i}.0", c0 // 2 ** (i + 1), c0 // 2 ** i, k, transposed=True)
        ch = c0 // 2 ** (i + 1)
        for j, rk in enumerate([3, 7, 11]):
            b = f"resblocks.{3 * i + j}"
            for l in range(3):
                conv(f"{b}.convs1.{l}", ch, ch, rk)
                conv(f"{b}.convs2.{l}", ch, ch, rk)
            for a in range(6):
                act(f"{b}.activations.{a}", ch)
    act("activation_post", c0 // 64)
    conv("conv_post", 1, c0 // 64, 7)
    return shapes


def kaiser_lowpass_12() -> np.ndarray:
    """BigVGAN's x2 anti-aliasing filter from its definition: cutoff 0.25, half-width 0.3, 12 taps,
    Kaiser beta from Kaiser's attenuation formula, half-sample-centred taps, unit DC gain."""
    a = 2.285 * (6 - 1) * math.pi * (4 * 0.3) + 7.95
    beta = 0.1102 * (a - 8.7)  # a > 50 dB
    t = np.arange(-6, 6) + 0.5
    h = 2 * 0.25 * np.kaiser(12, beta) * np.sinc(2 * 0.25 * t)
    return h / h.sum()


def write_standin(folder: Path, c0: int, seed: int = 0, style: str = "hooks", drop_filters: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in bigvgan_shapes(c0).items():
        if k.endswith(".filter"):
            if drop_filters:
                continue
            sd[k] = torch.from_numpy(kaiser_lowpass_12()).float().view(1, 1, 12)
        elif k.endswith(".alpha") or k.endswith(".beta"):
            sd[k] = 0.1 * torch.randn(shape, generator=g)
        elif k.endswith(".weight_g"):
            sd[k] = 0.5 + torch.rand(shape, generator=g)
        else:
            sd[k] = 0.05 * torch.randn(shape, generator=g)
    if style == "parametrizations":
        sd = {k.replace(".weight_g", ".parametrizations.weight.original0")
               .replace(".weight_v", ".parametrizations.weight.original1"): v for k, v in sd.items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": sd, "steps": 1000}, folder / "best_netG.pt")
    (folder / "args.yml").write_text(BIGVGAN_ARGS.format(c0=c0))
    return sd


@pytest.mark.parametrize("style", ["hooks", "parametrizations"])
def test_bigvgan_loads_a_standin_checkpoint(tmp_path, style):
    sd = write_standin(tmp_path / "bigvgan", c0=128, style=style)
    voc = load_neural_vocoder(tmp_path / "bigvgan")
    assert voc.kind == "bigvgan" and voc.sample_rate == 16000
    # weight norm folded as w = g * v / ||v|| (norm over all but the output dim)
    g_key = "conv_pre.weight_g" if style == "hooks" else "conv_pre.parametrizations.weight.original0"
    v = sd[g_key.replace("weight_g", "weight_v").replace("original0", "original1")]
    expect = sd[g_key] * v / v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, 1, 1)
    assert torch.allclose(voc.model.conv_pre.weight, expect, atol=1e-6)
    assert torch.allclose(voc.model.resblocks[4].activations[3].act.beta,
                          sd[[k for k in sd if k.startswith("resblocks.4.activations.3.act.beta")][0]])
    mel = mel_spectrogram(torch.from_numpy(real_ish(0.5)))
    wav = voc(mel[None])
    assert wav.shape == (1, mel.shape[-1] * 256) and wav.abs().max() <= 1.0 and torch.isfinite(wav).all()


def test_bigvgan_filters_match_their_definition(tmp_path):
    write_standin(tmp_path / "b", c0=64, drop_filters=True)  # filters absent: rebuilt from the definition
    voc = load_neural_vocoder(tmp_path / "b")
    want = kaiser_lowpass_12()
    got_up = voc.model.activation_post.upsample.filter.flatten().numpy()
    got_down = voc.model.activation_post.downsample.lowpass.filter.flatten().numpy()
    assert np.allclose(got_up, want, atol=1e-6) and np.allclose(got_down, want, atol=1e-6)


def test_bigvgan_refuses_mismatched_weights(tmp_path):
    sd = write_standin(tmp_path / "b", c0=64)
    sd["conv_pre.weight_v"] = torch.zeros(64, 80, 5)
    torch.save({"generator": sd}, tmp_path / "b" / "best_netG.pt")
    with pytest.raises(MaaError, match=r"best_netG\.pt: conv_pre\.weight"):
        load_neural_vocoder(tmp_path / "b")
    del sd["conv_pre.weight_v"]
    torch.save({"generator": sd}, tmp_path / "b" / "best_netG.pt")
    with pytest.raises(MaaError, match="pairs"):
        load_neural_vocoder(tmp_path / "b")
    (tmp_path / "b" / "args.yml").write_text(BIGVGAN_ARGS.format(c0=64).replace("num_mels: 80", "num_mels: 100"))
    with pytest.raises(MaaError, match="100 mels"):
        load_neural_vocoder(tmp_path / "b")


@pytest.mark.slow
def test_bigvgan_full_size_standin(tmp_path):
    """The real size: 1536 initial channels (about 112 M parameters)."""
    write_standin(tmp_path / "b", c0=1536)
    voc = load_neural_vocoder(tmp_path / "b")
    n = sum(p.numel() for p in voc.model.parameters())
    assert 100e6 < n < 130e6
    assert voc(torch.full((1, 80, 4), -5.0)).shape == (1, 1024)
