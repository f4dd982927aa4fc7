import pytest
import torch

from maa.core.checkpoint import num_params
from maa.core.errors import MaaError
from maa.models.unet import PRESETS, UNet, UNetConfig, preset, timestep_embedding

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(b=2, w=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, 10, w, generator=g)
    ctx = torch.randn(b, 5, 384, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:b]
    return x, torch.tensor([10, 900])[:b], ctx, mask


def _randomised(cfg):
    torch.manual_seed(0)
    m = UNet(cfg).eval()
    with torch.no_grad():  # the zero-initialised output layers would hide every dependency
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return m


def test_base_is_the_papers_configuration():
    b = PRESETS["base"]
    assert (b.channels, b.channel_mult, b.num_res_blocks, b.attn_levels, b.num_heads, b.transformer_depth) == \
        (320, (1, 2), 2, (0, 1), 8, 1)
    with torch.device("meta"):  # count parameters without allocating 160 M of them
        assert 150e6 < num_params(UNet(preset("base", context_dim=1024))) < 170e6


@pytest.mark.parametrize("w", [78, 39, 16, 7, 1])
def test_any_latent_width(w):
    m = UNet(preset("tiny"))
    x, t, ctx, mask = _inputs(w=w)
    assert m(x, t, ctx, mask).shape == x.shape


def test_starts_as_zero_and_depends_on_time_and_text():
    x, t, ctx, mask = _inputs()
    assert torch.all(UNet(preset("tiny"))(x, t, ctx, mask) == 0)  # zero-init output layer
    m = _randomised(preset("tiny"))
    with torch.no_grad():
        y = m(x, t, ctx, mask)
        assert not torch.allclose(y, m(x, t + 50, ctx, mask))
        assert not torch.allclose(y, m(x, t, ctx + 1.0, mask))


def test_masked_tokens_are_ignored_and_samples_are_independent():
    m = _randomised(preset("tiny"))
    x, t, ctx, mask = _inputs()
    ctx2 = ctx.clone()
    ctx2[0, 3:] = 99.0  # padding positions of sample 0
    with torch.no_grad():
        y, y2 = m(x, t, ctx, mask), m(x, t, ctx2, mask)
        assert torch.allclose(y, y2, atol=1e-5)
        one = m(x[1:], t[1:], ctx[1:], mask[1:])
    assert torch.allclose(one, y[1:], atol=1e-5)


def test_timestep_embedding_and_config_round_trip():
    e = timestep_embedding(torch.tensor([0.0, 10.0]), 7)
    assert e.shape == (2, 7) and torch.allclose(e[0, :3], torch.ones(3))
    cfg = preset("small", context_dim=512)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(MaaError, match="preset"):
        preset("huge")


def test_grad_checkpoint_gives_the_same_gradients():
    x, t, ctx, mask = _inputs()
    grads = []
    for ck in (False, True):
        m = _randomised(preset("tiny", grad_checkpoint=ck)).train()
        m(x, t, ctx, mask).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def _columns_of_constant_input(coords: bool, w: int = 160):
    """Output of a randomised tiny UNet for a latent that is the same in every column."""
    m = _randomised(preset("tiny", coords=coords))
    x = torch.randn(1, 4, 10, 1, generator=torch.Generator().manual_seed(1)).expand(1, 4, 10, w).contiguous()
    ctx = torch.randn(1, 5, 384, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return m(x, torch.tensor([500]), ctx)


def test_position_maps_tell_the_start_of_a_clip_from_its_end():
    # Without them the network is shift-invariant: away from the borders, every column of a
    # column-constant input gives the same output, so "first" and "then" cannot be told apart.
    plain = _columns_of_constant_input(coords=False)
    torch.testing.assert_close(plain[..., 64], plain[..., 96], atol=1e-5, rtol=1e-4)
    pos = _columns_of_constant_input(coords=True)
    assert (pos[..., 64] - pos[..., 96]).abs().max() > 1e-3


def test_configs_saved_before_position_maps_load_without_them():
    old = {k: v for k, v in preset("small").to_dict().items() if k != "coords"}
    cfg = UNetConfig.from_dict(old)
    assert cfg.coords is False and preset("small").coords is True
    assert UNet(cfg).conv_in.in_channels == 4 and UNet(preset("tiny")).conv_in.in_channels == 6
