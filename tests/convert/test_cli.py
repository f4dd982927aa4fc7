"""`maa convert make-an-audio` then `maa generate --model` from the command line, on the tiny fixture."""

import pytest
import soundfile as sf
from maa.commands.cli import app
from typer.testing import CliRunner

from tests.convert.conftest import GOLDEN


@pytest.mark.slow  # a conversion and a generation, ~10 s of CPU; the parts are tested one by one in the default suite
def test_convert_then_generate(tmp_path, one_thread):
    out = tmp_path / "maa1"
    r = CliRunner().invoke(app, ["convert", "make-an-audio", str(GOLDEN / "tiny_maa1_full.ckpt"), "--vocoder",
                                 str(GOLDEN / "bigvgan"), "--config", str(GOLDEN / "tiny_maa1.yaml"), "--bert-config",
                                 str(GOLDEN / "tiny_bert_config.json"), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert (out / "README.md").exists() and (out / "vocoder" / "bigvgan.safetensors").exists()
    wav = tmp_path / "dog.wav"
    r = CliRunner().invoke(app, ["generate", "a dog barks", "-o", str(wav), "--model", str(out), "--steps", "2",
                                 "--sampler", "ddim", "--duration", "1", "-q"])
    assert r.exit_code == 0, r.output
    audio, sr = sf.read(wav)
    assert sr == 16000 and len(audio) > 8000 and abs(audio).max() > 0


def test_convert_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(app, ["convert", "make-an-audio", str(GOLDEN / "tiny_maa1_malicious_system.ckpt"),
                                 "-o", str(tmp_path / "x"), "-q"])
    assert r.exit_code == 1 and "posix.system" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["convert", "make-an-audio", str(GOLDEN), "-o", str(tmp_path / "y"), "-q"])
    assert r.exit_code == 1 and "is a folder" in r.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
