"""A model's vocoder/ folder: used when it is a vocoder, and never skipped without a word."""

import warnings

import pytest
import torch

from maa.core.errors import MaaWarning
from maa.parts.vocoders import GriffinLim, has_neural_vocoder, load_vocoder


def test_args_yml_alone_says_why_it_is_not_used(tmp_path):
    (tmp_path / "vocoder").mkdir()
    (tmp_path / "vocoder" / "args.yml").write_text("num_mels: 80\n")
    with pytest.warns(MaaWarning, match=r"vocoder: not used as the vocoder, Griffin-Lim instead .*holds args.yml "
                                        r"but no generator weights \(best_netG.pt"):
        voc = load_vocoder(tmp_path)
    assert isinstance(voc, GriffinLim)


def test_a_folder_of_something_else_says_why(tmp_path):
    (tmp_path / "vocoder").mkdir()
    (tmp_path / "vocoder" / "notes.txt").write_text("todo")
    with pytest.warns(MaaWarning, match=r"holds notes.txt but no config.json \(from `maa train-vocoder`\)"):
        assert isinstance(load_vocoder(tmp_path), GriffinLim)


def test_no_vocoder_folder_is_quietly_griffin_lim(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaaWarning)
        assert isinstance(load_vocoder(tmp_path), GriffinLim) and isinstance(load_vocoder(None), GriffinLim)


def test_an_official_bigvgan_folder_in_vocoder_is_used(tmp_path):
    import yaml

    from maa.models.bigvgan import BigVGAN, BigVGANConfig

    cfg = BigVGANConfig(upsample_rates=(16, 16), upsample_kernel_sizes=(32, 32), upsample_initial_channel=16,
                        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),))
    d = tmp_path / "vocoder"
    d.mkdir()
    torch.save({"generator": BigVGAN(cfg).state_dict()}, d / "best_netG.pt")
    (d / "args.yml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert has_neural_vocoder(tmp_path)
    voc = load_vocoder(tmp_path)
    assert voc.kind == "bigvgan" and voc(torch.zeros(80, 4)).shape == (4 * 256,)
