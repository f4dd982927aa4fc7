import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def real_ish(seconds: float = 2.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato, a noise burst and an onset: spectrally rich, not a pure sine."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8))
    noise = rng.standard_normal(len(t)) * np.exp(-((t - seconds / 2) ** 2) / 0.01) * 0.3
    env = np.minimum(1.0, t * 20)
    # A -60 dBFS noise floor, as in any recording: without it, bins 7 decades below the peak
    # sit at float32's rounding level, where no float32 STFT agrees with another to 1e-4.
    floor = 1e-3 * rng.standard_normal(len(t))
    return (0.6 * env * x + noise + floor).astype(np.float32)


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core CPU: extra torch threads only spin-wait against other processes."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def signal():
    return real_ish()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny generation model folder (tests/ldm_fixtures.py), made once per run; tests only read it."""
    from tests.ldm_fixtures import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("model"))
