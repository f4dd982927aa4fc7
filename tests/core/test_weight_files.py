"""Weight files that are not what their name says: one MaaError naming the file, no allocation."""

import json
import struct

import pytest
import torch
from torch import nn

from maa.core.checkpoint import load_safetensors, load_weights, save_weights
from maa.core.errors import MaaError


def _damage(path, kind):
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickle":
        torch.save({"weight": torch.zeros(4, 4)}, path)
    elif kind == "shape_overflow":
        header = json.dumps({"weight": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    elif kind == "header_2e62":
        path.write_bytes(struct.pack("<Q", 2**62) + b"{}" + bytes(64))
    elif kind == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("kind, says", [
    ("truncated", "damaged or truncated"), ("pickle", "a pickle"), ("shape_overflow", "damaged or truncated"),
    ("header_2e62", "damaged or truncated"), ("empty", "damaged or truncated"),
])
def test_bad_safetensors_name_the_file(tmp_path, kind, says):
    m = nn.Linear(4, 4)
    save_weights(tmp_path, {"lin": m}, {"kind": "test"})
    _damage(tmp_path / "lin.safetensors", kind)
    with pytest.raises(MaaError, match=rf"lin.safetensors: not a readable safetensors file: {says}") as e:
        load_weights(tmp_path, {"lin": nn.Linear(4, 4)})
    assert "\n" not in str(e.value)
    with pytest.raises(MaaError, match="lin.safetensors"):
        load_safetensors(tmp_path / "lin.safetensors")


def test_good_file_round_trips(tmp_path):
    m = nn.Linear(4, 4)
    save_weights(tmp_path, {"lin": m})
    back = load_safetensors(tmp_path / "lin.safetensors")
    assert torch.equal(back["weight"], m.weight.detach()) and torch.equal(back["bias"], m.bias.detach())
