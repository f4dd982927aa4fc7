"""Evaluation metrics as small pure functions on numpy arrays (float64 inside).

- frechet_distance: ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) between Gaussian fits.
  FD on PANNs CNN14 embeddings is the paper's "FD"; the same on VGGish frames is "FAD".
- kl_divergence: mean over paired clips of KL(reference || generated) between class distributions
  (audioldm_eval's "KL": softmax over the classifier's logits, reference as the target).
- inception_score: exp(E_x KL(p(y|x) || p(y))) over one set's class distributions.
- clap_score: mean cosine between each clip's audio embedding and its prompt's text embedding.
- mel_l1, log_spectral_distance: paired reconstruction errors.

Numerical stability of the Fréchet distance: the matrix square root is taken of the symmetric
positive semi-definite matrix S1^1/2 S2 S1^1/2 (same trace of square root as S1 S2, since
both have the same eigenvalues), through eigh. Its eigenvalues are real; tiny negative ones
from rounding, and any below the numerical-rank threshold d * eps * largest, are set to 0
(their square roots would otherwise add ~sqrt(eps) each). So singular or near-singular covariances (fewer clips than
dimensions, constant dimensions) give a finite, exact-for-PSD answer, with no ridge ("eps * I")
added and no complex parts to drop, which scipy.linalg.sqrtm on S1 @ S2 needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """A metric `maa eval` reports: its key in a result block, where it lives, and its count column."""

    name: str
    block: str  # "extractor" (one per extractor block) or "spectral" (paired clips)
    count: str  # the table's n column, formatted from the block's fields
    on_card: bool = True  # listed on the eval card among an extractor's metrics


# The one table of metric names: result keys, table order, the card's list and the protocols' names.
METRICS = {m.name: m for m in (
    Metric("fd", "extractor", "{n_gen} / {n_ref}"),
    Metric("fad", "extractor", "{n_gen_frames} / {n_ref_frames} frames"),
    Metric("kl", "extractor", "{n_pairs} pairs"),
    Metric("is", "extractor", "{n_gen}"),
    Metric("is_ref", "extractor", "{n_ref}", on_card=False),
    Metric("clap_score", "extractor", "{n_prompts} prompts"),
    Metric("mel_l1", "spectral", "{n_pairs} pairs"),
    Metric("lsd", "spectral", "{n_pairs} pairs"),
)}


def count_of(metric: str, block: dict) -> str:
    """The n column of `metric` in `block` (a missing count shows as None)."""
    fields = {k.split("}")[0] for k in METRICS[metric].count.split("{")[1:]}
    return METRICS[metric].count.format(**{k: block.get(k) for k in fields})


def gaussian_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of rows of x (N, D); needs N >= 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings of shape (N, D) for a covariance, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_eigvals(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off removed: below the numerical-rank threshold
    (d * machine epsilon * largest) they are noise of either sign, and their square roots
    (~sqrt(eps) each) would otherwise add up to a visible bias for singular covariances."""
    tol = len(w) * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), 0.0)
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via eigh."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(_psd_eigvals(w))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    r1 = _psd_sqrt(s1)
    inner = r1 @ s2 @ r1
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(_psd_eigvals(w)).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    # The true value is >= 0; rounding can leave a tiny negative number for identical sets.
    scale = float(np.trace(s1) + np.trace(s2) + ((mu1 - mu2) ** 2).sum()) + 1e-12
    if d < 0 and -d <= 1e-9 * scale:
        d = 0.0
    return d


def frechet_distance_of(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two sets of embeddings (N, D) and (M, D)."""
    return frechet_distance(*gaussian_fit(x), *gaussian_fit(y))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (float64, max-shifted)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check_probs(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{name}: want class probabilities of shape (N, C), got {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"{name}: rows must be probability distributions (non-negative, summing to 1)")
    return p


def kl_divergence(p_ref: np.ndarray, p_gen: np.ndarray, eps: float = 1e-12) -> float:
    """Mean over paired rows of KL(p_ref || p_gen) = sum_c p_ref log(p_ref / p_gen), in nats.

    0 log 0 counts as 0; p_gen is floored at `eps` so a class the generator rules out costs
    a large finite amount instead of inf.
    """
    p, q = _check_probs(p_ref, "reference"), _check_probs(p_gen, "generated")
    if p.shape != q.shape:
        raise ValueError(f"paired distributions must have the same shape, got {p.shape} and {q.shape}")
    terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(np.maximum(q, eps))), 0.0)
    return float(terms.sum(axis=1).mean())


def inception_score(probs: np.ndarray, splits: int = 1, eps: float = 1e-12) -> tuple[float, float]:
    """Inception score exp(mean_x KL(p(y|x) || p(y))): (mean, std) over `splits` equal chunks.

    1 when every clip gets the same distribution; the number of classes when each clip is
    confidently one class and the classes are used evenly.
    """
    p = _check_probs(probs, "probabilities")
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be in 1..{len(p)}, got {splits}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.where(part > 0, part * (np.log(np.maximum(part, eps)) - np.log(np.maximum(marginal, eps))), 0.0)
        scores.append(float(np.exp(kl.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


def clap_score(audio_emb: np.ndarray, text_emb: np.ndarray) -> float:
    """Mean cosine similarity between row i of audio_emb and row i of text_emb."""
    a, t = np.asarray(audio_emb, np.float64), np.asarray(text_emb, np.float64)
    if a.shape != t.shape or a.ndim != 2 or len(a) == 0:
        raise ValueError(f"want two (N, E) arrays of the same shape, got {a.shape} and {t.shape}")
    na, nt = np.linalg.norm(a, axis=1), np.linalg.norm(t, axis=1)
    if (na == 0).any() or (nt == 0).any():
        raise ValueError("an embedding is all zeros; its cosine similarity is undefined")
    return float(((a * t).sum(axis=1) / (na * nt)).mean())


def mel_l1(mel_a: np.ndarray, mel_b: np.ndarray) -> float:
    """Mean absolute difference of two log-mels (n_mels, frames); the longer one is cropped."""
    a, b = np.asarray(mel_a, np.float64), np.asarray(mel_b, np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"different mel bins: {a.shape} vs {b.shape}")
    n = min(a.shape[-1], b.shape[-1])
    return float(np.abs(a[..., :n] - b[..., :n]).mean())


def log_spectral_distance(power_a: np.ndarray, power_b: np.ndarray, eps: float = 1e-10) -> float:
    """LSD in dB: mean over frames of sqrt(mean over bins of (10 log10 Pa - 10 log10 Pb)^2).

    Inputs are power spectrograms (bins, frames); the longer one is cropped; `eps` floors
    silence so an all-zero frame gives a finite distance.
    """
    a, b = np.asarray(power_a, np.float64), np.asarray(power_b, np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"different frequency bins: {a.shape} vs {b.shape}")
    n = min(a.shape[-1], b.shape[-1])
    da = 10 * np.log10(np.maximum(a[:, :n], eps))
    db = 10 * np.log10(np.maximum(b[:, :n], eps))
    return float(np.sqrt(((da - db) ** 2).mean(axis=0)).mean())

