import math

import numpy as np
import pytest
import torch

from maa.core.audio import fit_length, mel_spectrogram
from maa.core.errors import MaaError
from maa.infer import sampling
from maa.infer.inpaint import (
    AUDIO_FADE,
    EVENT_GAIN_DB,
    LATENT_FADE,
    duck_mels,
    inpaint,
    join_flux_ratio,
    latent_times,
    layer_mels,
    level_jump_db,
    parse_span,
    sample_times,
    span_weight,
    spans_mel_error,
)
from maa.infer.pipeline import GenerateOptions, load_model
from maa.models.diffusion import SAMPLERS, SPACING, DiffusionConfig, alphas_cumprod, hold_known, regional, timesteps
from maa.parts.vocoders import NORMDB, log10_to_normdb
from tests.conftest import real_ish

pytestmark = pytest.mark.usefixtures("one_thread")
AC = alphas_cumprod(DiffusionConfig())


def toy(mu, s):
    """Exact eps of data N(mu, s^2), column by column (see tests/models/test_samplers.py)."""
    def eps(x, t):
        a = float(AC[t])
        return math.sqrt(1 - a) * (x - math.sqrt(a) * mu) / (a * s**2 + 1 - a)
    return eps


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_hold_known_keeps_the_known_columns_and_leaves_the_free_ones_to_the_sampler(name):
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(3, 2, 10, generator=g, dtype=torch.float64)
    known = torch.randn(3, 2, 10, generator=g, dtype=torch.float64)
    eps = toy(torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64))
    ts = timesteps(8, AC, SPACING[name])
    keep = torch.tensor([1.0] * 4 + [0.0] * 6, dtype=torch.float64)
    steps = []
    out = hold_known(SAMPLERS[name], known, keep, x_T, AC)(eps, x_T.clone(), ts, AC, callback=lambda i, x: steps.append(i))
    plain = SAMPLERS[name](eps, x_T.clone(), ts, AC)
    assert torch.equal(out[..., :4], known[..., :4])  # the clean known latent after the last step
    # the toy denoiser acts column by column, so the free columns follow the plain sampler exactly
    torch.testing.assert_close(out[..., 4:], plain[..., 4:])
    assert steps == list(range(len(ts)))  # the caller's callback still sees every step
    with_none = hold_known(SAMPLERS[name], known, torch.zeros(10, dtype=torch.float64), x_T, AC)
    torch.testing.assert_close(with_none(eps, x_T.clone(), ts, AC), plain)


def test_regional_gives_each_column_its_own_denoiser():
    x_T = torch.randn(2, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    one = lambda v: torch.tensor(v, dtype=torch.float64)
    a, b = toy(one(2.0), one(0.1)), toy(one(-1.0), one(0.5))
    w = torch.tensor([[1.0] * 5 + [0.0] * 7, [0.0] * 5 + [1.0] * 7])
    ts = timesteps(10, AC)
    mixed = SAMPLERS["ddim"](regional([a, b], w), x_T.clone(), ts, AC)
    torch.testing.assert_close(mixed[:, :5], SAMPLERS["ddim"](a, x_T.clone(), ts, AC)[:, :5])
    torch.testing.assert_close(mixed[:, 5:], SAMPLERS["ddim"](b, x_T.clone(), ts, AC)[:, 5:])
    # a column nobody covers falls to the first denoiser; weights are normalised
    half = regional([a, b], torch.tensor([[0.0, 2.0, 1.0], [0.0, 2.0, 3.0]]))
    x = torch.randn(1, 3, dtype=torch.float64)
    want = torch.stack([a(x, 500)[0, 0], (a(x, 500)[0, 1] + b(x, 500)[0, 1]) / 2,
                        (a(x, 500)[0, 2] + 3 * b(x, 500)[0, 2]) / 4])
    torch.testing.assert_close(half(x, 500)[0], want)


@pytest.mark.parametrize("text, span", [("2.0-3.5", (2.0, 3.5)), ("6-7", (6.0, 7.0)), (" .5 - 1 ", (0.5, 1.0))])
def test_parse_span(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["3-2", "2", "a-b", "1-1", "-1-2"])
def test_parse_span_rejects_with_the_fix(text):
    with pytest.raises(MaaError, match="START-END"):
        parse_span(text)


def test_span_weight_ramps_are_centred_on_the_edges():
    t = np.arange(0, 10, 0.01)
    w = span_weight(t, [(2.0, 4.0), (3.5, 5.0)], 0.2)
    assert w[t < 1.9].max() == 0 and w[(t > 2.1) & (t < 4.9)].min() == 1 and w[t > 5.1].max() == 0
    assert w[np.argmin(abs(t - 2.0))] == pytest.approx(0.5) and w[np.argmin(abs(t - 1.95))] == pytest.approx(0.25)
    # a span reaching the clip's start has no ramp there: nothing before it is kept
    assert span_weight(t, [(0.0, 1.0)], 0.2)[0] == 1


def test_join_measures_see_a_click_and_a_level_step_but_not_a_crossfade():
    sr = 16000
    t = np.arange(4 * sr) / sr
    lowpass = np.hanning(33) / np.hanning(33).sum()

    def texture(seed, phase):  # a tone over low-passed noise: one sound, two takes of it
        noise = np.random.default_rng(seed).standard_normal(len(t))
        return 0.3 * np.sin(2 * np.pi * 220 * t + phase) + 3 * np.convolve(noise, lowpass, "same")

    a, b = texture(1, 0.0), texture(2, 2.0)
    cut = np.where(t < 2.0, a, b)  # a hard splice: a step in the waveform, broadband
    w = span_weight(t, [(2.0, 4.0)], AUDIO_FADE)
    faded = (1 - w) * a + w * b
    assert join_flux_ratio(cut, [2.0]) > 4
    assert join_flux_ratio(faded, [2.0]) < 1.5
    assert level_jump_db(np.where(t < 2.0, a, 0.1 * a), 2.0) == pytest.approx(20, abs=0.3)
    assert level_jump_db(faded, 2.0) < 0.5


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir, gl_iters=4)


def test_inpaint_keeps_the_round_trip_outside_the_spans_and_changes_the_inside(model):
    audio = real_ish(3.0, seed=3)
    spans = [(0.8, 1.6), (2.2, 2.6)]
    opts = GenerateOptions(steps=4, guidance=2.0)
    out = inpaint(model, "a door slams", audio, spans, opts, seed=5)
    assert out.audio.shape == audio.shape and out.audio.dtype == np.float32
    # the known latent comes back exactly wherever its mask is 1 (frames far from the spans)
    from maa.infer.sampling import encode
    z_in = encode(model, [audio], out.mel.shape[-1])[0]
    assert torch.equal(out.latent[..., :3], z_in[..., :3])  # 0 - 0.38 s
    # audio outside the spans is the round trip itself; inside it is new
    margin = AUDIO_FADE / 2 + 0.02
    mel_in, mel_out, mel_rt = (mel_spectrogram(torch.from_numpy(x)).numpy() for x in (audio, out.audio, out.roundtrip))
    _, out_rt = spans_mel_error(mel_rt, mel_in, spans, margin + 0.07)  # mel windows reach 0.04 s
    _, out_o = spans_mel_error(mel_out, mel_in, spans, margin + 0.07)
    assert out_o == pytest.approx(out_rt, rel=0.02)
    changed_in, changed_out = spans_mel_error(mel_out, mel_rt, spans, margin + 0.07)
    assert changed_in > 0.3 and changed_in > 20 * changed_out
    # no clicks at the four edges, and the same seed gives the same result
    assert join_flux_ratio(out.audio, [0.8, 1.6, 2.2, 2.6], away=0.15) < 2.0
    assert np.array_equal(inpaint(model, "a door slams", audio, spans, opts, seed=5).audio, out.audio)


def test_inpaint_errors_name_the_fix(model):
    with pytest.raises(MaaError, match="outside the 1.00 s input"):
        inpaint(model, "x", np.zeros(16000, np.float32), [(2.0, 3.0)], GenerateOptions(steps=1))
    with pytest.raises(MaaError, match="at least one span"):
        inpaint(model, "x", np.zeros(16000, np.float32), [], GenerateOptions(steps=1))


def test_replace_is_the_prompt_alone_held_to_the_input_as_before(model):
    """--inpaint-mode replace (and keep-scene without a context) is the recipe from before keep-scene,
    rebuilt here from the sampler's primitives: bit-equal for one seed."""
    audio, spans = real_ish(2.0, seed=3), [(0.8, 1.4)]
    opts = GenerateOptions(steps=3, guidance=2.0)
    out = inpaint(model, "a door slams", audio, spans, opts, seed=5)
    frames = out.mel.shape[-1]
    z_in = sampling.encode(model, [audio], frames)
    keep = 1 - torch.from_numpy(span_weight(latent_times(z_in.shape[-1], model.vae.factor), spans, LATENT_FADE))
    noise = sampling.seeded_noise(z_in.shape[1:], 5)[None]
    z = sampling.sample(model, ["a door slams"], noise, opts, sampling.Known(z_in, keep), seed=5)
    _, (wav, rt) = sampling.decode(model, torch.cat([z, z_in]), frames)
    w = span_weight(sample_times(len(wav)), spans, AUDIO_FADE)
    assert np.array_equal(out.audio, fit_length(w * wav + (1 - w) * rt, len(audio)).astype(np.float32))
    # the tiny model has no clap/ to caption the scene: keep-scene without --context is replace
    o = GenerateOptions(steps=3, guidance=2.0, inpaint=spans, init_audio=audio)
    assert o.inpaint_mode == "keep-scene"
    from maa.infer.inpaint import generate_one
    got, _, _, extra = generate_one(model, "a door slams", 5, o)
    assert np.array_equal(got, out.audio) and extra["inpaint_context"] == ""


def test_keep_scene_sum_is_the_recipe_from_before_duck_bit_for_bit(model):
    """scene_mix "sum" (what records without a scene_mix replay) rebuilt from the primitives as
    keep-scene ran before "duck": one batch of both prompts, the event +6 dB over the scene as powers."""
    audio, spans = real_ish(2.0, seed=3), [(0.8, 1.4)]
    opts = GenerateOptions(steps=3, guidance=2.0)
    out = inpaint(model, "a door slams", audio, spans, opts, seed=5, context="rain falls", mix="sum")
    frames = out.mel.shape[-1]
    z_in = sampling.encode(model, [audio], frames)
    keep = 1 - torch.from_numpy(span_weight(latent_times(z_in.shape[-1], model.vae.factor), spans, LATENT_FADE))
    noise = sampling.seeded_noise(z_in.shape[1:], 5)[None]
    zz = sampling.sample(model, ["a door slams", "rain falls"], torch.cat([noise, noise]), opts,
                         sampling.Known(z_in, keep), seed=5)
    mels = model.vae.decode_latent(torch.cat([zz, z_in]) / model.dcfg.scale_factor, frames=frames).float()
    mix = layer_mels(mels[0:1], mels[1:2], None, 6.0)
    wav, rt = (fit_length(w, len(audio)) for w in model.vocoder(torch.cat([mix, mels[2:]])).float().numpy())
    w = span_weight(sample_times(len(wav)), spans, AUDIO_FADE)
    assert np.array_equal(out.audio, fit_length(w * wav + (1 - w) * rt, len(audio)).astype(np.float32))
    o = GenerateOptions(steps=3, guidance=2.0, inpaint=spans, init_audio=audio, context="rain falls", scene_mix="sum")
    from maa.infer.inpaint import generate_one
    assert np.array_equal(generate_one(model, "a door slams", 5, o)[0], out.audio)
    assert not np.array_equal(inpaint(model, "a door slams", audio, spans, opts, seed=5, context="rain falls").audio,
                              out.audio)  # the default (duck) is another mix
    with pytest.raises(MaaError, match="--scene-mix 'loud': choose one of duck, sum"):
        inpaint(model, "a door slams", audio, spans, opts, seed=5, context="rain falls", mix="loud")


def test_duck_mels_gives_the_event_its_loud_frames_and_the_scene_the_rest():
    """duck_mels against the recipe written out in numpy: per frame, the event's mean band power in
    dB; the gate 1 within 20 dB of its loudest frame inside the span, ramping over 3 dB below, averaged
    over 5 frames (ends repeated); the event's gain sets that loudest frame 18 dB over the scene's
    mean power in the span (0 to +12 dB); the event raised by gate * gain, the scene lowered by
    gate * 40 dB, then added as powers."""
    rng = np.random.default_rng(0)
    F = 80
    t = latent_times(F, 1)
    span = (0.4, 0.9)
    scene = rng.uniform(-1.2, -0.8, (80, F))  # about -20 dB
    level = np.where((t > 0.55) & (t < 0.62), -0.3, -3.0)  # a hit inside the span, quiet elsewhere
    level[t > 1.1] = -0.2  # louder than the hit, but outside the span: not its reference
    event = level[None, :] + rng.uniform(-0.3, 0.0, (80, F))

    def frame_db(m):
        return 10 * np.log10(np.mean(10 ** (2 * m), 0))

    inside = (t >= span[0]) & (t <= span[1])
    db = frame_db(event)
    top = db[inside].max()
    gain = np.clip(18 - (top - 10 * np.log10(np.mean(10 ** (frame_db(scene)[inside] / 10)))), 0, 12)
    assert 1 < gain < 11  # the level match, not its bounds
    gate = np.clip((db - (top - 20)) / 3, 0, 1)
    gate = np.convolve(np.pad(gate, (2, 2), mode="edge"), np.ones(5) / 5, mode="valid")
    want = np.log10(np.sqrt(10 ** (2 * (event + gate * gain / 20)) + 10 ** (2 * (scene - gate * 40 / 20))))
    ev, sc = torch.tensor(event)[None], torch.tensor(scene)[None]
    got = duck_mels(ev, sc, [span], None).numpy()[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    hit, quiet = (t > 0.57) & (t < 0.6), (t > 0.7) & (t < 0.9)
    np.testing.assert_allclose(got[:, hit], event[:, hit] + gain / 20, atol=1e-3)  # the hit alone, raised
    scene_db = 10 * np.log10(np.mean(10 ** (frame_db(scene)[inside] / 10)))
    assert abs(frame_db(got)[inside].max() - scene_db - 18) < 0.01  # its peak 18 dB over the scene
    np.testing.assert_allclose(got[:, quiet], np.log10(np.sqrt(10 ** (2 * event[:, quiet]) + 10 ** (2 * scene[:, quiet]))),
                               rtol=1e-5)  # the scene and the event's tail as they are
    # a second span is measured against its own loudest frame: the first span's frames are as alone
    two = duck_mels(ev, sc, [span, (1.0, 1.25)], None).numpy()[0]
    np.testing.assert_array_equal(two[:, t < 0.9], got[:, t < 0.9])
    assert not np.allclose(two[:, t > 1.0], got[:, t > 1.0])
    fixed = duck_mels(ev, sc, [span], None, gain_db=EVENT_GAIN_DB).numpy()[0]  # a fixed gain instead
    np.testing.assert_allclose(fixed[:, hit], event[:, hit] + EVENT_GAIN_DB / 20, atol=1e-3)
    # the normalised-dB domain is mixed as its log10 magnitudes are (compared above its floor)
    nd = duck_mels(log10_to_normdb(ev), log10_to_normdb(sc), [span], NORMDB)
    np.testing.assert_allclose(nd.numpy()[0], log10_to_normdb(torch.tensor(want)).numpy(), rtol=1e-4, atol=1e-5)


def test_keep_scene_layers_the_scene_under_the_event_inside_the_spans_only(model):
    audio, spans = real_ish(2.0, seed=3), [(0.8, 1.4)]
    opts = GenerateOptions(steps=3, guidance=2.0)
    alone = inpaint(model, "a door slams", audio, spans, opts, seed=5)
    kept = inpaint(model, "a door slams", audio, spans, opts, seed=5, context="rain falls")
    t = latent_times(alone.mel.shape[-1], 1)
    inside, outside = (t > 0.9) & (t < 1.3), (t < 0.6) | (t > 1.6)
    # a power sum is at least each part: the event's mel (sampled as in replace, one batch row of two) is under it
    assert (kept.mel[:, inside] >= alone.mel[:, inside] - 1e-3).all()
    assert (kept.mel[:, inside] - alone.mel[:, inside]).mean() > 0.05  # and the scene adds to it
    np.testing.assert_array_equal(kept.mel[:, outside], alone.mel[:, outside])  # the input's round trip both
    assert np.array_equal(kept.audio, inpaint(model, "a door slams", audio, spans, opts, seed=5, context="rain falls").audio)


def test_layer_mels_adds_magnitudes_as_powers_in_either_domain():
    a, b = torch.tensor([[0.3, 1e-5, 2.0]]), torch.tensor([[0.4, 1e-5, 0.0]])
    want = torch.log10(torch.sqrt(torch.clamp(a, min=1e-5) ** 2 + torch.clamp(b, min=1e-5) ** 2))
    a10, b10 = torch.log10(a.clamp(min=1e-5)), torch.log10(b.clamp(min=1e-5))
    torch.testing.assert_close(layer_mels(a10, b10, None), want)
    torch.testing.assert_close(layer_mels(a10, b10, None)[0, 0], torch.log10(torch.tensor(0.5)))  # 3-4-5
    # normalised dB floors at a magnitude of 1e-4: compare above it
    nd = layer_mels(log10_to_normdb(a10), log10_to_normdb(b10), NORMDB)
    torch.testing.assert_close(nd[:, [0, 2]], log10_to_normdb(want)[:, [0, 2]])
