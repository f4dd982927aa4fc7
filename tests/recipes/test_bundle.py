import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from maa.core.errors import MaaError
from recipes.bundle import main as bundle_main
from recipes.bundle import package
from tests.ldm_fixtures import make_model_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("run"))


def test_package_writes_fp16_that_loads(run, tmp_path):
    from maa.infer.pipeline import load_model

    sizes = package({"vae": run / "vae", "ldm": run / "ldm"}, tmp_path / "model")
    assert set(sizes) == {"vae/vae.safetensors", "ldm/unet.safetensors"}
    w = load_file(str(tmp_path / "model" / "ldm" / "unet.safetensors"))
    ref = load_file(str(run / "ldm" / "unet.safetensors"))
    assert all(v.dtype == torch.float16 for v in w.values())
    assert all(torch.allclose(w[k].float(), ref[k], atol=1e-3, rtol=1e-3) for k in ref)
    assert load_model(tmp_path / "model").unet.cfg == load_model(run).unet.cfg
    with pytest.raises(MaaError, match="over the 0.001 MB budget"):
        package({"vae": run / "vae"}, tmp_path / "small", budget_mb=0.001)
    assert not (tmp_path / "small").exists() and not (tmp_path / "small.staging").exists()


def test_a_replacement_vae_must_keep_the_encoder(run, tmp_path):
    ft = tmp_path / "ft"
    shutil.copytree(run / "vae", ft)
    w = load_file(str(ft / "vae.safetensors"))
    for k in w:
        if k.startswith("decoder."):
            w[k] = w[k] + 0.5  # a fine-tuned decoder is fine
    save_file(w, str(ft / "vae.safetensors"))
    bundle_main(["--ldm-run", str(run), "--vae", str(ft), "-o", str(tmp_path / "model")])
    shipped = load_file(str(tmp_path / "model" / "vae" / "vae.safetensors"))
    k = next(k for k in w if k.startswith("decoder.") and w[k].numel() > 1)
    assert torch.allclose(shipped[k].float(), w[k], atol=1e-2)
    k = next(k for k in w if k.startswith("encoder.") and w[k].numel() > 1)
    w[k] = w[k] + 1.0  # a different encoder is not: the LDM learned the old one's latents
    save_file(w, str(ft / "vae.safetensors"))
    with pytest.raises(SystemExit, match="its encoder differs"):
        bundle_main(["--ldm-run", str(run), "--vae", str(ft), "-o", str(tmp_path / "model2")])


def test_the_shipped_bundle_is_fp16_and_within_its_budget():
    from maa.infer.pipeline import BUNDLED_MODEL

    files = sorted(BUNDLED_MODEL.glob("*/*.safetensors"))
    assert {f.parent.name for f in files} == {"vae", "ldm", "vocoder", "clap"}
    assert sum(f.stat().st_size for f in files) <= 40 * 2**20
    for f in files:
        assert all(v.dtype == torch.float16 for v in load_file(str(f)).values() if v.is_floating_point()), f
