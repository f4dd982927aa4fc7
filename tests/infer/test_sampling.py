"""maa.infer.sampling: every mode samples through the one `sample`, and a plain prompt walks no mode's code."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maa.infer import sampling
from maa.infer.options import GenerateOptions
from maa.infer.pipeline import load_model
from maa.infer.timeline import Event, render
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=2)


@pytest.fixture
def calls(monkeypatch):
    """Each call of sampling.sample: (conditions, known, noise shape), the real sampler run behind it."""
    seen, real = [], sampling.sample

    def spy(model_, conditions, noise, opts, known=None, on_step=None, seed=0):
        seen.append((conditions, known, tuple(noise.shape)))
        return real(model_, conditions, noise, opts, known, on_step, seed)

    monkeypatch.setattr(sampling, "sample", spy)
    return seen


def test_every_mode_samples_through_the_one_sample(model, calls):
    x = real_ish(1.5, seed=2)
    # plain: one batch of two prompts, one call
    model(["a dog barks", "rain"], [0, 1], steps=1, duration=0.5, batch_size=2)
    assert [(c, k) for c, k, _ in calls] == [(["a dog barks", "rain"], None)]
    # composition: the two parts are two clips of one length, sampled as one batch
    calls.clear()
    (out,) = model(["a door slams, then a bell rings"], [0], steps=1, duration=1.0)
    assert out.record["parts"] == [c for c, _, _ in calls][0] == ["a door slams", "a bell rings"]
    # audio-to-audio: the init latent as the start (no mask)
    calls.clear()
    model(["thunder"], [0], steps=2, duration=1.0, init_audio=x, strength=0.5)
    ((conds, known, shape),) = calls
    assert conds == ["thunder"] and known.keep is None and known.latent.shape == shape
    # inpainting: the input's latent held outside the span
    calls.clear()
    (out,) = model(["a door"], [0], steps=1, init_audio=x, inpaint=[(0.5, 1.0)])
    ((conds, known, shape),) = calls
    assert conds == ["a door"] and known.keep is not None and known.keep.min() == 0 and known.keep.max() == 1
    assert out.record["inpaint"] == [[0.5, 1.0]]
    # timeline (mix): each event a clip of its own, then the background
    calls.clear()
    model(["tl"], [0], steps=1, duration=1.0, timeline=[{"start": 0, "end": 0.5, "prompt": "a bell"}], background="wind")
    assert [c for c, _, _ in calls] == [["a bell"], ["wind"]]
    # timeline (joint): one latent, one prompt per stretch
    calls.clear()
    render(model, [Event(0, 0.5, "a bell"), Event(0.5, 1.0, "a dog")], 1.0, GenerateOptions(steps=1), mode="joint")
    ((conds, known, _),) = calls
    assert isinstance(conds, sampling.Regions) and conds.texts == ["", "a bell", "a dog"] and known is None
    # long form: window 0 from noise, each next one holding the previous window's overlap
    calls.clear()
    (out,) = model(["rain"], [0], steps=1, duration=11.0)
    assert len(calls) == out.record["windows"] == 2
    assert calls[0][1] is None and calls[1][1].keep is not None and calls[0][2] == calls[1][2]


def test_sample_with_strength_zero_returns_the_start_and_decode_round_trips(model):
    x = real_ish(1.0, seed=4)
    opts = GenerateOptions(steps=4, strength=0.0)
    z = sampling.encode(model, [x], 64)
    noise = sampling.seeded_noise(z.shape[1:], 0)[None]
    assert torch.equal(sampling.sample(model, ["a"], noise, opts, sampling.Known(z)), z)  # no steps: the init latent
    mels, wavs = sampling.decode(model, z, 64)
    assert mels.shape == (1, 80, 64) and wavs.shape == (1, (64 + 1) * 256) and np.isfinite(wavs).all()


@pytest.mark.slow  # 10-25 s: CI runs it with the slow tests
def test_a_plain_prompt_walks_no_mode_module(tmp_path, model_dir):
    """benchmarks/walk_files.py: the files a plain `maa generate` calls functions in (module bodies left out)."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "walk_files.py"), "--model", str(model_dir), "--",
                           "-d", "0.5", "--steps", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    files = set(got["per_file"])
    assert {"maa/infer/job.py", "maa/infer/pipeline.py", "maa/infer/sampling.py", "commands/generate.py"} <= files
    # none of the modes a plain prompt does not use (BigVGAN included: a Vocos or Griffin-Lim model never
    # enters it), nor the scorers (K = 1), nor the picture, inpainting-model or pull modules
    assert got["mode_files"] == [], got["mode_files"]
    assert not files & {"maa/parts/scorers.py", "maa/parts/laion.py", "maa/models/clap.py", "maa/infer/visual.py",
                        "maa/data/visual.py", "maa/infer/native_inpaint.py", "maa/convert/pull.py"}
    assert got["files"] <= 23, sorted(files)  # 34 before issue 22 merged modules that belong together


def test_keep_scene_samples_the_event_and_the_scene_through_the_one_sample(model, calls):
    x = real_ish(1.5, seed=2)
    (out,) = model(["a door"], [0], steps=1, init_audio=x, inpaint=[(0.5, 1.0)], context="rain falls")
    ((conds, known, shape),) = calls  # one call: the event and the scene as one batch of two, one noise
    assert conds == ["a door", "rain falls"] and shape[0] == 2 and known.keep.min() == 0 and known.keep.max() == 1
    assert out.record["inpaint_mode"] == "keep-scene" and out.record["inpaint_context"] == "rain falls"
    assert out.record["inpaint_method"] == "text-conditioned"
    calls.clear()
    (old,) = model(["a door"], [0], steps=1, init_audio=x, inpaint=[(0.5, 1.0)], inpaint_mode="replace")
    assert [c for c, _, _ in calls] == [["a door"]] and old.record["inpaint_mode"] == "replace"
    assert "inpaint_context" not in old.record and "context" not in old.record
