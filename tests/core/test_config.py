"""The config mixin (to_dict/from_dict, unknown and missing keys) and the bounds every model config
is checked against before a module is built (issue 15 item 7)."""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from maa.core.audio import MelConfig
from maa.core.checkpoint import load_weights, read_config
from maa.core.config import ConfigMixin, OneOf, Range
from maa.core.errors import MaaError
from maa.infer.pipeline import BUNDLED_MODEL
from maa.models.bigvgan import BigVGANConfig, read_bigvgan_config
from maa.models.clap import ClapConfig, MaaClap
from maa.models.diffusion import DiffusionConfig
from maa.models.unet import UNet, UNetConfig
from maa.models.vae import SpecVAE, VAEConfig
from maa.models.vocos import VocoderConfig, VocosGenerator
from maa.train.discriminators import DiscConfig
from maa.train.loop import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Inner(ConfigMixin):
    width: int = 4
    pairs: tuple[tuple[int, int], ...] = ((1, 2),)


@dataclass
class Outer(ConfigMixin):
    name: str
    inner: Inner = field(default_factory=Inner)
    mults: tuple[int, ...] = (1, 2)
    path: Path = Path("runs/x")
    clip: float | None = 1.0
    kind: str = "a"
    limits: ClassVar[dict] = {"mults": Range(1, 8, count=(1, 3)), "kind": OneOf("a", "b")}


def test_round_trip_through_json_with_nesting_tuples_and_paths():
    c = Outer("x", Inner(8, ((1, 2), (3, 4))), (1, 4, 8), Path("a/b"), None, "b")
    d = c.to_dict()
    assert d == {"name": "x", "inner": {"width": 8, "pairs": [[1, 2], [3, 4]]}, "mults": [1, 4, 8],
                 "path": "a/b", "clip": None, "kind": "b"}
    assert json.loads(json.dumps(d)) == d  # JSON-ready as it stands
    back = Outer.from_dict(json.loads(json.dumps(d)))
    assert back == c and isinstance(back.inner.pairs[1], tuple) and isinstance(back.path, Path)


def test_missing_keys_take_defaults_and_required_ones_are_named():
    assert Outer.from_dict({"name": "x"}) == Outer("x")
    with pytest.raises(MaaError, match="Outer.name: missing"):
        Outer.from_dict({"mults": [1]})


def test_checks_types_ranges_choices_and_nested_sections():
    for d, msg in [({"mults": [1, 9]}, r"Outer.mults: \[1, 9\] holds 9, outside the allowed range 1..8"),
                   ({"mults": [1, 1, 1, 1]}, "has 4 entries; allowed 1..3"),
                   ({"kind": "c"}, '"c" is not one of a, b'),
                   ({"clip": float("nan")}, "Outer.clip: NaN is not a finite number"),
                   ({"inner": {"width": 2.0}}, r"Outer.inner.width: 2.0 is not an integer"),
                   ({"inner": {"pairs": [[1, 2, 3]]}}, "has 3 entries, want 2"),
                   ({"inner": {"widht": 2}}, "Outer.inner.widht: unknown key .did you mean 'width'")]:
        with pytest.raises(MaaError, match=msg):
            Outer.from_dict({"name": "x", **d})
    with pytest.raises(MaaError, match="Outer.mults"):  # plain construction is checked too
        Outer("x", mults=(0,))


# ----------------------------------------------------------------------------- the shipped model


SECTIONS = [("ldm", "unet", UNetConfig), ("ldm", "diffusion", DiffusionConfig), ("vae", "vae", VAEConfig),
            ("vae", "disc", DiscConfig), ("vocoder", "vocoder", VocoderConfig), ("clap", "model", ClapConfig)]
SECTIONS += [(m, "mel", MelConfig) for m in ("ldm", "vae", "vocoder", "clap")]


@pytest.mark.parametrize("folder,section,cls", SECTIONS)
def test_bundled_configs_round_trip_to_the_same_dicts(folder, section, cls):
    saved = json.loads((BUNDLED_MODEL / folder / "config.json").read_text())[section]
    cfg = cls.from_dict(read_config(BUNDLED_MODEL / folder)[section])
    d = cfg.to_dict()
    assert {k: d[k] for k in saved} == saved  # every saved value comes back as it was written
    assert {k: v for k, v in d.items() if k not in saved} == {k: v for k, v in cls().to_dict().items() if k not in saved}
    assert cls.from_dict(json.loads(json.dumps(d))) == cfg


def test_bundled_modules_build_from_their_configs_and_take_their_weights_strictly():
    for folder, section, cls, key in [("ldm", "unet", UNet, "unet"), ("vae", "vae", SpecVAE, "vae"),
                                      ("vocoder", "vocoder", VocosGenerator, "generator"), ("clap", "model", MaaClap, "model")]:
        cfg = read_config(BUNDLED_MODEL / folder)[section]
        cfg_cls = {"unet": UNetConfig, "vae": VAEConfig, "vocoder": VocoderConfig, "model": ClapConfig}[section]
        load_weights(BUNDLED_MODEL / folder, {key: cls(cfg_cls.from_dict(cfg))}, strict=True)


# ----------------------------------------------------------------------------- bounds (issue 15 item 7)


def _model_with(tmp_path: Path, **unet) -> Path:
    """A copy of the bundled model's config folders whose ldm/config.json has `unet` changed."""
    root = tmp_path / "model"
    for sub in ("ldm", "vae"):
        (root / sub).mkdir(parents=True)
        shutil.copy(BUNDLED_MODEL / sub / "config.json", root / sub / "config.json")
    cfg = json.loads((root / "ldm" / "config.json").read_text())
    cfg["unet"].update(unet)
    (root / "ldm" / "config.json").write_text(json.dumps(cfg))
    return root


@pytest.fixture
def no_tensors(monkeypatch):
    """Every nn layer makes its weights with torch.empty: a config that got as far as building fails loudly."""
    def refuse(*a, **k):
        raise AssertionError("a tensor was allocated before the config was checked")
    monkeypatch.setattr(torch, "empty", refuse)


BAD_UNET = [
    ("channels", 2048, "unet.channels: 2048 is outside the allowed range 8..1024"),  # took 9.4 GB before failing
    ("num_res_blocks", 1_000_000, "unet.num_res_blocks: 1000000 is outside the allowed range 1..8"),
    ("num_heads", 0, "unet.num_heads: 0 is outside the allowed range 1..64"),
    ("channels", float("inf"), "unet.channels: Infinity is not an integer"),
    ("channels", 1e7, r"unet.channels: 10000000.0 is not an integer"),
    ("num_heads", 3, "unet.num_heads: 3 does not divide the 80 channels of level 0"),
    ("channel_mult", [1, 2, 4, 8, 8, 8, 8], r"unet.channel_mult: \[1, 2, 4, 8, 8, 8, 8\] has 7 entries; allowed 1..6"),
    ("channel_mult", [1, 8], r"unet.channel_mult: \[1, 8\] x 1024 channels gives 8192 channels"),
    ("transformer_depth", 100, "unet.transformer_depth: 100 is outside the allowed range 1..16"),
    ("context_dim", 10**6, "unet.context_dim: 1000000 is outside"),
    ("chanels", 80, r"unet.chanels: unknown key \(did you mean 'channels'\?\)"),
]


@pytest.mark.parametrize("field,value,message", BAD_UNET)
def test_a_bad_unet_config_fails_in_one_line_before_anything_is_built(tmp_path, no_tensors, field, value, message):
    from maa.infer.pipeline import load_model

    extra = {"channels": 1024} if value == [1, 8] else {}
    root = _model_with(tmp_path, **{field: value}, **extra)
    with pytest.raises(MaaError, match=message) as e:
        load_model(root)
    assert "\n" not in str(e.value) and str(root / "ldm" / "config.json") in str(e.value)


def test_generate_with_a_huge_config_says_one_line(tmp_path):
    from commands.cli import app

    root = _model_with(tmp_path, channels=2048)
    r = CliRunner().invoke(app, ["generate", "a dog barks", "--model", str(root), "-o", str(tmp_path / "x.wav")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "unet.channels: 2048" in lines[0] and "8..1024" in lines[0]


def test_deeply_nested_config_json_is_one_error(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"unet": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(MaaError, match="config.json: nested too deeply"):
        read_config(d)
    (d / "config.json").write_text("[1, 2]")
    with pytest.raises(MaaError, match="want a JSON object"):
        read_config(d)


def test_a_config_changed_after_construction_is_checked_again(no_tensors):
    cfg = UNetConfig(channels=80, num_heads=4, norm_groups=16)
    cfg.num_res_blocks = 1_000_000
    with pytest.raises(MaaError, match="UNetConfig.num_res_blocks: 1000000"):
        UNet(cfg)
    vcfg = VAEConfig()
    vcfg.ch = 4096
    with pytest.raises(MaaError, match="VAEConfig.ch: 4096"):
        SpecVAE(vcfg)


@pytest.mark.parametrize("cls,kw,message", [
    (VAEConfig, {"ch": 2048}, "VAEConfig.ch: 2048 is outside the allowed range 4..512"),
    (VAEConfig, {"ch": 512, "ch_mult": (1, 2, 4, 8)}, "gives 4096 channels at the widest level; at most 2048"),
    (VAEConfig, {"n_mels": 84}, "VAEConfig.n_mels: 84 is not divisible by the downsampling factor 8"),
    (VAEConfig, {"down_pad": "left"}, 'VAEConfig.down_pad: "left" is not one of same, right'),
    (DiffusionConfig, {"prediction": "x0"}, 'DiffusionConfig.prediction: "x0" is not one of eps, v'),
    (DiffusionConfig, {"num_steps": 10**9}, "DiffusionConfig.num_steps: 1000000000 is outside"),
    (DiffusionConfig, {"scale_factor": 0.0}, "DiffusionConfig.scale_factor: 0.0 is outside"),
    (ClapConfig, {"channels": (64,) * 20}, "has 20 entries; allowed 1..8"),
    (ClapConfig, {"crop_frames": 16}, "ClapConfig.crop_frames: 16 is too short for 4 pooling stages; at least 32"),
    (VocoderConfig, {"layers": 10_000}, "VocoderConfig.layers: 10000 is outside the allowed range 1..64"),
    (VocoderConfig, {"kernel": 8}, "VocoderConfig.kernel: 8 is even"),
    (BigVGANConfig, {"upsample_initial_channel": 100_000}, "upsample_initial_channel: 100000 is outside"),
    (BigVGANConfig, {"upsample_kernel_sizes": (8, 8)}, "2 kernels for 6 upsample rates"),
    (DiscConfig, {"layers": 1000}, "DiscConfig.layers: 1000 is outside the allowed range 1..16"),
    (MelConfig, {"fmax": 12000.0}, "MelConfig.fmax: 12000 must lie above fmin 0 and at most at the Nyquist"),
    (MelConfig, {"n_mels": 1.5}, "MelConfig.n_mels: 1.5 is not an integer"),
    (TrainConfig, {"lr": float("nan")}, "TrainConfig.lr: NaN is not a finite number"),
    (TrainConfig, {"ckpt_every": 0}, "TrainConfig.ckpt_every: 0 is outside"),
    (TrainConfig, {"seed": 2**64}, "TrainConfig.seed: 18446744073709551616 is outside"),
])
def test_every_config_is_bounded(cls, kw, message):
    base = {"out_dir": Path("runs/x"), "steps": 10} if cls is TrainConfig else {}
    with pytest.raises(MaaError, match=message) as e:
        cls(**base, **kw)
    assert "\n" not in str(e.value)


def test_the_bounds_admit_the_papers_and_the_official_sizes(tmp_path):
    # Make-An-Audio v1 (txt2audio_args.yaml): UNet 320 channels, 8 heads, depth 1, context 1024 (BERT +
    # msCLAP projection), GroupNorm eps 1e-5; the 4-level mult of the larger LDM configs; the KL VAE
    # with raw log-mels, right-padded downsampling and quant convs.
    for mult in [(1, 2), (1, 2, 4, 4)]:
        UNetConfig(channels=320, channel_mult=mult, attn_levels=tuple(range(len(mult))), num_heads=8,
                   context_dim=1024, norm_eps=1e-5, context_mask=False)
    VAEConfig(ch=128, ch_mult=(1, 2, 2, 4), num_res_blocks=2, mel_center=0.0, mel_scale=1.0, down_pad="right",
              quant_conv=True)
    DiffusionConfig(scale_factor=0.18215, timestep_grid="official")
    # the official 16 kHz BigVGAN args.yml, training settings and all
    (tmp_path / "args.yml").write_text(
        "resblock: 1\nnum_mels: 80\nupsample_rates: [4, 4, 2, 2, 2, 2]\nupsample_kernel_sizes: [8, 8, 4, 4, 4, 4]\n"
        "upsample_initial_channel: 1536\nresblock_kernel_sizes: [3, 7, 11]\n"
        "resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]\nactivation: snakebeta\nsnake_logscale: true\n"
        "sampling_rate: 16000\nhop_size: 256\nlearning_rate: 0.0001\nsegment_size: 8192\nnum_gpus: 1\n")
    assert read_bigvgan_config(tmp_path) == BigVGANConfig()
    (tmp_path / "args.yml").write_text((tmp_path / "args.yml").read_text().replace("1536", "1536.0"))
    with pytest.raises(MaaError, match=r"args.yml: upsample_initial_channel: 1536.0 is not an integer"):
        read_bigvgan_config(tmp_path)
