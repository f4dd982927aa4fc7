"""The one row -> mel loader (row_mel, RowMels, random_crop) and the data sets that use it."""

import numpy as np
import pytest
import soundfile as sf
import torch

from maa.core.audio import load_audio, mel_spectrogram
from maa.core.errors import MaaError
from maa.data.mels import MelCrops, RowMels, random_crop, row_mel
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def rows(tmp_path):
    """Row 0 has a mel file, row 1 only audio (a 2 s clip), row 2 a mel file with a NaN."""
    rng = np.random.default_rng(0)
    m = (rng.standard_normal((80, 50)) - 3).astype(np.float32)
    np.save(tmp_path / "a.npy", m)
    sf.write(tmp_path / "b.wav", real_ish(2.0, seed=1), 16000)
    bad = m.copy()
    bad[3, 7] = np.nan
    np.save(tmp_path / "c.npy", bad)
    return [{"id": "a", "mel": str(tmp_path / "a.npy"), "caption": "x"},
            {"id": "b", "audio": str(tmp_path / "b.wav"), "caption": "y"},
            {"id": "c", "mel": str(tmp_path / "c.npy"), "caption": "z"}], m


def test_row_mel_reads_the_file_or_computes_it_from_audio(rows):
    rs, m = rows
    assert np.array_equal(row_mel(rs[0]), m)
    ref = mel_spectrogram(load_audio(rs[1]["audio"])).numpy()
    assert np.array_equal(row_mel(rs[1]), ref)
    assert row_mel(rs[1], max_seconds=1.0).shape[1] < ref.shape[1]
    with pytest.raises(MaaError, match=r"c\.npy: the mel has NaN or infinite values"):
        row_mel(rs[2])
    with pytest.raises(MaaError, match="neither 'mel' nor 'audio'"):
        row_mel({"id": "q"})


def test_row_mels_keeps_float16_once_read(rows):
    rs, m = rows
    kept = RowMels(rs)
    first = kept[0]
    assert first.dtype == np.float16 and kept[0] is first
    assert np.abs(first.astype(np.float32) - m).max() < 4e-3  # float16's step at |x| < 8
    assert RowMels(rs, cache=False)[0].dtype == np.float32
    kept.clear()
    assert kept[0] is not first


def test_random_crop_tiles_short_mels_and_stays_inside_long_ones():
    m = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    assert torch.equal(random_crop(m, 4, None), torch.from_numpy(m[None, :, :4]))
    short = random_crop(m, 25, None)[0].numpy()
    assert short.shape == (2, 25) and np.array_equal(short[:, 10:20], m) and np.array_equal(short[:, 20:], m[:, :5])
    rng = np.random.default_rng(0)
    starts = {int(random_crop(m, 4, rng)[0, 0, 0]) for _ in range(200)}
    assert starts == set(range(7))  # every start 0..10-4, nothing past the end


def test_every_trainer_reads_a_row_the_same_way(rows):
    from maa.train.clap import clip_mel
    from maa.train.ldm import CaptionedMels

    rs, _ = rows
    for i in (0, 1):
        ref = row_mel(rs[i]).astype(np.float16)
        assert np.array_equal(MelCrops(rs, frames=16).mel(i), ref)
        assert np.array_equal(CaptionedMels(rs, frames=16).mel(i), ref)
        assert np.array_equal(clip_mel(rs[i]).astype(np.float16), ref)
        crop_a = MelCrops(rs, frames=16).get(i, np.random.default_rng(5))
        crop_b = CaptionedMels(rs, frames=16).get(i, np.random.default_rng(5))["mel"]
        assert torch.equal(crop_a, crop_b)
    for reader in (lambda: MelCrops(rs, frames=16).mel(2), lambda: CaptionedMels(rs, frames=16).mel(2),
                   lambda: clip_mel(rs[2])):
        with pytest.raises(MaaError, match="NaN"):
            reader()
