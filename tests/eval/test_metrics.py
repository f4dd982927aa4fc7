import math

import numpy as np
import pytest
import scipy.linalg

from maa.eval import metrics


def _random_cov(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def _fd_scipy(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (independent reference)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [1, 3, 16])
def test_frechet_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d, 2.0)
    ours = metrics.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_fd_scipy(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)
    # symmetric in its two arguments
    assert metrics.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ours, rel=1e-9)


def test_frechet_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (sd1 - sd2)^2
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # diagonal covariances: sum over dims of the 1-D formula
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = 1.0 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert metrics.frechet_distance([0, 0, 1], np.diag(v1), [0, 0, 0], np.diag(v2)) == pytest.approx(want)
    # S2 = c^2 S1 commutes with S1: FD = (1 - c)^2 tr(S1)
    rng = np.random.default_rng(0)
    s = _random_cov(rng, 5)
    assert metrics.frechet_distance(np.zeros(5), s, np.zeros(5), 9 * s) == pytest.approx(4 * np.trace(s))
    # identical Gaussians: zero up to sqrtm rounding, never a tiny negative number
    assert 0.0 <= metrics.frechet_distance(np.ones(5), s, np.ones(5), s) < 1e-9


def test_frechet_singular_covariances_are_exact():
    # rank-1 covariances: scipy's sqrtm of a singular product is ill-conditioned; ours is exact
    s1, s2 = np.diag([1.0, 0.0, 0.0]), np.diag([4.0, 0.0, 0.0])
    assert metrics.frechet_distance(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(1.0, abs=1e-12)
    # fewer samples than dimensions: finite, non-negative, 0 for a set against itself
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((10, 64)), rng.standard_normal((10, 64)) + 0.5
    d_xy = metrics.frechet_distance_of(x, y)
    assert math.isfinite(d_xy) and d_xy > 0
    assert abs(metrics.frechet_distance_of(x, x)) < 1e-9 * np.trace(np.cov(x, rowvar=False))
    # a constant dimension (zero variance) does not break it
    x[:, 0] = 3.0
    assert math.isfinite(metrics.frechet_distance_of(x, y))


def test_frechet_from_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20000, 2)) * [1.0, 2.0]
    y = rng.standard_normal((20000, 2)) * [3.0, 2.0] + [1.0, 0.0]
    assert metrics.frechet_distance_of(x, y) == pytest.approx(1.0 + 4.0, rel=0.03)


def test_frechet_rejects_bad_shapes():
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError):
        metrics.gaussian_fit(np.zeros((1, 4)))


def test_kl_hand_computed():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    q = np.array([[0.25, 0.75], [0.5, 0.5]])
    k1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    k2 = 1.0 * math.log(1.0 / 0.5)  # 0 log 0 counts as 0
    assert metrics.kl_divergence(p, q) == pytest.approx((k1 + k2) / 2, rel=1e-12)
    assert metrics.kl_divergence(p, p) == 0.0
    # a class the generator gives probability 0: large but finite
    big = metrics.kl_divergence(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]))
    assert math.isfinite(big) and big > 10


def test_kl_rejects_non_distributions():
    with pytest.raises(ValueError):
        metrics.kl_divergence(np.array([[0.5, 0.6]]), np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError):
        metrics.kl_divergence(np.array([[0.5, 0.5]]), np.array([[0.2, 0.3, 0.5]]))


def test_inception_score_hand_computed():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])  # marginal (0.75, 0.25)
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    mean, std = metrics.inception_score(p)
    assert mean == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12) and std == 0.0
    # confident and evenly spread over C classes -> C; all the same -> 1
    assert metrics.inception_score(np.eye(7))[0] == pytest.approx(7.0)
    assert metrics.inception_score(np.tile([[0.2, 0.3, 0.5]], (5, 1)))[0] == pytest.approx(1.0)
    # splits: each half is one-hot over 2 classes -> 2 each, std 0
    mean, std = metrics.inception_score(np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]]), splits=2)
    assert (mean, std) == (pytest.approx(2.0), pytest.approx(0.0))


def test_softmax_stable_and_shift_invariant():
    z = np.array([[1000.0, 1001.0, 999.0]])
    p = metrics.softmax(z)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    assert np.allclose(p, metrics.softmax(z - 1000))


def test_clap_score_is_mean_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    t = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert metrics.clap_score(a, t) == pytest.approx((1 / math.sqrt(2) + 1.0) / 2)
    with pytest.raises(ValueError):
        metrics.clap_score(np.zeros((1, 2)), np.ones((1, 2)))


def test_mel_l1_and_lsd():
    a = np.zeros((80, 10))
    assert metrics.mel_l1(a, a + 0.5) == pytest.approx(0.5)
    assert metrics.mel_l1(a, np.ones((80, 12))) == pytest.approx(1.0)  # longer one cropped
    p = np.random.default_rng(0).random((513, 20)) + 0.1
    assert metrics.log_spectral_distance(p, 10 * p) == pytest.approx(10.0)  # 10x power = 10 dB everywhere
    assert metrics.log_spectral_distance(p, p) == 0.0
    assert math.isfinite(metrics.log_spectral_distance(np.zeros((513, 4)), p))


def test_one_table_of_metric_names():
    from maa.eval.evaluate import table_rows
    from maa.eval.metrics import METRICS, count_of
    from maa.eval.protocol import PROTOCOLS

    for p in PROTOCOLS.values():  # a protocol names only metrics of the table
        assert {m for ms in p.metrics.values() for m in ms} <= set(METRICS)
    assert count_of("fad", {"n_gen_frames": 3, "n_ref_frames": 4}) == "3 / 4 frames"
    result = {"extractors": {"a": {"is": 2.0, "fd": 1.0, "n_gen": 5, "n_ref": 6, "other": 9.0}},
              "spectral": {"lsd": 0.5, "mel_l1": 0.25, "n_pairs": 2}}
    assert table_rows(result) == [("a", "fd", "1.0000", "5 / 6"), ("a", "is", "2.0000", "5"),
                                  ("spectral", "mel_l1", "0.2500", "2 pairs"), ("spectral", "lsd", "0.5000", "2 pairs")]
