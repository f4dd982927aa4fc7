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
