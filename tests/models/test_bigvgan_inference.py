"""BigVGAN's inference path (in-place SnakeBeta, the upsampler's gain in its filter) gives the same
bits as the plain formulas that autograd runs."""

import torch
import torch.nn.functional as F

from maa.models.bigvgan import BigVGAN, BigVGANConfig, SnakeBeta, UpSample1d


def _model():
    torch.manual_seed(0)
    m = BigVGAN(BigVGANConfig(upsample_initial_channel=64)).eval()
    for mod in m.modules():
        if isinstance(mod, SnakeBeta):
            mod.alpha.data.normal_(0, 0.3)
            mod.beta.data.normal_(0, 0.3)
    return m


def test_inference_equals_the_autograd_path():
    m, mel = _model(), torch.randn(2, 80, 12)
    with torch.no_grad():
        fast = m(mel)
    plain = m(mel)  # parameters require grad: the out-of-place formulas
    assert plain.requires_grad and torch.equal(fast, plain.detach())
    assert fast.abs().max() > 1e-3


def test_upsampler_gain_folded_exactly():
    up, x = UpSample1d(2, 12), torch.randn(1, 5, 33)
    c = x.shape[1]
    ref = 2 * F.conv_transpose1d(F.pad(x, (up.pad, up.pad), mode="replicate"), up.filter.expand(c, -1, -1), stride=2, groups=c)
    assert torch.equal(up(x), ref[..., up.crop_left:ref.shape[-1] - up.crop_right])
