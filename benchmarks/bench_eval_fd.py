"""Fréchet distance: maa.eval.metrics (eigh of S1^1/2 S2 S1^1/2) against the usual scipy.linalg.sqrtm(S1 @ S2).

Prints error against a known answer and time for well-conditioned and singular covariances.
Run: .venv/bin/python benchmarks/bench_eval_fd.py
"""

import time
import warnings

import numpy as np
import scipy.linalg

from maa.eval import metrics


def fd_scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def timed(fn, *args):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = fn(*args)
    return v, time.perf_counter() - t


def main():
    rng = np.random.default_rng(0)
    d = 512
    cases = []
    # 1. well conditioned, S2 = 4 S1: exact FD = (1 - 2)^2 tr(S1) = tr(S1)
    x = rng.standard_normal((4 * d, d))
    s = np.cov(x, rowvar=False)
    cases.append(("full rank, S2 = 4 S1", np.zeros(d), s, np.zeros(d), 4 * s, float(np.trace(s))))
    # 2. singular (100 clips in 512-d), a set against itself: exact FD = 0
    y = rng.standard_normal((100, d))
    sy = np.cov(y, rowvar=False)
    cases.append(("rank 99 of 512, same set", y.mean(0), sy, y.mean(0), sy, 0.0))
    # 3. singular, S2 = 4 S1 (commuting, rank 99): exact FD = tr(S1)
    cases.append(("rank 99 of 512, S2 = 4 S1", np.zeros(d), sy, np.zeros(d), 4 * sy, float(np.trace(sy))))
    print(f"{'case':32s} {'exact':>10s} {'maa err':>10s} {'scipy err':>10s} {'maa s':>7s} {'scipy s':>7s}")
    for name, m1, s1, m2, s2, exact in cases:
        ours, t_ours = timed(metrics.frechet_distance, m1, s1, m2, s2)
        ref, t_ref = timed(fd_scipy, m1, s1, m2, s2)
        print(f"{name:32s} {exact:10.4f} {abs(ours - exact):10.2e} {abs(ref - exact):10.2e} {t_ours:7.3f} {t_ref:7.3f}")


if __name__ == "__main__":
    main()
