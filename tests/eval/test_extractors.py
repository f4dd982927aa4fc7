"""Extractors: official checkpoint layouts (built here as stand-ins), front ends against
independent references, and the aisfx model shipped in its wheel."""

import types

import numpy as np
import pytest
import torch

from maa.core.errors import MaaError
from maa.eval.extractors import (
    AisfxExtractor,
    Embedded,
    _ConvStft,
    check_state_dict,
    load_checkpoint,
    load_extractor,
    vggish_examples,
    vggish_mel_matrix,
)
from tests.conftest import real_ish


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def cnn14_16k_layout():
    """Key -> shape of the state dict in PANNs' Cnn14_16k_mAP=0.438.pth (written out by hand)."""
    keys = {"spectrogram_extractor.stft.conv_real.weight": (257, 1, 512),
            "spectrogram_extractor.stft.conv_imag.weight": (257, 1, 512),
            "logmel_extractor.melW": (257, 64), **_bn("bn0", 64)}
    widths = [1, 64, 128, 256, 512, 1024, 2048]
    for i in range(6):
        cin, cout = widths[i], widths[i + 1]
        keys[f"conv_block{i + 1}.conv1.weight"] = (cout, cin, 3, 3)
        keys[f"conv_block{i + 1}.conv2.weight"] = (cout, cout, 3, 3)
        keys.update(_bn(f"conv_block{i + 1}.bn1", cout))
        keys.update(_bn(f"conv_block{i + 1}.bn2", cout))
    keys.update({"fc1.weight": (2048, 2048), "fc1.bias": (2048,),
                 "fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)})
    return keys


def vggish_layout():
    """Key -> shape of torchvggish's vggish-10086976.pth."""
    keys = {}
    for idx, (cin, cout) in zip((0, 3, 6, 8, 11, 13), ((1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512))):
        keys[f"features.{idx}.weight"] = (cout, cin, 3, 3)
        keys[f"features.{idx}.bias"] = (cout,)
    for idx, (cin, cout) in zip((0, 2, 4), ((12288, 4096), (4096, 4096), (4096, 128))):
        keys[f"embeddings.{idx}.weight"] = (cout, cin)
        keys[f"embeddings.{idx}.bias"] = (cout,)
    return keys


def random_state_dict(layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1000)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("bn0.weight") or ".bn" in k and k.endswith(".weight"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            sd[k] = torch.randn(shape, generator=g) / np.sqrt(max(fan_in, 1))
    return sd


@pytest.fixture(scope="module")
def cnn14_file(tmp_path_factory):
    sd = random_state_dict(cnn14_16k_layout())
    # the official STFT/mel matrices are fixed functions; random ones would give a garbage front end
    stft = _ConvStft(512, 160)
    sd["spectrogram_extractor.stft.conv_real.weight"] = stft.conv_real.weight.data.clone()
    sd["spectrogram_extractor.stft.conv_imag.weight"] = stft.conv_imag.weight.data.clone()
    import librosa

    sd["logmel_extractor.melW"] = torch.tensor(librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T)
    path = tmp_path_factory.mktemp("ckpt") / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"iteration": 560000, "model": sd}, path)  # the official layout: state dict under "model"
    return path


def test_cnn14_loads_official_layout_and_embeds(cnn14_file):
    ex = load_extractor(f"panns-cnn14:{cnn14_file}")
    assert (ex.name, ex.dim, ex.n_classes, ex.sample_rate) == ("panns-cnn14", 2048, 527, 16000)
    out = ex.embed([real_ish(1.5, seed=0), real_ish(0.2, seed=1)])  # a short clip is padded, not refused
    assert out.embeddings.shape == (2, 2048) and out.logits.shape == (2, 527)
    assert np.isfinite(out.embeddings).all() and np.isfinite(out.logits).all()
    assert (out.embeddings >= 0).all()  # ReLU output of fc1
    assert not np.allclose(out.embeddings[0], out.embeddings[1])
    again = ex.embed([real_ish(1.5, seed=0)])
    np.testing.assert_allclose(again.embeddings[0], out.embeddings[0], rtol=1e-5, atol=1e-6)
    # the loaded weights are the file's, not the initialiser's
    sd = torch.load(cnn14_file, weights_only=True)["model"]
    assert torch.equal(ex.model.fc_audioset.weight, sd["fc_audioset.weight"])


def test_cnn14_refuses_32k_checkpoint_and_wrong_layout(tmp_path):
    layout = cnn14_16k_layout()
    layout["spectrogram_extractor.stft.conv_real.weight"] = (513, 1, 1024)  # Cnn14_mAP=0.431.pth (32 kHz)
    layout["spectrogram_extractor.stft.conv_imag.weight"] = (513, 1, 1024)
    layout["logmel_extractor.melW"] = (513, 64)
    sd = {k: torch.zeros(v) for k, v in layout.items()}
    p = tmp_path / "Cnn14_mAP=0.431.pth"
    torch.save({"model": sd}, p)
    with pytest.raises(MaaError, match=r"wrong shapes.*Cnn14_16k_mAP=0.438.pth"):
        load_extractor(f"panns-cnn14:{p}")
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, p)
    with pytest.raises(MaaError, match="missing keys"):
        load_extractor(f"panns-cnn14:{p}")
    with pytest.raises(MaaError, match="not found"):
        load_extractor(f"panns-cnn14:{tmp_path / 'nope.pth'}")
    with pytest.raises(MaaError, match=r"missing the FILE after 'panns-cnn14:', e.g. panns-cnn14:Cnn14_16k_mAP=0.438.pth$"):
        load_extractor("panns-cnn14")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoints_are_never_unpickled_as_code(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _Evil()}, p)
    with pytest.raises(MaaError, match="weights-only"):
        load_checkpoint(p, numpy_ok=True)
    # numpy scalars and arrays (data only) are fine where allowed
    torch.save({"n": np.int64(3), "a": np.arange(3)}, p)
    got = load_checkpoint(p, numpy_ok=True)
    assert int(got["n"]) == 3 and list(got["a"]) == [0, 1, 2]


def test_conv_stft_matches_torch_stft():
    x = torch.from_numpy(real_ish(0.5))[None]
    power = _ConvStft(512, 160)(x)[0, 0]  # (frames, 257)
    ref = torch.stft(x[0], 512, 160, window=torch.hann_window(512), center=True, pad_mode="reflect",
                     return_complex=True).abs().pow(2).T
    torch.testing.assert_close(power, ref, rtol=1e-3, atol=1e-4)


def test_vggish_loads_official_layout(tmp_path):
    p = tmp_path / "vggish-10086976.pth"
    torch.save(random_state_dict(vggish_layout()), p)  # a plain state dict, as torchvggish ships it
    ex = load_extractor(f"vggish:{p}")
    assert (ex.name, ex.dim, ex.frame_level) == ("vggish", 128, True)
    out = ex.embed([real_ish(2.0, seed=0), real_ish(0.5, seed=1)])
    assert out.embeddings.shape == (2, 128) and out.logits is None
    assert [f.shape for f in out.frames] == [(2, 128), (1, 128)]  # 2 s -> two 0.96 s examples; 0.5 s padded to one
    np.testing.assert_allclose(out.embeddings[0], out.frames[0].mean(axis=0), rtol=1e-6)
    bad = random_state_dict(vggish_layout())
    bad["embeddings.4.weight"] = torch.zeros(256, 4096)
    torch.save(bad, p)
    with pytest.raises(MaaError, match=r"embeddings.4.weight \(256, 4096\)"):
        load_extractor(f"vggish:{p}")


def test_vggish_front_end_matches_librosa_framing():
    import librosa

    x = real_ish(2.0).astype(np.float64)
    ex = vggish_examples(x)
    assert ex.shape == (2, 96, 64)
    # VGGish frames 400 samples from i*160, Hann-windowed, zero-padded to 512. librosa centres the
    # 400-sample window inside the 512 frame (offset 56): shift the signal by 56 and the magnitudes agree.
    mag = np.abs(librosa.stft(np.pad(x, (56, 0)), n_fft=512, hop_length=160, win_length=400, window="hann",
                              center=False)).T
    ref = np.log(mag @ vggish_mel_matrix() + 0.01)
    np.testing.assert_allclose(ex.reshape(-1, 64), ref[:192], rtol=1e-4, atol=1e-4)
    m = vggish_mel_matrix()
    assert m.shape == (257, 64) and (m[0] == 0).all() and (m >= 0).all()
    peaks = m.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # bands ascend in frequency
    # 125-7500 Hz: nothing below the first edge or above the last one
    freqs = np.linspace(0, 8000, 257)
    assert m[freqs < 125].sum() == 0 and m[freqs > 7500].sum() == 0


@pytest.fixture(scope="module")
def aisfx_ex():
    return AisfxExtractor()


def test_aisfx_matches_the_package(aisfx_ex, tmp_path):
    import soundfile as sf
    import soxr
    from aisfx.preprocessing import blocking
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    w = soxr.resample(real_ish(3.0), 16000, 44100).astype(np.float32)
    sf.write(tmp_path / "a.wav", w, 44100, subtype="FLOAT")
    theirs = compute_spectrogram(str(tmp_path / "a.wav"), 44100.0, 2048, 1024, 96, 0.0, 22050.0) / aisfx_ex.NORM_MAX
    spec = aisfx_ex.spectrogram(w)
    np.testing.assert_allclose(spec, theirs.T, rtol=1e-5, atol=1e-6)  # same numbers, (time, mel) layout
    np.testing.assert_array_equal(aisfx_ex.blocks(spec), blocking(spec, 100, 50, True).astype(np.float32))
    out = aisfx_ex.embed([w, w[:20000]])
    assert out.embeddings.shape == (2, 512) and out.logits.shape == (2, aisfx_ex.n_classes) == (2, 69)
    np.testing.assert_allclose(out.probabilities().sum(axis=1), 1.0, rtol=1e-9)
    with torch.no_grad():
        want = aisfx_ex.model.get_embedding(torch.from_numpy(aisfx_ex.blocks(spec)).float()).mean(0).numpy()
    np.testing.assert_allclose(out.embeddings[0], want, rtol=1e-5, atol=1e-6)


def test_aisfx_separates_different_sounds(aisfx_ex):
    import soxr

    t = np.arange(32000) / 16000
    tone = lambda f: (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.3
    up = lambda x: soxr.resample(x, 16000, 44100).astype(np.float32)
    e = aisfx_ex.embed([up(tone(440)), up(tone(466)), up(noise)]).embeddings
    d = lambda a, b: np.linalg.norm(e[a] - e[b])
    assert d(0, 1) < d(0, 2) and d(0, 1) < d(1, 2)


def test_clap_extractor_uses_the_scorer(monkeypatch, tmp_path):
    class Scorer:
        name = "fake"

        def embed_audio(self, wavs):
            e = torch.tensor([[float(np.abs(w).mean()), 1.0] for w in wavs])
            return e / e.norm(dim=1, keepdim=True)

        def embed_text(self, texts):
            e = torch.tensor([[1.0, float(len(t))] for t in texts])
            return e / e.norm(dim=1, keepdim=True)

    monkeypatch.setattr("maa.eval.extractors.load_scorer", lambda spec, device="cpu": Scorer())
    (tmp_path / "clap.safetensors").write_bytes(b"x")
    ex = load_extractor(f"maa-clap:{tmp_path}")
    out = ex.embed([real_ish(0.5)])
    assert ex.name == "maa-clap" and ex.dim == 2 and out.embeddings.shape == (1, 2)
    assert ex.embed_text(["ab"]).shape == (1, 2)
    assert ex.fingerprint.startswith("maa-clap-v1-")


def test_unknown_extractor():
    with pytest.raises(MaaError, match="unknown; use aisfx, panns-cnn14:FILE, vggish:FILE, maa-clap:DIR or laion-clap:CKPT"):
        load_extractor("openl3")


def test_check_state_dict_lists_differences(tmp_path):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(MaaError, match=r"1 missing keys.*1 unexpected keys"):
        check_state_dict(model, {"weight": torch.zeros(2, 3), "extra": torch.zeros(1)}, tmp_path, "Linear", "fix it")
    check_state_dict(model, model.state_dict(), tmp_path, "Linear", "fix it")
    assert isinstance(Embedded(np.zeros((1, 2))).logits, type(None))


def test_clap_zero_shot_head_from_the_model_class_list(monkeypatch, tmp_path):
    import json

    class Scorer:
        dir = tmp_path
        model = types.SimpleNamespace(logit_scale=torch.tensor(np.log(20.0)))

        def embed_audio(self, wavs):
            return torch.tensor([[1.0, 0.0]] * len(wavs))

        def embed_text(self, texts):
            return torch.tensor([[1.0, 0.0] if t == "dog" else [0.0, 1.0] for t in texts])

    (tmp_path / "config.json").write_text(json.dumps({"kind": "maa-clap", "classes": ["dog", "rain"]}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    monkeypatch.setattr("maa.eval.extractors.load_scorer", lambda spec, device="cpu": Scorer())
    ex = load_extractor(f"maa-clap:{tmp_path}")
    assert ex.n_classes == 2 and ex.info()["zero_shot"]["classes"] == ["dog", "rain"]
    out = ex.embed([real_ish(0.2)])
    np.testing.assert_allclose(out.logits, [[20.0, 0.0]], rtol=1e-5)  # scale * cosine to each class prompt
    np.testing.assert_allclose(out.probabilities()[0], [1 / (1 + np.exp(-20)), 1 / (1 + np.exp(20))], rtol=1e-6)
