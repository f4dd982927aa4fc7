"""The official image-to-audio variant against its golden fixtures (tests/fixtures/official_x2a,
made by the official AudioGPT code at tiny widths; tolerances from that folder's README), and the
full-size key table."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from maa.core.errors import MaaError
from tests.convert.conftest import GOLDEN, KEYS

pytest.importorskip("open_clip")
pytestmark = pytest.mark.usefixtures("one_thread")

X2A = Path(__file__).resolve().parents[1] / "fixtures" / "official_x2a"


def convert_tiny_img(out: Path, **kw) -> Path:
    from maa.convert.official import convert_official as convert_any

    kw = {"vocoder": GOLDEN / "bigvgan", "config": X2A / "tiny_maa_img.yaml",
          "clip_config": X2A / "tiny_openclip_config.json", **kw}
    return convert_any(X2A / "tiny_maa_img_full.ckpt", out, **kw)


@pytest.fixture(scope="module")
def img_model(tmp_path_factory) -> Path:
    return convert_tiny_img(tmp_path_factory.mktemp("conv") / "maa-img")


def _close(name: str, got, want, tol: float) -> float:
    d = float((got.detach().float() - want.float()).abs().max())
    print(f"\n{name}: max |diff| {d:.2g} (tolerance {tol:g})")
    assert d <= tol, name
    return d


@torch.no_grad()
def test_conditions_golden(img_model):
    """OpenCLIP preprocessing, image and text towers, normalisation: one token each."""
    from PIL import Image

    from maa.data.visual import read_image
    from maa.parts.text import load_text_encoder

    io = load_file(X2A / "img_cond_io.safetensors")
    enc = load_text_encoder(f"openclip:{img_model / 'clip'}")
    assert enc.dim == 128 and enc.max_length == 77
    ids = enc.tokenize(["", "a dog barks"])
    assert torch.equal(ids, io["input_ids"])
    px = enc.preprocess(read_image(X2A / "image.png").frames[0])
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(3, 1, 1)
    _close("pixels", px, (io["pixel_rgb_u8"].float() / 255 - mean) / std, 1e-6)
    _close("image features", enc.model.encode_image(px[None]), io["image_features"], 1e-5)
    _close("image condition", enc.encode_images([Image.open(X2A / "image.png")])[:, None], io["cond_image"], 1e-5)
    _close("text features", enc.model.encode_text(ids), io["text_features"], 1e-5)
    emb = enc.encode(["", "a dog barks"])
    assert emb.tokens.shape == (2, 1, 128) and bool(emb.mask.all())
    _close("text condition", emb.tokens, io["cond_text"], 1e-5)
    assert torch.allclose(emb.tokens.norm(dim=-1), torch.ones(2, 1))


@torch.no_grad()
def test_unet_golden(img_model):
    from maa.core.checkpoint import load_weights, read_config
    from maa.models.unet import UNet, UNetConfig

    io = load_file(X2A / "img_unet_io.safetensors")
    cfg = read_config(img_model / "ldm")
    assert (cfg["unet"]["head_channels"], cfg["unet"]["context_in_time"], cfg["unet"]["context_dim"]) == (32, True, 128)
    unet = UNet(UNetConfig.from_dict(cfg["unet"]))
    load_weights(img_model / "ldm", {"unet": unet})
    unet.eval()
    assert [m.heads for m in unet.modules() if type(m).__name__ == "Attention"][:2] == [1, 1]  # level 0: 32 ch
    assert unet.mid1.attn.blocks[0].self_attn.heads == 2  # the middle: 64 ch
    for x, eps in (("x", "eps"), ("x_small", "eps_small")):
        _close(f"UNet {eps}", unet(io[x], io["timesteps"], io["context"]), io[eps], 1e-5)
    # without the token added to the time embedding the output moves by ~0.35 (fixture README)
    off = UNet(UNetConfig.from_dict({**cfg["unet"], "context_in_time": False}))
    off.load_state_dict(unet.state_dict())
    assert float((off.eval()(io["x"], io["timesteps"], io["context"]) - io["eps"]).abs().max()) > 0.1


@torch.no_grad()
def test_ddim_golden(img_model):
    """I2A.img2audio: image condition, the text encoding of "" as unconditional, scale 3, 10 DDIM
    steps from the fixture's x_T; the VAE output and what the vocoder gets."""
    from maa.data.visual import read_image
    from maa.infer.pipeline import load_model
    from maa.models.diffusion import ddim, end_alpha, guided, model_denoiser, schedule

    io = load_file(X2A / "img_ddim_io.safetensors")
    m = load_model(img_model)
    ts = schedule(10, m.ac, "ddim", m.dcfg.timestep_grid)
    assert ts == io["timesteps"].tolist()
    cond = m.text.encode_images(read_image(X2A / "image.png").frames)[:, None]
    uncond = m.text.encode([""])
    _close("cond", cond, io["cond"], 1e-5)
    _close("uncond", uncond.tokens, io["uncond"], 1e-5)
    ones = torch.ones(1, 1, dtype=torch.bool)
    eps = guided(model_denoiser(m.unet, m.dcfg.prediction, m.ac), (cond, ones), (uncond.tokens, ones), 3.0)
    steps = []
    latent = ddim(eps, io["x_T"], ts, m.ac, final_alpha=end_alpha(m.ac, m.dcfg.timestep_grid),
                  callback=lambda i, x: steps.append(x))
    _close("DDIM latent", latent, io["latent"], 1e-3)
    _close("DDIM latent after every step", torch.stack(steps), io["x_after_step"], 1e-3)
    log10 = m.vae.decode(latent / m.dcfg.scale_factor)  # maa's mels stay log10: 2.5 x - 1.5
    _close("mel [-1, 1]", (log10 + 1.5) / 2.5, io["mel"], 1e-4)
    _close("vocoder input", ((log10 + 4) / 5).clamp(0, 1), io["mel01"], 1e-4)
    assert m.vocoder.model.cfg.input_domain == "norm-db01"
    # the VAE speaks log10, so nothing maps the mel a second time on its way to that vocoder
    assert type(m.vocoder).__name__ == "NeuralVocoder", type(m.vocoder)


@pytest.mark.slow  # the default suite keeps the golden numbers; this runs in CI's slow run
def test_vocoder_gets_the_official_domain(img_model):
    """The converted vocoder maps maa's log10 mels to clamp((x + 1) / 2, 0, 1) itself."""
    import dataclasses

    from maa.models.bigvgan import BigVGAN
    from maa.parts.vocoders import load_neural_vocoder

    voc = load_neural_vocoder(img_model / "vocoder")
    plain = BigVGAN(dataclasses.replace(voc.model.cfg, input_domain="log10"))
    plain.load_state_dict(voc.model.state_dict())
    x = torch.rand(1, 80, 6) * 2 - 1
    with torch.no_grad():
        want = plain.eval()(((x + 1) / 2).clamp(0, 1)).reshape(1, -1).clamp(-1, 1)
    assert torch.allclose(voc(2.5 * x - 1.5), want, atol=1e-6)


def _meta(table: str) -> dict:
    rows = json.loads((KEYS / table).read_text())
    return {k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for k, shape, dtype in rows}


def test_full_size_mapping_on_meta():
    """All 1,481 keys of the released layout: every one mapped, none missing or unexpected."""
    from maa.convert.make_an_audio import BUFFERS, _check_fits, map_unet, map_vae
    from maa.convert.make_an_audio_img import clip_model_config, image_configs, split_image_parts
    from maa.models.unet import UNet
    from maa.models.vae import SpecVAE

    state = _meta("maa_img_full.json")
    assert len(state) == 1481
    parts = split_image_parts(state)
    assert sum(len(p) for p in parts.values()) == 1481
    clip_cfg = clip_model_config(parts["clip"], None)  # ViT-H-14's layout fits every key and shape
    assert clip_cfg["embed_dim"] == 1024 and len(parts["clip"]) == 686
    ucfg, vcfg = image_configs(parts, 32, clip_cfg)
    assert (ucfg.channels, ucfg.context_dim, ucfg.heads(256), ucfg.heads(512)) == (256, 1024, 8, 16)
    with torch.device("meta"):
        _check_fits("UNet", UNet(ucfg).state_dict(), map_unet(parts["unet"]))
        _check_fits("VAE", SpecVAE(vcfg).state_dict(), map_vae(parts["vae"], vcfg))
    assert set(parts["buffers"]) == set(BUFFERS)


@pytest.mark.slow  # the default suite keeps the golden numbers; this runs in CI's slow run
def test_wrong_clip_config_one_line(tmp_path):
    cfg = json.loads((X2A / "tiny_openclip_config.json").read_text())
    cfg["vision_cfg"]["width"] = 64
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(MaaError, match="do not fit --clip-config"):
        convert_tiny_img(tmp_path / "m", clip_config=tmp_path / "c.json")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow  # the default suite keeps the golden numbers; this runs in CI's slow run
def test_v1_yaml_refused_for_image_checkpoint(tmp_path):
    with pytest.raises(MaaError, match="num_head_channels"):
        convert_tiny_img(tmp_path / "m", config=GOLDEN / "tiny_maa1.yaml")
