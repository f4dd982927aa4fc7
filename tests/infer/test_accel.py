"""maa.infer.sampling: off (and a no-op) on the CPU, on by default on CUDA, equal results where it claims."""

from types import SimpleNamespace

import pytest
import torch

from maa.core.errors import MaaError
from maa.infer.sampling import Fast, FastPath, FastUNet, accelerate, restore
from maa.models.unet import UNet, preset

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def tiny_unet():
    torch.manual_seed(0)
    u = UNet(preset("tiny", context_dim=16)).eval()
    for p in u.parameters():  # the zero-initialised output layers would make every output 0
        p.data.normal_(0, 0.2)
    return u


def inputs(b=2, length=5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 4, 10, 12, generator=g)
    ctx = torch.randn(b, length, 16, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[1, 3:] = False
    return x, torch.tensor([10, 900]), ctx, mask


def test_defaults_by_device():
    cpu = FastPath.for_device("cpu")
    assert not cpu.active and cpu.describe() == "eager fp32"
    gpu = FastPath.for_device("cuda")
    assert (gpu.bf16, gpu.compile, gpu.cuda_graphs, gpu.channels_last) == (True, True, True, False)
    assert FastPath.for_device("cuda", compile=False).cuda_graphs is False  # graphs come with compile
    assert FastPath.for_device("cuda", bf16=False).describe() == "compile+cuda-graphs"
    assert FastPath.for_device("cpu", bf16=True).bf16 is False  # no CPU autocast: it would change results


def test_parse_fast_option():
    flags = lambda spec, dev="cuda": FastPath.parse(spec, dev).flags()  # (bf16, compile, graphs, channels-last)
    assert flags("auto") == (True, True, True, False) and flags("auto", "cpu") == (False,) * 4
    assert flags("off") == (False,) * 4
    assert flags("no-graphs") == (True, True, False, False)
    assert flags("no-compile") == (True, False, False, False)  # no graphs without compile
    assert flags("bf16") == (True, False, False, False)
    assert flags("bf16,compile,graphs,channels-last") == (True,) * 4
    assert flags("compile", "cpu") == (False, True, False, False)
    for bad, msg in (("bf16", "CUDA only"), ("fast", "want auto"), ("graphs", "need CUDA")):
        with pytest.raises(MaaError, match=msg):
            FastPath.parse(bad, "cpu")
    with pytest.raises(MaaError, match="want auto"):
        FastPath.parse("bf16,no-compile", "cuda")


def test_cpu_default_changes_nothing():
    unet, dec, voc = tiny_unet(), torch.nn.Conv2d(4, 1, 1), torch.nn.Conv1d(80, 1, 1)
    model = SimpleNamespace(unet=unet, vae=SimpleNamespace(decoder=dec), vocoder=SimpleNamespace(model=voc, kind="vocos"))
    assert accelerate(model, FastPath.for_device("cpu")) is model
    assert model.unet is unet and model.vae.decoder is dec and model.vocoder.model is voc


def test_accelerate_and_restore():
    unet, dec, voc = tiny_unet(), torch.nn.Conv2d(4, 1, 1), torch.nn.Conv1d(80, 1, 1)
    model = SimpleNamespace(unet=unet, vae=SimpleNamespace(decoder=dec), vocoder=SimpleNamespace(model=voc, kind="vocos"))
    accelerate(model, FastPath(channels_last=True))
    assert isinstance(model.unet, FastUNet) and isinstance(model.vae.decoder, Fast) and isinstance(model.vocoder.model, Fast)
    assert model.unet.cfg is unet.cfg  # attributes of the wrapped module stay reachable
    assert not model.vocoder.model.bf16  # Vocos' inverse STFT stays fp32
    assert sum(1 for _ in model.unet.parameters()) == sum(1 for _ in unet.parameters())
    restore(model)
    assert model.unet is unet and model.vae.decoder is dec and model.vocoder.model is voc
    assert unet.conv_in.weight.is_contiguous()


def test_channels_last_same_output():
    unet = tiny_unet()
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        ref = unet(x, t, ctx, mask)
        out = FastUNet(unet, FastPath(channels_last=True))(x, t, ctx, mask)
    assert out.dtype == torch.float32 and ref.abs().max() > 0.1
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_static_token_padding_same_output():
    """Padding the text tokens to max_length (for static graph shapes) masks the extra keys out."""
    unet = tiny_unet()
    x, t, ctx, mask = inputs()
    fast = FastUNet(unet, FastPath(max_length=9))
    fast.pad_tokens = True
    seen = []
    unet.register_forward_pre_hook(lambda m, args: seen.append(args[2].shape[1]))
    with torch.no_grad():
        ref = unet(x, t, ctx, mask)
        out = fast(x, t, ctx, mask)
        out_nomask = fast(x, t, ctx, None)
        ref_nomask = unet(x, t, ctx, None)
    assert seen == [5, 9, 9, 5]
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(out_nomask, ref_nomask, atol=1e-5)


@pytest.mark.gpu
@cuda
def test_cuda_fast_path_close_to_fp32():
    unet = tiny_unet().cuda()
    x, t, ctx, mask = (v.cuda() for v in inputs())
    fp = FastPath.for_device("cuda", max_length=8)
    fast = FastUNet(unet, fp)
    with torch.no_grad():
        refs = [unet(x * s, t, ctx, mask) for s in (1.0, 0.5, 2.0)]
        outs = [fast(x * s, t, ctx, mask) for s in (1.0, 0.5, 2.0)]  # compile, graph capture, replay
    assert "unet" in fp.first_call_s and all(o.dtype == torch.float32 for o in outs)
    for o, r in zip(outs, refs):  # each output survives the later replays (cloned out of the graph)
        assert (o - r).abs().max() / r.abs().max() < 0.05  # bf16


@pytest.mark.gpu
@cuda
def test_generate_on_cuda_fast_and_plain():
    """The bundled model through generate() on CUDA: the default fast path and --fast off give
    clips of the same length, close in mel (bf16 rounding only), and the compile is timed apart."""
    import numpy as np

    from maa.infer.pipeline import GenerateOptions, load_model

    model = load_model(None, device="cuda")
    outs = {}
    for fast in ("off", "auto"):
        opts = GenerateOptions(steps=4, duration=2.0, batch_size=2, fast=fast)
        outs[fast] = model(["a dog barks", "rain falls"], [0, 1], opts=opts)
    assert model.fast is not None and "unet" in model.fast.first_call_s
    for a, b in zip(outs["off"], outs["auto"]):
        assert a.audio.shape == b.audio.shape and np.isfinite(b.audio).all()
        assert np.abs(a.mel - b.mel).mean() < 0.1


def test_generate_on_cpu_is_unchanged_by_the_fast_option():
    """On the CPU --fast auto is the plain path: bit-identical audio to --fast off, modules untouched."""
    import numpy as np

    from maa.infer.pipeline import GenerateOptions, load_model

    model = load_model(None, device="cpu")
    unet = model.unet
    got = [model(["a dog barks"], [3], opts=GenerateOptions(steps=2, duration=0.5, fast=f))[0].audio
           for f in ("off", "auto")]
    assert np.array_equal(got[0], got[1]) and np.abs(got[0]).max() > 0
    assert model.unet is unet and getattr(model, "fast", None) is None
