import numpy as np
import torch

from maa.parts.vocoders import DomainVocoder, for_domain, log10_to_normdb, normdb_to_log10


def test_normdb_log10_maps_follow_transforms_16000():
    mag = torch.tensor([1e-6, 1e-4, 1e-3, 0.1, 1.0, 10.0, 100.0])
    # AudioGPT's TRANSFORMS_16000: 20 log10(max(mag, 1e-5)) - 20 + 100, / 100, clipped to [0, 1]
    mel01 = ((20 * np.log10(np.maximum(mag.numpy(), 1e-5)) - 20 + 100) / 100).clip(0, 1)
    x = torch.from_numpy(2 * mel01 - 1).float()
    assert torch.allclose(log10_to_normdb(torch.log10(mag.clamp(min=1e-5))), x, atol=1e-6)
    inside = (mel01 > 0) & (mel01 < 1)
    assert torch.allclose(normdb_to_log10(x)[inside], torch.log10(mag)[inside], atol=1e-5)


class Rec:
    def __init__(self, kind):
        self.kind, self.seen, self.n_iter = kind, None, 7

    def __call__(self, mel):
        self.seen = mel
        return mel


def test_domain_vocoder_feeds_each_vocoder_its_input():
    x = torch.tensor([[-1.5, -1.0, 0.0, 0.5, 1.2]])
    neural = for_domain(Rec("bigvgan"), "normdb")
    neural(x)
    assert torch.equal(neural.seen, torch.tensor([[0.0, 0.0, 0.5, 0.75, 1.0]]))  # clamp((x+1)/2, 0, 1)
    gl = for_domain(Rec("griffin-lim"), "normdb")
    gl(x.numpy())
    assert torch.allclose(gl.seen, torch.tensor([[-4.0, -4.0, -1.5, -0.25, 1.0]]))
    assert gl.kind == "griffin-lim" and gl.n_iter == 7  # attributes pass through
    gl.n_iter = 3
    assert gl._inner.n_iter == 3
    plain = Rec("bigvgan")
    assert for_domain(plain, None) is plain and for_domain(plain, "log10") is plain
    assert isinstance(neural, DomainVocoder)


def test_input_mels_reach_the_model_in_its_domain():
    from maa.parts.vocoders import to_model_domain

    mel = torch.tensor([[-5.0, -4.0, -1.5, 1.0, 2.0]])
    assert to_model_domain(mel, None) is mel and to_model_domain(mel, "log10") is mel
    assert torch.allclose(to_model_domain(mel, "normdb"), torch.tensor([[-1.0, -1.0, 0.0, 1.0, 1.0]]))
