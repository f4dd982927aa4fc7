"""How a loop's wrap sounds (benchmarks/bench_loop.py, tests): the measure, and the usual
crossfade loop it is compared with. Apart from maa.infer.loop, which the sampler imports."""

from __future__ import annotations

import numpy as np

from maa.core.audio import SAMPLE_RATE
from maa.infer.inpaint import join_flux_ratio, level_jump_db


def crossfade_loop(audio: np.ndarray, fade: float = 0.5) -> np.ndarray:
    """The usual way to make a plain clip loop (the baseline of benchmarks/bench_loop.py): its last
    `fade` s crossfaded (equal power) into its first, the result `fade` s shorter."""
    n = int(fade * SAMPLE_RATE)
    x = np.asarray(audio, np.float64)
    t = np.linspace(0, np.pi / 2, n)
    head = x[:n] * np.sin(t) + x[len(x) - n:] * np.cos(t)
    return np.concatenate([head, x[n:len(x) - n]]).astype(np.float32)


def wrap_figures(loop: np.ndarray, span: float = 0.5) -> dict:
    """How the loop's wrap sounds, played twice in a row, against the clip's own inside:
    flux_ratio: peak spectral flux at the wrap over that elsewhere (maa.infer.inpaint.join_flux_ratio;
    ~1 when the wrap is as smooth as the audio), inside_flux_ratio: the same at 1/4, 1/2 and 3/4
    of the clip (mean); level_step_db at the wrap and, for the clip's own
    spread, the level steps at points inside it (every `span` s, away from the wrap): their
    median and 90th percentile."""
    x = np.asarray(loop, np.float32)
    twice = np.concatenate([x, x])
    wrap = len(x) / SAMPLE_RATE
    seconds = len(x) / SAMPLE_RATE
    inside = [t for t in np.arange(span, seconds - span + 1e-9, span / 2) if abs(t - wrap) > span]
    steps = np.array([level_jump_db(twice, t, span) for t in inside])
    marks = [seconds * q for q in (0.25, 0.5, 0.75)]  # the same measure at points inside the clip
    return {"flux_ratio": join_flux_ratio(twice, [wrap]),
            "inside_flux_ratio": float(np.mean([join_flux_ratio(twice, [t]) for t in marks])),
            "level_step_db": level_jump_db(twice, wrap, span),
            "inside_level_step_db_median": float(np.median(steps)),
            "inside_level_step_db_p90": float(np.percentile(steps, 90))}
