"""maa.core.checkpoint.mmap_safetensors / assign_weights / load_weights(mmap=True): the same tensors
as safetensors' own reader, no copy of them, the file never written, bad files refused alike."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from maa.core.checkpoint import assign_weights, load_weights, mmap_safetensors, save_weights, uninitialized
from maa.core.errors import MaaError


def test_same_tensors_as_safetensors(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {  # odd element counts and mixed item sizes: later tensors start at unaligned offsets
        "a": torch.randn(3, generator=g).half(), "b": torch.randn(2, 5, generator=g), "c": torch.arange(7),
        "d": torch.tensor([True, False, True]), "e": torch.randn(5, generator=g).bfloat16(), "f": torch.zeros(0, 4),
        "s": torch.tensor(2.5, dtype=torch.float64),
    }
    path = tmp_path / "w.safetensors"
    save_file(state, path)
    got, ref = mmap_safetensors(path), load_file(path)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape and torch.equal(got[k], ref[k]), k
    before = path.read_bytes()
    got["b"].add_(1.0)  # copy-on-write: the tensor changes, the file does not
    assert path.read_bytes() == before and torch.equal(got["b"], ref["b"] + 1)


@pytest.mark.parametrize("damage", ["truncate", "pickle"])
def test_bad_files_are_refused_as_the_plain_reader_refuses_them(tmp_path, damage):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(1000)}, path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        torch.save({"w": torch.ones(3)}, path)
    with pytest.raises(MaaError, match="not a readable safetensors file"):
        mmap_safetensors(path)


def _net():
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_load_weights_mmap_is_the_plain_load_without_copies(tmp_path):
    torch.manual_seed(0)
    ref = _net()
    save_weights(tmp_path, {"m": ref})
    plain, mapped = _net(), None
    load_weights(tmp_path, {"m": plain})
    with uninitialized():
        mapped = _net()
    load_weights(tmp_path, {"m": mapped}, mmap=True)
    x = torch.randn(2, 2, 6, 6)
    assert torch.equal(plain(x), mapped(x)) and torch.equal(ref(x), mapped(x))
    # the parameters are the file's pages, not copies: one mapping holds them all
    ptrs = sorted(p.untyped_storage().data_ptr() for p in mapped.parameters())
    assert ptrs[-1] - ptrs[0] < (tmp_path / "m.safetensors").stat().st_size
    assert all(isinstance(p, nn.Parameter) for p in mapped.parameters())


def test_assign_converts_dtype_and_checks_shapes(tmp_path):
    torch.manual_seed(0)
    ref = _net()
    half = {k: v.half() for k, v in ref.state_dict().items()}
    m = assign_weights(_net(), dict(half))
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert torch.equal(m[0].weight, half["0.weight"].float())
    save_weights(tmp_path, {"m": nn.Linear(3, 3)})
    with pytest.raises(MaaError, match="do not fit the model"):
        load_weights(tmp_path, {"m": nn.Linear(3, 4)}, mmap=True)
