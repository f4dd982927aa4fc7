import numpy as np
import pytest
import torch

from maa.core.audio import frames_for_duration, samples_for_frames, seconds_for_frames
from maa.core.errors import MaaError
from maa.infer.job import KEEP_SCENE_BATCH, estimate, preflight
from maa.infer.pipeline import (
    GenerateOptions,
    _layout,
    load_model,
    load_pipeline,
)
from maa.infer.temporal import part_span
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=4)


def test_same_seed_same_audio_and_batches_do_not_matter(model):
    opts = GenerateOptions(steps=3, duration=0.5, batch_size=2)
    a = model(["a dog barks", "rain"], [7, 8], opts=opts)
    b = model(["a dog barks", "rain"], [7, 8], opts=opts)
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    single = model(["rain"], [8], opts=GenerateOptions(steps=3, duration=0.5, batch_size=1))
    assert torch.allclose(single[0].latent, a[1].latent, atol=1e-4)
    other = model(["rain"], [9], opts=opts)
    assert not torch.allclose(other[0].latent, a[1].latent)


def test_every_sampler_runs_and_counts_steps(model):
    for sampler in ("ddim", "plms", "dpm++"):
        n = []
        out = model(["a bell"], [0], opts=GenerateOptions(steps=5, sampler=sampler, duration=0.3),
                       on_step=lambda: n.append(1))
        assert len(n) == 5 and np.isfinite(out[0].audio).all() and out[0].mel.shape == (80, 16)


def test_negative_prompt_and_guidance_one(model):
    base = GenerateOptions(steps=3, duration=0.3)
    plain = model(["a dog barks"], [1], opts=base)[0].latent
    neg = model(["a dog barks"], [1], opts=GenerateOptions(steps=3, duration=0.3, negative="loud noise"))[0].latent
    assert not torch.allclose(plain, neg, atol=1e-6)
    # guidance 1 is the conditional prediction alone: the negative prompt then plays no part
    g1 = model(["a dog barks"], [1], opts=GenerateOptions(steps=3, duration=0.3, guidance=1.0))[0].latent
    g1n = model(["a dog barks"], [1], opts=GenerateOptions(steps=3, duration=0.3, guidance=1.0, negative="x"))[0]
    assert torch.equal(g1, g1n.latent)


def test_audio_to_audio_strength(model):
    x = real_ish(0.6)
    n0 = []
    out0 = model(["a bell"], [0], opts=GenerateOptions(steps=10, duration=0.6, init_audio=x, strength=0.0),
                    on_step=lambda: n0.append(1))[0]
    assert len(out0.audio) == (32 + 1) * 256  # 0.6 s -> 36 frames -> 32 (4 latent frames)
    assert n0 == [] and np.array_equal(out0.audio, x[: len(out0.audio)])
    n3 = []
    out3 = model(["a bell"], [0], opts=GenerateOptions(steps=10, duration=0.6, init_audio=x, strength=0.3),
                    on_step=lambda: n3.append(1))[0]
    assert len(n3) == 3 and not np.allclose(out3.audio, x[: len(out3.audio)], atol=1e-2)


def test_split_prompt_audio_to_audio_takes_the_init_under_each_part(model):
    x = real_ish(1.5)  # longer than the 1 s clip, so no part is padded
    opts = GenerateOptions(steps=10, duration=1.0, init_audio=x, strength=0.0)
    out = model(["a bell, then a dog"], [0], opts=opts)[0]
    n = samples_for_frames(frames_for_duration(1.0))
    assert out.record.get("parts") == ["a bell", "a dog"] and np.array_equal(out.audio, x[:n])  # strength 0 keeps the input
    _, jobs, (ov,) = _layout(["a bell, then a dog"], [0], opts, model.vae.factor)
    start = part_span(1, 2, n, ov)[0]
    assert np.array_equal(jobs[0].init, x[:len(jobs[0].init)]) and np.array_equal(jobs[1].init, x[start:start + len(jobs[1].init)])
    edited = model(["a bell, then a dog"], [0], opts=GenerateOptions(steps=10, duration=1.0, init_audio=x, strength=0.3))[0]
    assert edited.audio.shape == (n,) and not np.allclose(edited.audio, x[:n], atol=1e-2)


def test_progress_total_counts_every_part(model):
    prompts = ["a bell", "a bell, then a dog", "rain"]
    opts = GenerateOptions(steps=3, duration=0.6, batch_size=2)
    calls = []
    model(prompts, [0, 1, 2], opts=opts, on_step=lambda: calls.append(1))
    # one batch of the two whole prompts, one of the two parts (shorter clips): 2 x 3 steps
    assert len(calls) == model.request(prompts, [0, 1, 2], opts=opts).sampler_calls() == 6


def test_order_words_split_the_prompt_over_time(model):
    opts = GenerateOptions(steps=4, duration=1.0)
    ab, ba, mixed = model(["a bell rings, then a dog barks", "a dog barks before a bell rings",
                                     "a bell rings, then a dog barks"], [3, 3, 3], opts=opts)
    assert ab.record.get("parts") == ["a bell rings", "a dog barks"] and ba.record.get("parts") == ["a dog barks", "a bell rings"]
    n = samples_for_frames(frames_for_duration(1.0))
    assert ab.audio.shape == (n,) and ab.mel.shape == (80, frames_for_duration(1.0)) and np.isfinite(ab.audio).all()
    assert not np.allclose(ab.audio, ba.audio, atol=1e-3)
    np.testing.assert_allclose(ab.audio, mixed.audio, atol=1e-5)  # deterministic, whatever else is in the batch
    # in a batch with one-part prompts the split prompt still gets its parts; those get none
    one, split = model(["a bell rings", "a bell rings, then a dog barks"], [3, 3], opts=opts)
    assert one.record.get("parts") is None and np.allclose(split.audio, ab.audio, atol=1e-5)
    plain = model(["a bell rings, then a dog barks"], [3], opts=GenerateOptions(steps=4, duration=1.0, compose=False))[0]
    assert plain.record.get("parts") is None and not np.allclose(plain.audio, ab.audio, atol=1e-3)
    # each part is a clip of its own: its text, its seed, its share of the time plus the crossfade
    _, jobs, (ov,) = _layout(["a bell rings, then a dog barks"], [3], opts, model.vae.factor)
    f = jobs[0].frames
    assert f < frames_for_duration(1.0) and samples_for_frames(f) >= n // 2 + ov // 2
    part_opts = GenerateOptions(steps=4, duration=seconds_for_frames(f))
    bell, dog = model(["a bell rings", "a dog barks"], [3, 3 + 1_000_003], opts=part_opts)
    assert torch.allclose(ab.latent, torch.cat([bell.latent, dog.latent], dim=-1), atol=1e-4)
    start, end = part_span(1, 2, n, ov)
    np.testing.assert_allclose(ab.audio[:start], bell.audio[:start], atol=1e-5)  # before the crossfade: A alone
    np.testing.assert_allclose(ab.audio[part_span(0, 2, n, ov)[1]:], dog.audio[part_span(0, 2, n, ov)[1] - start:end - start],
                               atol=1e-5)  # after it: B alone, from its own start


class LoudestScorer:
    """A stand-in audio-text scorer: a clip's score is its RMS, whatever the text."""
    name = "loudest"

    def embed_audio(self, wavs):
        return torch.tensor([[float(np.sqrt(np.mean(np.square(w))))] for w in wavs])

    def embed_text(self, texts):
        return torch.ones(len(texts), 1)

    def similarity(self, wavs, texts):
        return self.embed_audio(wavs)[:, 0]


def test_pipeline_best_of_k_seeds_and_records(model_dir, model):
    pipe = load_pipeline(model_dir, device="cpu", gl_iters=4, scorer=LoudestScorer())
    steps = []
    outs = pipe(["a dog barks", "rain falls, then thunder"], seed=5, candidates=3, steps=2, duration=0.5, batch_size=2,
                on_step=lambda: steps.append(1))
    assert [o.index for o in outs] == [0, 1]
    req = pipe.request(["a dog barks", "rain falls, then thunder"], seed=5, candidates=3, steps=2, duration=0.5, batch_size=2)
    assert len(steps) == req.sampler_calls() == 2 * len(req.batches)
    opts = GenerateOptions(steps=2, duration=0.5, batch_size=2)
    for out, prompt, first in zip(outs, ["a dog barks", "rain falls, then thunder"], [5, 8]):
        # the reference: the prompt's candidates alone, in the batches they had (Griffin-Lim's phases depend on the row)
        cands = model([prompt] * 3, [first, first + 1, first + 2], opts=opts)
        if "then" in prompt:  # a split prompt is scored part by part, each on its own half
            rms = [np.mean([np.sqrt(np.mean(np.square(h))) for h in np.array_split(c.audio, 2)]) for c in cands]
        else:
            rms = [np.sqrt(np.mean(np.square(c.audio))) for c in cands]
        best = int(np.argmax(rms))
        r = out.record
        assert r["candidate_seeds"] == [first, first + 1, first + 2] and r["seed"] == first + best and r["candidates"] == 3
        np.testing.assert_allclose(r["candidate_scores"], rms, atol=2e-4)
        assert np.array_equal(out.audio, cands[best].audio)
        assert r["prompt"] == prompt and r["steps"] == 2 and r["frames"] == 32 and r["maa"] and r["device"] == "cpu"
    assert outs[1].record["parts"] == ["rain falls", "thunder"] and "parts" not in outs[0].record
    # own seeds per prompt; a single prompt as a string; no scorer keeps the first candidate
    own = pipe(["a dog barks", "rain"], seeds=[None, 42], candidates=2, scorer=False, steps=1, duration=0.3)
    assert [o.record["seed"] for o in own] == [0, 42] and "score" not in own[0].record
    (one,) = pipe("a bell", steps=1, duration=0.3)
    assert one.audio.shape == (samples_for_frames(16),) and one.mel.shape == (80, 16)
    with pytest.raises(MaaError, match="unexpected keyword argument 'stepz'"):
        pipe("a bell", stepz=3)


def test_stream_samples_only_what_is_asked_for(model_dir):
    pipe = load_pipeline(model_dir, device="cpu", gl_iters=4)
    req = pipe.request(["a", "b", "c"], steps=2, duration=0.3, batch_size=1)
    n = []
    got = list(pipe.stream(req, lambda: n.append(1), outputs={1}))
    assert [o.index for o in got] == [1] and len(n) == req.sampler_calls({1}) == 2 < req.sampler_calls()
    full = pipe(["a", "b", "c"], steps=2, duration=0.3, batch_size=1)
    assert np.array_equal(got[0].audio, full[1].audio) and got[0].record == full[1].record


def test_import_maa_stays_cheap():
    import subprocess
    import sys

    import maa

    subprocess.run([sys.executable, "-c", "import sys, maa; assert 'torch' not in sys.modules"], check=True)
    assert maa.load_pipeline is load_pipeline  # the attribute loads the pipeline module on first use


def test_estimate_scales_with_the_latent(model_dir):
    short, long = (estimate(model_dir, d, 10, 1, 1) for d in (2.0, 20.0))
    assert long.latent == (4, 10, 156) and long.seconds > 9 * short.seconds and long.bytes > short.bytes
    # 1000 s: the tiny UNet attends at level 1 (2 heads): (5 x 3906)^2 scores per head, guided (x2), 4 bytes
    huge = estimate(model_dir, 1000.0, 1, 1, 1)
    assert huge.bytes >= 2 * 2 * (5 * 3906) ** 2 * 4 and "GB" in str(huge)


def test_keep_scene_inpainting_is_estimated_at_its_doubled_batch(model_dir):
    """keep-scene samples the spans under the prompt and under the scene in one batch: the estimate
    counts twice replace's sampling (time) and a batch twice as large (memory)."""
    def cost(mode, n):
        opts = GenerateOptions(duration=6.0, inpaint=[[1.0, 2.0]], init_audio="scene.wav", inpaint_mode=mode).check()
        return preflight(opts, model_dir, "cpu", samples=n)[2]

    assert KEEP_SCENE_BATCH == 2
    for n in (1, 3):
        keep, replace = cost("keep-scene", n), cost("replace", n)
        assert keep.latent == replace.latent
        assert keep.seconds == pytest.approx(KEEP_SCENE_BATCH * replace.seconds, rel=1e-9)
        assert keep.bytes > replace.bytes
        # the same as an estimate of n x 2 samples in batches of 2: the batch's memory doubles, not the weights'
        steps = GenerateOptions().steps
        assert (keep.seconds, keep.bytes) == (estimate(model_dir, 6.0, steps, 2 * n, 2).seconds,
                                              estimate(model_dir, 6.0, steps, 2 * n, 2).bytes)
        assert replace.bytes == estimate(model_dir, 6.0, steps, n, 1).bytes

def test_model_hash_is_kept_per_file_and_redone_when_a_file_changes(tmp_path, monkeypatch, model_dir):
    import shutil

    import maa.core.checkpoint
    import maa.infer.pipeline as pl

    monkeypatch.setattr(maa.core.checkpoint, "HASH_CACHE", tmp_path / "cache" / "h.json")
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    first = pl.model_sha256(folder)
    assert (tmp_path / "cache" / "h.json").exists()

    def refuse(*a, **k):
        raise AssertionError("hashed again although nothing changed")

    monkeypatch.setattr(maa.core.checkpoint, "sha256_file", refuse)
    assert pl.model_sha256(folder) == first  # from the cache, no file read
    monkeypatch.undo()
    monkeypatch.setattr(maa.core.checkpoint, "HASH_CACHE", tmp_path / "cache" / "h.json")
    cfg = folder / "ldm" / "config.json"
    cfg.write_text(cfg.read_text() + " ")  # new size and mtime: hashed again
    assert pl.model_sha256(folder) != first
    (tmp_path / "cache" / "h.json").write_text("not json")  # a damaged cache is ignored
    assert pl.model_sha256(folder) == pl.model_sha256(folder)
