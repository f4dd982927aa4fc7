from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "official-golden"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "official-keys"


def convert_tiny(out: Path, **kw) -> Path:
    from maa.convert.make_an_audio import convert_make_an_audio

    return convert_make_an_audio(GOLDEN / "tiny_maa1_full.ckpt", out, vocoder=GOLDEN / "bigvgan",
                                 config=GOLDEN / "tiny_maa1.yaml", bert_config=GOLDEN / "tiny_bert_config.json", **kw)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny official checkpoint converted once per module (a few seconds)."""
    return convert_tiny(tmp_path_factory.mktemp("conv") / "maa1")


def convert_wide(out: Path) -> Path:
    """The wide-UNet fixture (channel_mult [1, 2]: its GroupNorm groups hold 2 channels, so the timestep
    shift reaches the output) converted with the README's command."""
    from maa.convert.make_an_audio import convert_make_an_audio

    return convert_make_an_audio(GOLDEN / "tiny_maa1_wide_full.ckpt", out, vocoder=GOLDEN / "bigvgan",
                                 config=GOLDEN / "tiny_maa1_wide.yaml", bert_config=GOLDEN / "tiny_bert_config.json")


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    return convert_wide(tmp_path_factory.mktemp("conv") / "maa1_wide")
