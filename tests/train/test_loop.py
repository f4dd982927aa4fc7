"""The shared training loop: exact resume, checkpoints, EMA, validation, 2-process data parallelism."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from maa.core.checkpoint import load_weights, save_weights
from maa.core.errors import MaaError
from maa.train.loop import (
    EMA,
    STATE_FILE,
    TrainConfig,
    adamw,
    backward_step,
    read_metrics,
    train,
)


class Crops:
    """A toy data set with random crops drawn from the loop's per-sample RNG."""

    def __init__(self, n=10, length=16, width=6, seed=0):
        g = np.random.default_rng(seed)
        self.x = g.standard_normal((n, length)).astype(np.float32)
        self.width = width

    def __len__(self):
        return len(self.x)

    def get(self, i, rng):
        s = int(rng.integers(0, self.x.shape[1] - self.width + 1))
        return torch.from_numpy(self.x[i, s:s + self.width].copy())


class Regress:
    """Predict the crop's sum through a small MLP, with input noise from the global torch RNG
    (so a resume that forgot the RNG state would log different losses)."""

    name = "toy"

    def __init__(self, noise=0.1, seed=0, stop_at=None):
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
        self.noise, self.stop_at = noise, stop_at
        self.validated = []

    def modules(self):
        return {"net": self.net}

    def optimizers(self, cfg):
        self.opt = adamw(self.net.parameters(), cfg)
        return {"net": self.opt}

    def train_step(self, batch, step, cfg):
        if self.stop_at is not None and step == self.stop_at:
            raise KeyboardInterrupt  # a run killed mid-way
        x = batch + self.noise * torch.randn_like(batch)
        loss = (self.net(x).squeeze(-1) - batch.sum(-1)).pow(2).mean()
        backward_step(loss, self.opt, self.net.parameters(), cfg)
        return {"loss": loss.item()}

    def validate(self, batches, step, out_dir):
        self.validated.append(step)
        err = sum((self.net(b).squeeze(-1) - b.sum(-1)).abs().mean().item() for b in batches) / len(batches)
        return {"l1": err}

    def export_config(self):
        return {"kind": "toy", "hidden": 16}


def _cfg(tmp, **kw):
    base = dict(out_dir=Path(tmp), steps=12, batch_size=3, lr=1e-2, ckpt_every=4, val_every=6, log_every=1,
                max_val_batches=2, quiet=True)
    base.update(kw)
    return TrainConfig(**base)


def _losses(out_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(out_dir) if r["kind"] == "train"]


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    ref = Regress()
    train(ref, Crops(), Crops(n=4, seed=1), _cfg(tmp_path / "a"))

    cut = Regress(stop_at=10)  # last checkpoint at step 8; steps 9-10 are lost and redone
    with pytest.raises(KeyboardInterrupt):
        train(cut, Crops(), Crops(n=4, seed=1), _cfg(tmp_path / "b"))
    assert max(s for s, _ in _losses(tmp_path / "b")) == 10
    resumed = Regress(seed=123)  # different init: the checkpoint must overwrite it
    final = train(resumed, Crops(), Crops(n=4, seed=1), _cfg(tmp_path / "b"), resume=True)

    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert [s for s, _ in b] == list(range(1, 13))  # lines after the checkpoint were dropped, then redone
    assert np.allclose([l for _, l in a], [l for _, l in b], rtol=0, atol=1e-6)
    for k, v in ref.net.state_dict().items():
        assert torch.allclose(v, resumed.net.state_dict()[k], atol=1e-6)
    assert final["step"] == 12 and "val_l1" in final
    # the weights really move (the test would be vacuous on a frozen model)
    assert not torch.allclose(Regress().net[0].weight, ref.net[0].weight, atol=1e-3)


def test_checkpoint_layout_and_weights_round_trip(tmp_path):
    task = Regress()
    train(task, Crops(), None, _cfg(tmp_path, steps=5, ckpt_every=100))
    folder = tmp_path / "toy"
    assert json.loads((folder / "config.json").read_text()) == {"kind": "toy", "hidden": 16}
    assert (tmp_path / STATE_FILE).exists() and (tmp_path / "metrics.jsonl").exists()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp files left behind
    fresh = Regress(seed=9)
    cfg = load_weights(folder, {"net": fresh.net})
    assert cfg["hidden"] == 16
    for k, v in task.net.state_dict().items():
        assert torch.equal(v, fresh.net.state_dict()[k])
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)  # no pickled objects inside
    assert state["step"] == 5


def test_load_weights_errors_name_the_file(tmp_path):
    with pytest.raises(MaaError, match="no such model folder"):
        load_weights(tmp_path / "nope", {"net": nn.Linear(2, 2)})
    save_weights(tmp_path / "m", {"net": nn.Linear(2, 2)}, {"a": 1})
    with pytest.raises(MaaError, match=r"net\.safetensors: weights do not fit"):
        load_weights(tmp_path / "m", {"net": nn.Linear(3, 2)})
    with pytest.raises(MaaError, match="other.safetensors: missing"):
        load_weights(tmp_path / "m", {"other": nn.Linear(2, 2)})


def test_ema_weights_are_exported_and_validated(tmp_path):
    task = Regress()
    train(task, Crops(), Crops(n=4, seed=1), _cfg(tmp_path, steps=8, ema_decay=0.9, val_every=4))
    exported = Regress(seed=5)
    load_weights(tmp_path / "toy", {"net": exported.net})
    raw = task.net.state_dict()
    w = exported.net.state_dict()
    assert not torch.allclose(w["0.weight"], raw["0.weight"])  # the export is the EMA, not the raw weights
    # independent reference: replay the EMA from the raw weights after every step
    torch.manual_seed(0)
    ref_task = Regress()
    ema = EMA(ref_task.net, 0.9)
    cfg = _cfg(tmp_path / "ref", steps=1, ckpt_every=100)
    for step in range(8):
        cfg.steps = step + 1
        train(ref_task, Crops(), None, cfg, resume=step > 0)
        ema.update(ref_task.net)
    assert torch.allclose(ema.shadow["0.weight"], w["0.weight"], atol=1e-5)
    vals = [r for r in read_metrics(tmp_path) if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [4, 8] and task.validated == [4, 8]


def test_warmup_scales_the_learning_rate(tmp_path):
    task = Regress()
    train(task, Crops(), None, _cfg(tmp_path, steps=4, warmup_steps=4, log_every=1))
    lrs = [r["lr"] for r in read_metrics(tmp_path) if r["kind"] == "train"]
    assert np.allclose(lrs, [1e-2 * k / 4 for k in (1, 2, 3, 4)])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    task = Regress(noise=0.0)
    train(task, Crops(), Crops(n=4, seed=1), _cfg(out_dir, steps=6, batch_size=2, ckpt_every=3))
    torch.save({k: v.clone() for k, v in task.net.state_dict().items()}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # ~6 s: two processes with gloo
def test_two_process_data_parallel_equals_one_process_with_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k])  # ranks stay in sync
    # one process reading the same global batches (2 ranks x 2 = 4) reaches the same weights
    single = Regress(noise=0.0)
    train(single, Crops(), None, _cfg(tmp_path / "one", steps=6, batch_size=4, ckpt_every=3))
    for k, v in single.net.state_dict().items():
        assert torch.allclose(v, w0[k], atol=1e-5), k
    # only rank 0 wrote: one line per step, not two
    assert [r["step"] for r in read_metrics(tmp_path / "ddp") if r["kind"] == "train"] == list(range(1, 7))


def test_validation_batches_spread_over_the_set_and_repeat():
    from maa.train.loop import val_batches

    class Ids:
        def __len__(self):
            return 20

        def get(self, i, rng):
            return torch.tensor([i, int(rng.integers(0, 1000))])

    cfg = _cfg("/tmp/unused", batch_size=3, max_val_batches=2)
    a, b = val_batches(Ids(), cfg), val_batches(Ids(), cfg)
    assert [x[:, 0].tolist() for x in a] == [[0, 4, 8], [11, 15, 19]]
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same crops every time
    assert sum(len(x) for x in val_batches(Ids(), _cfg("/tmp/unused", batch_size=8, max_val_batches=8))) == 20
