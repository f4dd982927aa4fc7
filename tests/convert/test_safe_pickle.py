"""The safe pickle reader: the benign Lightning file loads, payloads are refused and never run."""

import os

import numpy as np
import pytest
import torch

from maa.core.errors import MaaError
from maa.core.safe_pickle import Inert, load_pickle_checkpoint
from tests.convert.conftest import GOLDEN

MARKERS = ("maa_golden_pwned_system.txt", "maa_golden_pwned_exec.txt", "pwned_legacy.txt")


def test_benign_lightning_checkpoint_loads():
    obj = load_pickle_checkpoint(GOLDEN / "tiny_maa1_full.ckpt")
    assert len(obj["state_dict"]) == 829
    lr = obj["optimizer_states"][0]["param_groups"][0]["lr"]
    assert isinstance(lr, np.float64) and lr == pytest.approx(1e-5)
    hp = obj["hyper_parameters"]["unet_config"]
    assert isinstance(hp, Inert) and hp.pickled_name == "omegaconf.dictconfig.DictConfig"
    assert float(obj["state_dict"]["scale_factor"]) == pytest.approx(0.8390870094299316)


@pytest.mark.parametrize("name, payload", [("tiny_maa1_malicious_system.ckpt", "posix.system"),
                                           ("tiny_maa1_malicious_exec.ckpt", "builtins.exec")])
def test_malicious_checkpoints_refused_and_never_run(name, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the payloads write relative marker files
    with pytest.raises(MaaError) as e:
        load_pickle_checkpoint(GOLDEN / name)
    msg = str(e.value)
    assert "\n" not in msg and payload in msg and "refused" in msg
    from maa.convert.make_an_audio import convert_make_an_audio

    with pytest.raises(MaaError, match=payload.replace(".", r"\.")):
        convert_make_an_audio(GOLDEN / name, tmp_path / "out")
    assert not any((tmp_path / m).exists() for m in MARKERS)
    assert not (tmp_path / "out").exists()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned_legacy.txt",))


def test_legacy_format(tmp_path, monkeypatch):
    """Non-zip files cannot be scanned first; torch's own weights_only refusal still names the global."""
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "lr": np.float64(1e-5)}, good, _use_new_zipfile_serialization=False)
    obj = load_pickle_checkpoint(good)
    assert torch.equal(obj["state_dict"]["w"], torch.ones(2)) and obj["lr"] == 1e-5
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "cb": _Payload()}, bad, _use_new_zipfile_serialization=False)
    with pytest.raises(MaaError, match=r"refused.*(posix|nt)\.system"):
        load_pickle_checkpoint(bad)
    assert not (tmp_path / "pwned_legacy.txt").exists()


def test_truncated_file_and_folder(tmp_path):
    data = (GOLDEN / "tiny_maa1_full.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MaaError, match="truncated|complete") as e:
        load_pickle_checkpoint(cut)
    assert "\n" not in str(e.value)
    with pytest.raises(MaaError, match="is a folder"):
        load_pickle_checkpoint(tmp_path)
