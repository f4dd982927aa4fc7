import numpy as np
import pytest
import soundfile as sf

from maa.core.audio import load_audio, save_wav
from maa.core.errors import MaaError
from tests.conftest import real_ish


def test_roundtrip_wav(tmp_path):
    y = real_ish(1.0) * 0.5
    save_wav(tmp_path / "a.wav", y)
    z = load_audio(tmp_path / "a.wav")
    assert z.dtype == np.float32 and z.shape == y.shape
    assert np.abs(z - y).max() < 1e-3  # 16-bit quantisation
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_formats(tmp_path, fmt, ext):
    y = real_ish(1.0) * 0.5
    p = tmp_path / f"a.{ext}"
    sf.write(p, y, 16000, format=fmt)
    z = load_audio(p)
    assert abs(len(z) - len(y)) < 2000  # mp3 adds encoder delay/padding
    assert np.corrcoef(z[:8000], y[:8000])[0, 1] > 0.5 or fmt == "MP3"
    assert np.abs(z).max() > 0.1


def test_downmix_and_resample(tmp_path):
    t = np.arange(96000) / 96000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    six = np.stack([tone] * 6, axis=1)
    sf.write(tmp_path / "six.wav", six, 96000, subtype="FLOAT")
    z = load_audio(tmp_path / "six.wav")
    assert z.shape == (16000,)
    spec = np.abs(np.fft.rfft(z))
    assert abs(np.argmax(spec) * 16000 / len(z) - 440) < 2
    assert abs(np.abs(z[1000:-1000]).max() - 0.5) < 0.01  # averaging keeps the level
    sf.write(tmp_path / "low.wav", tone[::12], 8000)
    assert load_audio(tmp_path / "low.wav").shape == (16000,)


def test_max_seconds_reads_only_a_prefix(tmp_path):
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 30, np.float32), 16000)
    assert load_audio(tmp_path / "long.wav", max_seconds=2.0).shape == (32000,)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not audio\n" * 10), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 5), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 16000), "zero-length"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT"), "NaN"),
        (lambda p: sf.write(p, np.array([0.1, np.inf] * 100, np.float32), 16000, subtype="FLOAT"), "NaN or infinite"),
    ],
)
def test_bad_files_give_one_line(tmp_path, make, message):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(MaaError) as e:
        load_audio(p)
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(MaaError, match="file not found"):
        load_audio(tmp_path / "nope.wav")


def test_hour_long_refused_whole_but_excerpt_ok(tmp_path):
    p = tmp_path / "hour.wav"
    with sf.SoundFile(p, "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        block = np.zeros(8000 * 60, np.float32)
        for _ in range(60):
            f.write(block)
    with pytest.raises(MaaError, match="too long to load whole"):
        load_audio(p)
    assert load_audio(p, max_seconds=10.0).shape == (160000,)


def test_save_refuses_nan(tmp_path):
    with pytest.raises(MaaError, match="NaN"):
        save_wav(tmp_path / "x.wav", np.array([0.0, np.nan]))
    assert not (tmp_path / "x.wav").exists()


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    save_wav(tmp_path / "p.wav", np.zeros(160))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.wav").stat().st_mode & 0o777 == 0o666 & ~umask


def test_truncated_wav_and_clipped_floats_warn(tmp_path):
    import warnings

    from maa.core.errors import MaaWarning

    x = (0.5 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    sf.write(tmp_path / "t.wav", x, 16000, subtype="PCM_16")
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: 44 + 4800 * 2])  # 0.3 s of the header's 1 s
    with pytest.warns(MaaWarning, match=r"t.wav: truncated: its header promises 1.00 s, the file holds 0.30 s"):
        y = load_audio(tmp_path / "t.wav")
    np.testing.assert_allclose(y, x[:4800], atol=1e-4)
    sf.write(tmp_path / "loud.wav", 3 * x, 16000, subtype="FLOAT")
    over = int(np.count_nonzero(np.abs(3 * x) > 1))
    with pytest.warns(MaaWarning, match=rf"loud.wav: {over} sample\(s\) beyond \+-1 \(peak 1.50\) clipped"):
        assert load_audio(tmp_path / "loud.wav").max() == 1.0
    sf.write(tmp_path / "ok.wav", x, 16000, subtype="PCM_16")
    sf.write(tmp_path / "ok.flac", x, 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaaWarning)
        load_audio(tmp_path / "ok.wav"), load_audio(tmp_path / "ok.flac")
