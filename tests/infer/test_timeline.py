import json

import numpy as np
import pytest

from maa.core.audio import frames_for_duration
from maa.core.errors import MaaError
from maa.infer.pipeline import GenerateOptions, load_model
from maa.infer.timeline import (
    EVENT_FADE,
    Event,
    parse_timeline,
    render,
    timeline_seconds,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_inline_timeline_sorted_by_start():
    ev = parse_timeline("2-6: rain falls; 0-3: a dog barks;5-10 : a car passes, then stops")
    assert ev == [Event(0, 3, "a dog barks"), Event(2, 6, "rain falls"), Event(5, 10, "a car passes, then stops")]
    assert timeline_seconds(ev) == 10


@pytest.mark.parametrize("text", [
    json.dumps([{"start": 0, "end": 3, "prompt": "a dog barks"}, {"start": 2, "end": 6.5, "prompt": "rain"}]),
    json.dumps({"events": [{"start": 0, "end": 3, "prompt": "a dog barks"}, {"start": 2, "end": 6.5, "prompt": "rain"}]}),
    '{"start": 2, "end": 6.5, "prompt": "rain"}\n{"start": 0, "end": 3, "prompt": "a dog barks"}\n',
])
def test_parse_json_timelines(tmp_path, text):
    p = tmp_path / "t.json"
    p.write_text(text)
    assert parse_timeline(str(p)) == [Event(0, 3, "a dog barks"), Event(2, 6.5, "rain")]


@pytest.mark.parametrize("spec, match", [
    ("0-3 a dog barks", "START-END: PROMPT"),
    ("3-1: a dog", "START < END"),
    ("", "no events"),
    ("missing.json", "no such file"),
])
def test_timeline_errors_name_the_fix(spec, match):
    with pytest.raises(MaaError, match=match):
        parse_timeline(spec)


def test_json_event_without_prompt(tmp_path):
    (tmp_path / "t.json").write_text('[{"start": 0, "end": 1}]')
    with pytest.raises(MaaError, match="needs start, end"):
        parse_timeline(str(tmp_path / "t.json"))


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=4)


OPTS = GenerateOptions(steps=2, guidance=2.0)


def test_mix_places_each_event_in_its_span_and_nothing_elsewhere(model):
    events = parse_timeline("0.2-0.9: a dog barks; 0.6-1.4: rain falls; 2.0-2.4: a bell")
    t = render(model, events, 3.0, OPTS, seed=3)
    sr = 16000
    assert len(t.audio) == len(t.stems[0]) and t.mel.shape[0] == 80
    np.testing.assert_allclose(t.audio, np.sum(t.stems, axis=0), atol=1e-6)
    covered = np.zeros(len(t.audio), bool)
    for ev, stem in zip(events, t.stems):
        i0, i1 = int(ev.start * sr), int(ev.end * sr)
        assert not stem[:i0].any() and not stem[i1 + 1:].any()  # silent outside its span
        inner = stem[int((ev.start + EVENT_FADE) * sr):int((ev.end - EVENT_FADE) * sr)]
        assert np.sqrt(np.mean(inner**2)) > 1e-3
        covered[i0:i1 + 1] = True
    assert not t.audio[~covered].any()  # no background: gaps are silent
    assert t.record == {"timeline": [ev.to_dict() for ev in events], "background": None, "timeline_mode": "mix"}
    with_bg = render(model, events, 3.0, OPTS, seed=3, background="wind")
    assert np.sqrt(np.mean(with_bg.audio[~covered] ** 2)) > 1e-3 and len(with_bg.stems) == 4
    # the events do not depend on it (but each sum may be scaled down to stay under full scale)
    k = float(with_bg.stems[0] @ t.stems[0] / (t.stems[0] @ t.stems[0]))
    assert k > 0 and np.abs(with_bg.audio).max() <= 0.99 + 1e-6 and np.abs(t.audio).max() <= 0.99 + 1e-6
    np.testing.assert_allclose(with_bg.stems[0], k * t.stems[0], atol=1e-5)


def test_joint_with_one_event_over_the_whole_clip_is_plain_generation(model):
    t = render(model, [Event(0, 1.0, "rain falls")], 1.0, OPTS, seed=2, mode="joint")
    ref = model(["rain falls"], [2], opts=GenerateOptions(steps=2, guidance=2.0, duration=1.0, batch_size=1))[0]
    np.testing.assert_allclose(t.audio, ref.audio, atol=1e-4)
    two = render(model, parse_timeline("0-0.5: rain falls; 0.5-1: a dog barks"), 1.0, OPTS, seed=2, mode="joint")
    assert not np.allclose(two.audio, t.audio, atol=1e-3) and two.record["timeline_mode"] == "joint"


def test_render_errors(model):
    with pytest.raises(MaaError, match="starts after the"):
        render(model, [Event(5, 6, "x")], 1.0, OPTS)
    with pytest.raises(MaaError, match="choose mix or joint"):
        render(model, [Event(0, 1, "x")], 1.0, OPTS, mode="blend")
    with pytest.raises(MaaError, match="at most 10 s"):
        render(model, [Event(0, 1, "x")], 12.0, OPTS, mode="joint")


BASE = dict(steps=2, sampler="dpm++", guidance=2.0, negative="", eta=0.0)


@pytest.mark.slow
def test_a_long_clip_goes_window_by_window_with_the_parts_in_turn(model):
    calls = []
    long = GenerateOptions(**BASE, duration=12.0)
    assert long.mode == "long" and GenerateOptions(**BASE, duration=10.0).mode == "plain"
    (out,) = model(["rain, then wind"], [0], opts=long, on_step=lambda: calls.append(1))
    assert len(out.audio) == (frames_for_duration(12.0) + 1) * 256 and out.latent is None
    assert out.mel.shape == (80, frames_for_duration(12.0))
    assert out.record["windows"] == 2 and out.record["window_prompts"] == ["rain", "wind"]
    assert len(calls) == model.request(["rain, then wind"], [0], opts=long).sampler_calls()


def test_the_pipeline_routes_inpaint_and_timeline_and_counts_their_steps(model):
    calls = []
    tick = lambda: calls.append(1)
    tl = GenerateOptions(**BASE, duration=1.0, timeline=[{"start": 0.2, "end": 1.5, "prompt": "a bell"}])
    assert tl.mode == "timeline"
    (out,) = model(["x"], [0], opts=tl, on_step=tick)
    assert len(out.audio) >= 1.5 * 16000 and out.record["timeline"] == [{"start": 0.2, "end": 1.5, "prompt": "a bell"}]
    assert len(calls) == model.request(["x"], [0], opts=tl).sampler_calls() == 2
    ip = GenerateOptions(**BASE, init_audio=np.zeros(16000, np.float32) + 0.01, duration=10.0, inpaint=[[0.2, 0.5]])
    calls.clear()
    (out,) = model(["a door"], [0], opts=ip, on_step=tick)
    assert len(out.audio) == 16000 and out.latent is not None and out.record["inpaint"] == [[0.2, 0.5]]
    assert len(calls) == model.request(["a door"], [0], opts=ip).sampler_calls() == 2  # every step, not a strength share
    for bad, match in [(dict(background="rain"), "only with --timeline"),
                       (dict(timeline=[{"start": 3, "end": 1, "prompt": "x"}]), "START < END"),
                       (dict(inpaint=[[1, 2]]), "--init-audio FILE")]:
        with pytest.raises(MaaError, match=match):
            GenerateOptions(**BASE, duration=1.0, **bad).check()


def _cli(*args):
    from maa.commands.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["generate", *[str(a) for a in args]])


def test_cli_inpaint_and_timeline_record_their_spans_and_replay_exactly(tmp_path, model_dir):
    import soundfile as sf

    common = ["--model", model_dir, "--steps", 2, "-q"]
    assert _cli("rain", "-o", tmp_path / "src.wav", "-d", 2, *common).exit_code == 0
    r = _cli("a door", "--init-audio", tmp_path / "src.wav", "--inpaint", "0.5-1", "--inpaint", "1.5-1.8",
             "-o", tmp_path / "inp.wav", *common)
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["inpaint_method"] == "text-conditioned"  # the record says which inpainting ran
    assert row["inpaint"] == [[0.5, 1.0], [1.5, 1.8]] and sf.info(str(tmp_path / "inp.wav")).frames == sf.info(str(tmp_path / "src.wav")).frames
    r = _cli("--timeline", "0-1: a dog; 0.5-1.5: rain", "--background", "wind", "-d", 1, "-o", tmp_path / "tl.wav", *common)
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["timeline"] == [{"start": 0.0, "end": 1.0, "prompt": "a dog"}, {"start": 0.5, "end": 1.5, "prompt": "rain"}]
    assert row["background"] == "wind" and row["timeline_mode"] == "mix" and row["duration"] >= 1.5
    assert _cli("--replay", tmp_path / "tl.wav", "-o", tmp_path / "again.wav", "-q").exit_code == 0
    assert np.array_equal(sf.read(str(tmp_path / "tl.wav"))[0], sf.read(str(tmp_path / "again.wav"))[0])
    for args, match in [(["a door", "--inpaint", "1-2"], "--init-audio FILE"), (["--inpaint", "2-1", "x", "--init-audio", tmp_path / "src.wav"], "START < END"),
                        (["x", "--timeline", "0-1: a"], "replaces the prompt"), (["x", "--background", "rain"], "only with --timeline")]:
        r = _cli(*args, "-o", tmp_path / "bad.wav", *common)
        assert r.exit_code == 1 and match in r.output, r.output
