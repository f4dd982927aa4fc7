import librosa
import numpy as np
import torch

from maa.core.audio import DEFAULT, mel_spectrogram, mel_to_linear, num_frames
from tests.conftest import real_ish


def librosa_reference(y: np.ndarray) -> np.ndarray:
    """The framing written out with plain librosa/numpy, independently of maa.core.audio."""
    y = np.clip(y, -1, 1)
    y = np.pad(y, (384, 384), mode="reflect")
    mag = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False))
    fb = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    return np.log10(np.maximum(fb @ mag, 1e-5))[:, :-1]


def test_matches_librosa_reference():
    for seed in range(3):
        y = real_ish(3.0, seed=seed)
        ours = mel_spectrogram(y).numpy()
        ref = librosa_reference(y)
        assert ours.shape == ref.shape == (80, 3 * 16000 // 256 - 1)
        assert np.abs(ours - ref).max() < 1e-4


def test_ten_seconds_gives_624_frames():
    y = np.zeros(160000, dtype=np.float32)
    assert mel_spectrogram(y).shape == (80, 624)
    assert num_frames(160000) == 624


def test_batched_equals_single():
    ys = np.stack([real_ish(1.0, seed=s) for s in range(3)])
    batch = mel_spectrogram(torch.from_numpy(ys))
    for i in range(3):
        assert torch.allclose(batch[i], mel_spectrogram(ys[i]), atol=1e-5)


def test_silence_is_floor_and_range():
    assert torch.all(mel_spectrogram(np.zeros(16000, np.float32)) == -5.0)
    m = mel_spectrogram(real_ish(1.0))
    assert m.min() >= -5.0 and m.max() < 2.0


def test_short_signal_padded():
    m = mel_spectrogram(np.ones(160, np.float32) * 0.1)
    assert m.shape == (80, 1)


def test_mel_to_linear_roundtrip():
    y = real_ish(1.0)
    m = mel_spectrogram(y)
    lin = mel_to_linear(m)
    assert lin.shape == (DEFAULT.n_fft // 2 + 1, m.shape[-1])
    assert torch.all(lin >= 0)
    from maa.core.audio import mel_basis

    back = torch.log10((mel_basis() @ lin).clamp(min=1e-5))
    # pinv of an 80x513 basis is an exact right-inverse up to the clamp at zero
    assert (back - m).abs().mean() < 0.1
