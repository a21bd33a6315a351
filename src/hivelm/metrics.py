"""Metric math: pure numpy / scipy / scikit-learn, no I/O, no torch. Each function cites its source."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def bootstrap(statistic: Callable[..., float], samples: Sequence[np.ndarray], resamples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Point estimate and percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13).

    Each sample (rows = observations, e.g. posts) is resampled with replacement independently of the others;
    `statistic(*samples)` is recomputed on every resample. Returns {"value", "low", "high"}.
    """
    rng = np.random.default_rng(seed)
    samples = [np.asarray(s) for s in samples]
    value = float(statistic(*samples))
    stats = []
    for _ in range(resamples):
        drawn = [s[rng.integers(len(s), size=len(s))] for s in samples]
        stats.append(statistic(*drawn))
    stats = np.asarray(stats, dtype=float)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return {"value": value, "low": float("nan"), "high": float("nan")}
    alpha = (1.0 - confidence) / 2
    return {"value": value, "low": float(np.quantile(stats, alpha)), "high": float(np.quantile(stats, 1 - alpha))}


def permutation_pvalue(a: Sequence[float], b: Sequence[float], permutations: int = 2000, seed: int = 0,
                       statistic: Callable[[np.ndarray, np.ndarray], float] | None = None) -> float:
    """Two-sided permutation p-value for a difference between groups (default: difference in means),
    with the +1 correction so it is never 0 (Phipson & Smyth 2010)."""
    statistic = statistic or (lambda x, y: float(np.mean(x) - np.mean(y)))
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    observed = abs(statistic(a, b))
    pooled = np.concatenate([a, b])
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(permutations):
        shuffled = rng.permutation(pooled)
        extreme += abs(statistic(shuffled[: len(a)], shuffled[len(a):])) >= observed - 1e-12
    return (extreme + 1) / (permutations + 1)
