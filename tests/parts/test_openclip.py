"""The openclip: encoder kind on the tiny OpenCLIP config (random weights built locally, or a
weights file); the official numbers are in tests/convert/test_make_an_audio_img.py."""

from pathlib import Path

import pytest
import torch

from maa.core.errors import MaaError

pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")
TINY = Path(__file__).resolve().parents[1] / "fixtures" / "official_x2a" / "tiny_openclip_config.json"


def test_random_tower_text_and_image_one_token():
    from PIL import Image

    from maa.parts.openclip import load_openclip

    enc = load_openclip(f"{TINY}/random")
    text = enc.encode(["a dog barks", ""])
    img = enc.encode_images([Image.new("RGB", (40, 30), (200, 10, 10))])
    assert text.tokens.shape == (2, 1, 128) and img.shape == (1, 128) and bool(text.mask.all())
    assert torch.allclose(text.tokens.norm(dim=-1), torch.ones(2, 1)) and torch.allclose(img.norm(dim=-1), torch.ones(1))
    assert torch.equal(text.pooled, text.tokens[:, 0])
    again = load_openclip(f"{TINY}/random")  # seeded: every process builds the same tower
    assert torch.allclose(again.encode(["a dog barks"]).tokens, text.tokens[:1], atol=1e-6)  # batch of 1 vs 2
    enc.register("<picture>", img[0])
    assert torch.equal(enc.encode(["<picture>", "a dog barks"]).tokens[0, 0], img[0])


def test_weights_file_round_trip(tmp_path):
    from safetensors.torch import save_file

    from maa.parts.openclip import build_model, load_openclip

    model = build_model(__import__("json").loads(TINY.read_text()), seed=7)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask"}, str(tmp_path / "w.safetensors"))
    enc = load_openclip(f"{TINY}/{tmp_path / 'w.safetensors'}")
    with torch.no_grad():
        want = model.encode_text(enc.tokenize(["rain"]))
    assert torch.allclose(enc.encode(["rain"]).pooled[0], want[0] / want[0].norm(), atol=1e-6)
    assert not torch.equal(enc.encode(["rain"]).pooled, load_openclip(f"{TINY}/random").encode(["rain"]).pooled)


@pytest.mark.parametrize("rest, message", [
    ("ViT-H-14/laion2b_s32b_b79k", "not in the local Hugging Face cache; on a machine with internet run"),
    ("ViT-H-14/no_such_tag", "'no_such_tag' is not a pretrained tag of ViT-H-14"),
    ("no-such-model/x", "not a folder, an open_clip model name or a model config .json"),
    (f"{TINY}", "no weights named; add /PRETRAINED"),
])
def test_spec_errors_one_line(rest, message, monkeypatch, tmp_path):
    from maa.parts.openclip import load_openclip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing can be found
    with pytest.raises(MaaError, match="^openclip:") as e:
        load_openclip(rest)
    assert message in str(e.value) and "\n" not in str(e.value)
