"""hf: text-encoder folders whose weights are not what they should be: refused in one line,
never run with transformers' random fill-ins."""

import os

import pytest
import torch

from maa.core.errors import MaaError
from maa.parts.text import load_text_encoder


class _Payload:
    def __reduce__(self):  # unpickling would call os.getcwd: harmless, and refused all the same
        return (os.getcwd, ())


def _folder(tmp_path, name, model_cls="BertModel"):
    import transformers
    from transformers import BertConfig, BertTokenizerFast

    from maa.parts.text import minilm_dir

    d = tmp_path / name
    tok = BertTokenizerFast.from_pretrained(minilm_dir())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    torch.manual_seed(0)
    getattr(transformers, model_cls)(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_missing_tensors_are_an_error_naming_them(tmp_path):
    from safetensors.torch import load_file, save_file

    d = _folder(tmp_path, "sparse")
    sd = load_file(d / "model.safetensors")
    save_file({k: v for k, v in sd.items() if "encoder.layer.0.attention" not in k}, d / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(MaaError, match=r"hf:.*sparse: the weights lack \d+ .*encoder\.layer\.0\.attention"):
        load_text_encoder(f"hf:{d}")


def test_pickled_bin_with_a_payload_is_refused_in_one_line(tmp_path):
    d = _folder(tmp_path, "pickled")
    (d / "model.safetensors").unlink()
    torch.save({"w": _Payload()}, d / "pytorch_model.bin")
    with pytest.raises(MaaError, match=r"pickled: refused to load its pickled weights.*posix.getcwd") as e:
        load_text_encoder(f"hf:{d}")
    assert "\n" not in str(e.value)


def test_truncated_weights_are_one_line(tmp_path):
    d = _folder(tmp_path, "cut")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(MaaError, match=r"cut: could not load"):
        load_text_encoder(f"hf:{d}")


def test_heads_we_do_not_use_are_fine(tmp_path):
    """A masked-LM checkpoint: extra `cls.*` tensors and no pooler are normal, not an error."""
    d = _folder(tmp_path, "mlm", "BertForMaskedLM")
    enc = load_text_encoder(f"hf:{d}")
    assert enc.dim == 32 and enc.encode(["a dog barks"]).tokens.shape == (1, 6, 32)
