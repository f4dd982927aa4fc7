"""Checkpoint helpers shared by every reader: file hashes, the `module.` prefix, config.json parsing."""

import hashlib
import re

import pytest
import torch

from maa.core.checkpoint import parse_config, save_weights, load_weights, sha256_file, strip_prefix
from maa.core.errors import MaaError


def test_sha256_of_one_file_and_of_several_end_to_end(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(bytes(range(256)) * 40)
    b.write_bytes(b"tail")
    assert sha256_file(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    assert sha256_file(a, b, chunk=7) == hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()


def test_strip_prefix_only_where_present():
    sd = {"module.conv.weight": 1, "head.bias": 2, "x.module.y": 3}
    assert strip_prefix(sd) == {"conv.weight": 1, "head.bias": 2, "x.module.y": 3}
    assert strip_prefix({"model.a": 1}, "model.") == {"a": 1}


def test_configs_remember_their_file_for_messages(tmp_path):
    from maa.models.unet import UNetConfig

    save_weights(tmp_path, {"m": torch.nn.Linear(2, 2)}, {"unet": {"channels": 7}, "list": [{"a": 1}]})
    cfg = load_weights(tmp_path, {"m": torch.nn.Linear(2, 2)})
    assert cfg == {"unet": {"channels": 7}, "list": [{"a": 1}]}  # still a plain JSON dict to every caller
    with pytest.raises(MaaError, match="^" + re.escape(f"{tmp_path / 'config.json'}: unet.channels: 7 is outside")):
        UNetConfig.from_dict(cfg["unet"])


@pytest.mark.parametrize("text,message", [
    ("{", "not valid JSON"),
    ("[]", "want a JSON object"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
])
def test_parse_config_errors_are_one_line(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(MaaError, match=message) as e:
        parse_config(tmp_path / "config.json")
    assert "\n" not in str(e.value)
    (tmp_path / "config.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(MaaError, match="not valid JSON"):
        parse_config(tmp_path / "config.json")
