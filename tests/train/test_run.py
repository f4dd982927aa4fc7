"""maa.train.run: the run-folder rule (prepare_run) and the device `auto` of the training loop."""

import json

import pytest
import torch

from maa.core.errors import MaaError
from maa.train.loop import STATE_FILE, Dist, resolve_device
from maa.train.run import RunOptions, held_step, prepare_run


def _checkpoint(run, step=7, rows=3):
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "modules": {"m": {"w": torch.zeros(2)}}}, run / STATE_FILE)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"kind": "train", "step": i + 1}) + "\n" for i in range(rows)))


def test_empty_or_missing_folder_starts_at_zero(tmp_path):
    for flags in ({}, {"fresh": True}):
        start = prepare_run(tmp_path / "new", **flags)
        assert not start.resume and start.step == 0
    # issue 23: --resume with nothing to continue is refused, not a silent run from scratch
    with pytest.raises(MaaError, match=r"--resume: .*new holds no checkpoint \(trainer_state.pt\).*drop --resume"):
        prepare_run(tmp_path / "new", resume=True)
    assert prepare_run(tmp_path / "new").note is None
    assert not (tmp_path / "new").exists()  # deciding writes nothing


def test_metrics_without_a_checkpoint_are_named_before_they_are_replaced(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n{"kind": "train", "step": 2}\n')
    start = prepare_run(tmp_path)
    assert not start.resume and "metrics.jsonl (2 rows)" in start.note


def test_a_checkpoint_is_refused_resumed_or_replaced(tmp_path):
    _checkpoint(tmp_path, step=7, rows=3)
    assert held_step(tmp_path) == 7
    with pytest.raises(MaaError, match=r"step 7.*--resume.*--fresh"):
        prepare_run(tmp_path)
    with pytest.raises(MaaError, match="choose one"):
        prepare_run(tmp_path, resume=True, fresh=True)
    start = prepare_run(tmp_path, resume=True)
    assert start.resume and start.step == 7 and "from step 7" in start.note
    start = prepare_run(tmp_path, fresh=True)
    assert not start.resume and "the checkpoint at step 7" in start.note and "3 rows of metrics.jsonl" in start.note
    assert held_step(tmp_path) == 7 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_an_unreadable_checkpoint_can_only_be_replaced(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(MaaError, match="unreadable checkpoint.*--resume.*--fresh"):
        prepare_run(tmp_path)
    with pytest.raises(MaaError, match="cannot read the checkpoint.*--fresh"):
        prepare_run(tmp_path, resume=True)
    assert "an unreadable checkpoint" in prepare_run(tmp_path, fresh=True).note


def test_device_auto_and_torchrun_local_rank(monkeypatch):
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", Dist()).type == want
    assert resolve_device("cpu", Dist(rank=1, world=2, local_rank=1)) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MaaError, match="CUDA is not available"):
            resolve_device("cuda", Dist())
    else:  # under torchrun each process takes its LOCAL_RANK GPU
        assert resolve_device("auto", Dist(rank=0, world=2, local_rank=0)) == torch.device("cuda", 0)


def test_train_config_is_built_from_the_options(tmp_path):
    cfg = RunOptions(out_dir=tmp_path, steps=5, grad_clip=0, ema=0.0, warmup=3).train_config("cpu", max_val_batches=2)
    assert (cfg.steps, cfg.grad_clip, cfg.ema_decay, cfg.warmup_steps, cfg.max_val_batches) == (5, None, None, 3, 2)
    assert RunOptions(out_dir=tmp_path, ema=0.99).train_config("cpu").ema_decay == 0.99
