"""maa.core.checkpoint.uninitialized: no random draws inside, torch.nn.init restored after, loads exact."""

import pytest
import torch
from torch import nn

from maa.core.checkpoint import load_weights, save_weights, uninitialized


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Linear(8, 4), nn.Embedding(10, 4), nn.LayerNorm(4))


def test_skips_the_random_draws_and_restores_init():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    with uninitialized():
        build()
    assert torch.equal(torch.random.get_rng_state(), before)  # nothing was drawn
    with pytest.raises(RuntimeError):
        with uninitialized():
            raise RuntimeError("boom")
    torch.manual_seed(0)
    build()
    assert not torch.equal(torch.random.get_rng_state(), before)  # init is back


def test_strict_load_gives_the_saved_model(tmp_path):
    torch.manual_seed(1)
    ref = build()
    save_weights(tmp_path, {"m": ref})
    with uninitialized():
        m = build()
    load_weights(tmp_path, {"m": m})
    for (k, a), (_, b) in zip(ref.state_dict().items(), m.state_dict().items()):
        assert torch.equal(a, b), k
