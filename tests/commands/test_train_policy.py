"""The one `train-*` run-folder rule, command by command: refuse, --resume, --fresh.

Each command first trains a run to step 2 (a checkpoint at step 2), then:
  refuse  no flag: exit 1, one `error:` line naming step 2, --resume and --fresh; RUN unchanged to the byte
  resume  --resume --steps 4: continues at step 3; metrics.jsonl keeps the first run's rows as they were
  fresh   --fresh --steps 2: starts at step 1 again and says it replaces the step-4 checkpoint
"""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from maa.core.audio import mel_spectrogram, save_wav
from maa.train.loop import read_metrics
from tests.conftest import real_ish
from tests.ldm_fixtures import make_model_dir, write_clips

pytestmark = pytest.mark.usefixtures("one_thread")


def _maa(*args):
    from maa.commands.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Tiny inputs for all four commands: captioned clips, their mels, a VAE + LDM model folder, a text encoder."""
    from tests.data.test_caption import tiny_text_encoder

    root = tmp_path_factory.mktemp("policy")
    clips = write_clips(root / "clips", n=4, seconds=0.6)
    rows = [json.loads(l) for l in clips.read_text().splitlines()]
    for r in rows:
        r["audio"] = str(root / "clips" / r["audio"])
        m = mel_spectrogram(real_ish(0.8, seed=len(r["id"]))).numpy().astype(np.float16)
        np.save(root / "clips" / f"{r['id']}.npy", m)
        r["mel"] = str(root / "clips" / f"{r['id']}.npy")
    manifest = root / "rows.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in range(2):
        save_wav(root / "voc" / f"c{i}.wav", real_ish(0.8, seed=i))
    return {"manifest": manifest, "model": make_model_dir(root / "model"), "text": tiny_text_encoder(root / "bert"),
            "voc": root / "voc"}


def _args(kind: str, data: dict, run: Path) -> list:
    common = ["-o", run, "-b", 2, "--log-every", 1, "--ckpt-every", 2, "--device", "cpu", "-q"]
    if kind == "train-vae":
        return [kind, data["manifest"], "--preset", "tiny", "--frames", 32, "--val-fraction", 0, "--disc-channels", 8,
                "--disc-start", 1, *common]
    if kind == "train-ldm":
        return [kind, data["manifest"], "--vae", data["model"] / "vae", "--preset", "tiny", "--duration", 0.5,
                "--val-fraction", 0, *common]
    if kind == "train-clap":
        return [kind, data["manifest"], "--text-encoder", data["text"], "--channels", "8,16", "--embed-dim", 16,
                "--frames", 32, "--val-fraction", 0, "--warmup", 0, *common]
    return [kind, data["voc"], "--preset", "tiny", "--disc-start", 1, *common]


def _snapshot(run: Path) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _train_steps(run: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run) if r["kind"] == "train"]


@pytest.mark.parametrize("kind", ["train-vae", "train-ldm", "train-clap", "train-vocoder"])
def test_refuse_resume_fresh(kind, data, tmp_path):
    run = tmp_path / "run"
    args = _args(kind, data, run)
    r = _maa(*args, "--steps", 2)
    assert r.exit_code == 0, r.output
    first = (run / "metrics.jsonl").read_text().splitlines()
    assert _train_steps(run) == [1, 2]

    # refuse: one line naming the step and both choices; not a byte of RUN changes
    before = _snapshot(run)
    r = _maa(*args, "--steps", 4)
    assert r.exit_code == 1, r.output
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:"), r.stderr
    assert "step 2" in errors[0] and "--resume" in errors[0] and "--fresh" in errors[0]
    assert _snapshot(run) == before
    r = _maa(*args, "--steps", 4, "--resume", "--fresh")
    assert r.exit_code == 1 and "choose one" in r.stderr and _snapshot(run) == before

    # resume: continues from step 2; the first run's rows stay as they were
    r = _maa(*args, "--steps", 4, "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming" in r.stderr and "from step 2" in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 4
    assert _train_steps(run) == [1, 2, 3, 4]
    assert (run / "metrics.jsonl").read_text().splitlines()[:len(first)] == first

    # fresh: starts over at step 0 and says what it replaces
    r = _maa(*args, "--steps", 2, "--fresh")
    assert r.exit_code == 0, r.output
    assert "--fresh" in r.stderr and "replaces the checkpoint at step 4" in r.stderr and "metrics.jsonl" in r.stderr
    assert _train_steps(run) == [1, 2]
    assert "device: cpu" in r.stderr


def test_the_four_commands_share_their_flags():
    import typer.main
    from maa.commands.cli import app

    shared = {"--val", "--steps", "-b", "--batch-size", "--lr", "--device", "--threads", "--seed", "--resume", "--fresh",
              "--init"}
    cli = typer.main.get_command(app)
    for name in ("train-vae", "train-ldm", "train-clap", "train-vocoder"):
        params = cli.commands[name].params
        flags = {o for p in params for o in p.opts}
        assert shared <= flags, (name, shared - flags)
        helps = {p.name: p.help for p in params if p.name in ("val", "resume", "fresh", "device", "init")}
        assert helps == {p.name: p.help for p in cli.commands["train-ldm"].params if p.name in helps}, name
        assert next(p for p in params if p.name == "device").default == "auto"


def test_vocoder_keeps_valid_as_a_hidden_alias(data, tmp_path):
    import typer.main
    from maa.commands.cli import app

    valid = next(p for p in typer.main.get_command(app).commands["train-vocoder"].params if p.name == "valid")
    assert valid.hidden
    run = tmp_path / "run"
    r = _maa(*_args("train-vocoder", data, run), "--steps", 1, "--valid", data["voc"])
    assert r.exit_code == 0, r.output
    assert "2 training and 2 validation clips" in r.stderr
    r = _maa(*_args("train-vocoder", data, tmp_path / "run2"), "--steps", 1, "--val", data["voc"])  # the shared name
    assert r.exit_code == 0, r.output
    assert "2 training and 2 validation clips" in r.stderr


@pytest.mark.parametrize("kind,folder,weights", [("train-clap", "clap", "model"), ("train-vocoder", "vocoder", "generator")])
def test_init_starts_from_the_given_weights(kind, folder, weights, data, tmp_path):
    from safetensors.torch import load_file

    r = _maa(*_args(kind, data, tmp_path / "a"), "--steps", 1)
    assert r.exit_code == 0, r.output
    # a learning rate of 1e-12: the weights after one step are (within 1e-9) the ones the run started from
    r = _maa(*_args(kind, data, tmp_path / "b"), "--steps", 1, "--lr", 1e-12, "--init", tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert f"from {tmp_path / 'a'}" in r.stderr
    a = load_file(str(tmp_path / "a" / folder / f"{weights}.safetensors"))
    b = load_file(str(tmp_path / "b" / folder / f"{weights}.safetensors"))
    assert a.keys() == b.keys()
    learned = [k for k in a if not k.split(".")[-1].startswith(("running_", "num_batches"))]  # BatchNorm stats move anyway
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), rtol=0, atol=1e-9) for k in learned)
    assert any(v.numel() > 1 and v.std() > 1e-3 for v in a.values())  # not a trivially equal all-zero model
    r = _maa(*_args(kind, data, tmp_path / "c"), "--steps", 1, "--init", data["voc"])
    assert r.exit_code == 1 and "--init" in r.stderr and "Traceback" not in r.output


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return {str(p.relative_to(run)): load_file(p) for p in sorted(run.rglob("*.safetensors")) if "cache" not in p.parts}


@pytest.mark.parametrize("kind", [pytest.param("train-vae", marks=pytest.mark.slow), "train-ldm", "train-clap",
                                  pytest.param("train-vocoder", marks=pytest.mark.slow)])
def test_resume_is_bitwise_exact(kind, data, tmp_path):
    """Issue 23: 4 steps in one run and 2 steps then --resume to 4 give the same weights, bit for bit."""
    import torch

    one, two = tmp_path / "one", tmp_path / "two"
    fixed = ["--constant-lr"] if kind == "train-clap" else []  # its cosine schedule spans --steps by design
    assert _maa(*_args(kind, data, one), *fixed, "--steps", 4).exit_code == 0
    assert _maa(*_args(kind, data, two), *fixed, "--steps", 2).exit_code == 0
    init = ["--init", data["model"]] if kind == "train-ldm" else []  # not used on --resume, and said so
    r = _maa(*_args(kind, data, two), *fixed, "--steps", 4, "--resume", *init)
    assert r.exit_code == 0, r.output
    if init:
        assert f"--init {data['model']}: not used; --resume continues the weights of the checkpoint at step 2" in r.stderr
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys() and a
    for f in a:
        assert a[f].keys() == b[f].keys()
        diff = {k: float((a[f][k].double() - b[f][k].double()).abs().max()) for k in a[f] if not torch.equal(a[f][k], b[f][k])}
        assert not diff, (f, sorted(diff.items(), key=lambda kv: -kv[1])[:3])


@pytest.mark.parametrize("kind", ["train-vae", "train-ldm", "train-clap", "train-vocoder"])
def test_resume_without_a_checkpoint_is_refused(kind, data, tmp_path):
    """Issue 23: a mistyped -o with --resume used to train from scratch without a word."""
    r = _maa(*_args(kind, data, tmp_path / "typo"), "--steps", 2, "--resume")
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --resume: ") and "typo holds no checkpoint" in errors[0]
    assert not (tmp_path / "typo").exists()


def test_val_equal_to_the_training_manifest_warns(data, tmp_path):
    r = _maa(*_args("train-clap", data, tmp_path / "run"), "--steps", 1, "--val", data["manifest"])
    assert r.exit_code == 0, r.output
    warn = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warn) == 1 and f"--val {data['manifest']}: the training manifest itself" in warn[0]


def test_clap_resume_with_a_new_step_count_says_the_schedule_changed(data, tmp_path):
    run = tmp_path / "run"
    assert _maa(*_args("train-clap", data, run), "--steps", 2).exit_code == 0
    r = _maa(*_args("train-clap", data, run), "--steps", 4, "--resume")
    assert r.exit_code == 0, r.output
    assert "warning: --steps 4: the run's cosine learning-rate schedule spanned 2 steps" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind, module, cls", [("train-ldm", "maa.train.ldm", "LDMTask"),
                                               ("train-clap", "maa.train.clap", "ClapTask")])
def test_killed_and_resumed_is_bitwise_exact(kind, module, cls, data, tmp_path, monkeypatch):
    """The issue's kill test: a run stopped after its step-2 checkpoint and resumed to step 4 ends with the weights
    of an uninterrupted 4-step run (train-clap with its cosine schedule: the same --steps, the same curve)."""
    import importlib

    import torch

    one, two = tmp_path / "one", tmp_path / "two"
    assert _maa(*_args(kind, data, one), "--steps", 4).exit_code == 0
    task = getattr(importlib.import_module(module), cls)
    step_fn = task.train_step

    def killed(self, batch, step, cfg):
        if step == 2:
            raise KeyboardInterrupt
        return step_fn(self, batch, step, cfg)

    monkeypatch.setattr(task, "train_step", killed)
    assert _maa(*_args(kind, data, two), "--steps", 4).exit_code != 0
    monkeypatch.setattr(task, "train_step", step_fn)
    r = _maa(*_args(kind, data, two), "--steps", 4, "--resume")
    assert r.exit_code == 0 and "from step 2" in r.stderr, r.output
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys() and all(torch.equal(a[f][k], b[f][k]) for f in a for k in a[f])
