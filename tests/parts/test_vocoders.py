import numpy as np
import pytest
import torch

from maa.core.audio import mel_spectrogram
from maa.parts.vocoders import GriffinLim, has_neural_vocoder, load_vocoder
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")


def test_griffin_lim_length_batch_and_convergence():
    x = torch.from_numpy(real_ish(1.0))
    mel = mel_spectrogram(x)  # (80, 61)
    err = {}
    for it in (0, 16):
        y = GriffinLim(n_iter=it)(mel)
        assert y.shape == (61 * 256,) and y.abs().max() <= 1.0
        err[it] = float((mel_spectrogram(torch.cat([y, torch.zeros(256)])) - mel).abs().mean())
    assert err[16] < 0.7 * err[0]  # iterations make the phase consistent with the magnitude
    batch = GriffinLim(n_iter=4)(torch.stack([mel, mel]))
    assert batch.shape == (2, 61 * 256) and torch.allclose(batch[0], GriffinLim(n_iter=4)(mel), atol=1e-5)


def test_griffin_lim_is_aligned_with_the_mel_framing():
    # a click at sample 8000: the reconstruction's energy peaks there too, not 128 samples off
    x = np.zeros(16000, np.float32)
    x[8000] = 0.9
    y = GriffinLim(n_iter=32)(mel_spectrogram(torch.from_numpy(x))).numpy()
    env = np.convolve(np.abs(y), np.ones(64) / 64, mode="same")
    assert abs(int(np.argmax(env)) - 8000) < 100


def test_load_vocoder_falls_back_to_griffin_lim(tmp_path):
    assert not has_neural_vocoder(tmp_path) and not has_neural_vocoder(None)
    v = load_vocoder(tmp_path, gl_iters=5)
    assert v.kind == "griffin-lim" and v.n_iter == 5 and v.sample_rate == 16000 and v.hop == 256


def test_load_vocoder_picks_the_neural_one(tmp_path):
    from maa.core.checkpoint import save_weights
    from maa.models.vocos import WEIGHTS, preset
    from maa.train.vocoder import VocoderTask

    task = VocoderTask(preset("tiny"))
    save_weights(tmp_path / "vocoder", {WEIGHTS: task.gen}, task.export_config())
    v = load_vocoder(tmp_path)
    assert v.kind != "griffin-lim"
    assert v(torch.full((80, 10), -3.0)).shape == (10 * 256,)
