"""Metric math: pure numpy / scipy / scikit-learn, no I/O, no torch. Each function cites its source."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np


def bootstrap(statistic: Callable[..., float], samples: Sequence[np.ndarray], resamples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Point estimate and percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13), which always
    contains the estimate it is reported with.

    Each sample (rows = observations, e.g. posts) is resampled with replacement independently of the others;
    `statistic(*samples)` is recomputed on every resample. The value is the plug-in statistic on the full
    samples; for a statistic that resampling biases (a KS statistic of a few posts, whose resamples only ever
    grow apart), the percentile interval can miss it, and is then extended to it (`extended: true`), so the
    reported interval is the percentile interval or the smallest one that also holds the estimate. Returns
    {"value", "low", "high"} (and `extended` when it was). FID is not bootstrapped: see `fid_at_size`.
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
    if stats.size == 0 or not np.isfinite(value):
        return {"value": value, "low": float("nan"), "high": float("nan")}
    alpha = (1.0 - confidence) / 2
    low, high = float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))
    result = {"value": value, "low": min(low, value), "high": max(high, value)}
    if not low <= value <= high:
        result["extended"] = True
    return result


def fid_at_size(a: np.ndarray, b: np.ndarray, size: int, draws: int = 200, confidence: float = 0.95,
                seed: int = 0) -> dict[str, float]:
    """FID at a fixed sample size: the median FID over `draws` seeded subsamples of `size` rows drawn without
    replacement from each of `a` and `b`, with the central `confidence` share of those FIDs as interval.

    FID's plug-in estimate is biased upward by an amount that shrinks with the sample size (Chong & Forsyth
    2020, "Effectively Unbiased FID", CVPR), so FIDs of sets of different sizes are not comparable; computed
    at one size for every corpus compared, they are. Subsampling without replacement (Politis & Romano 1994)
    repeats no post, unlike a bootstrap, whose duplicates inflate FID further. The median always lies inside
    the percentile interval. Returns {"value", "low", "high", "size", "draws"}.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not 2 <= size <= min(len(a), len(b)):
        raise ValueError(f"fid_at_size: size must be in [2, {min(len(a), len(b))}] (got {size})")
    rng = np.random.default_rng(seed)
    values = np.array([fid(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
                       for _ in range(draws)])
    alpha = (1.0 - confidence) / 2
    return {"value": float(np.median(values)), "low": float(np.quantile(values, alpha)),
            "high": float(np.quantile(values, 1 - alpha)), "size": int(size), "draws": int(draws)}


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


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (Heusel et al. 2017, "FID"):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean_gap = a.mean(0) - b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # near-singular covariances of small sets: the estimate is still defined
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    return float(mean_gap @ mean_gap + np.trace(cov_a + cov_b - 2 * np.real(root)))


def js_alignment(p: Sequence[float], q: Sequence[float]) -> float:
    """1 - Jensen-Shannon distance (base 2, so in [0, 1]) between two distributions, the paper's emotional
    alignment (section 5.2). NaN when either has no mass."""
    from scipy.spatial.distance import jensenshannon

    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    return float(1.0 - jensenshannon(p / p.sum(), q / q.sum(), base=2))


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC-AUC; NaN when only one class is present (e.g. in a bootstrap resample)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else float("nan")


def discriminator_scores(real: Sequence[str], generated: Sequence[str], folds: int = 5,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(generated) from a TF-IDF + logistic-regression discriminator of real vs generated posts.

    Returns (labels, scores); their ROC-AUC is the authenticity metric (0.5 = indistinguishable). Bootstrap the
    pairs for an interval instead of refitting per resample.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    texts = list(real) + list(generated)
    labels = np.array([0] * len(real) + [1] * len(generated))
    folds = max(2, min(folds, len(real), len(generated)))
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                          LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, texts, labels, cv=splitter, method="predict_proba")[:, 1]
    return labels, scores


def toxicity_shift(generated: Sequence[float], real: Sequence[float]) -> dict[str, float]:
    """How a toxicity label's distribution moved: 1-Wasserstein distance and the two-sample KS statistic
    (distribution-level, as the paper compares toxicity distributions in section 5.2), and the mean difference."""
    from scipy.stats import ks_2samp, wasserstein_distance

    generated, real = np.asarray(generated, dtype=float), np.asarray(real, dtype=float)
    return {"wasserstein": float(wasserstein_distance(generated, real)),
            "ks": float(ks_2samp(generated, real).statistic),
            "mean_diff": float(generated.mean() - real.mean())}


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa for two raters on the same items (Cohen 1960): (p_o - p_e) / (1 - p_e), where p_e comes
    from each rater's own marginals. A thin wrapper over scikit-learn that returns NaN, not a warning, when
    kappa is undefined (both raters gave one and the same label to every item, so p_e = 1)."""
    from sklearn.metrics import cohen_kappa_score

    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"cohen_kappa: need two equally long, non-empty label lists (got {len(a)} and {len(b)})")
    if len(np.union1d(a, b)) < 2:
        return float("nan")
    return float(cohen_kappa_score(a, b))


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa for any fixed number n >= 2 of raters per item (Fleiss 1971, Psychol. Bull. 76(5)).

    `table[i][j]` is how many raters put item i in category j; every row must sum to the same n.
    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) is item i's pairwise agreement, p_j = sum_i n_ij / (N n) the
    category shares; kappa = (mean P_i - sum_j p_j^2) / (1 - sum_j p_j^2). NaN when every rating falls in one
    category (chance agreement is 1). With two raters this is Scott's pi, not Cohen's kappa.
    """
    table = np.asarray(table, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] < 2:
        raise ValueError(f"fleiss_kappa: need an items x categories table with >= 2 columns (got {table.shape})")
    if (table < 0).any():
        raise ValueError("fleiss_kappa: counts must be >= 0")
    raters = table.sum(axis=1)
    n = raters[0]
    if n < 2 or not np.allclose(raters, n):
        raise ValueError(f"fleiss_kappa: every item needs the same number (>= 2) of ratings (got {sorted(set(raters))})")
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_e = float((p_j ** 2).sum())
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_i.mean() - p_e) / (1.0 - p_e))


def origin_classifier():
    """The community-of-origin classifier (unfitted): TF-IDF of word 1-2-grams + logistic regression, the
    paper's origin classifier (section 5.2). Balanced class weights: real communities differ in size by 30x or
    more (the paper's sample: 1,722 vs 50 training posts), and an unweighted classifier then never names the
    small ones. The paper balanced by sampling 3,000 posts each."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced"))


def enclosing(estimate: dict[str, float]) -> dict[str, float]:
    """The interval widened, where needed, to contain its point estimate. A percentile interval of a discrete
    statistic over few observations (a share of 4 rows, say) can exclude the plug-in value itself; reporting
    "0.75 [0.80, 1.00]" would read as an error, so the nearer bound moves to the value (conservative)."""
    value, low, high = estimate["value"], estimate["low"], estimate["high"]
    if not all(np.isfinite([value, low, high])):
        return estimate
    return estimate | {"low": min(low, value), "high": max(high, value)}


def bootstrap_column_means(values: np.ndarray, resamples: int = 1000, confidence: float = 0.95,
                           seed=0) -> dict[str, list[float]]:
    """Column means of `values` (rows = observations, e.g. posts; columns = e.g. adapters) with percentile
    bootstrap intervals (Efron & Tibshirani 1993, ch. 13). Rows are resampled together, so the columns'
    intervals come from the same draws. `seed`: an int or a numpy Generator (e.g. `rng.keyed_rng`).
    Returns {"value", "low", "high"}, each a list with one entry per column."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values.mean(axis=0)
    draws = np.stack([values[rng.integers(len(values), size=len(values))].mean(axis=0) for _ in range(resamples)])
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)
    return {"value": means.tolist(), "low": np.minimum(low, means).tolist(), "high": np.maximum(high, means).tolist()}


def classification_scores(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str],
                          resamples: int = 1000, confidence: float = 0.95, seed=0) -> dict:
    """Accuracy and macro-F1 with percentile bootstrap intervals over (truth, prediction) pairs, and the
    confusion matrix (rows = truth, columns = prediction, in `labels` order). Macro-F1 averages over the
    labels present in the truth or the predictions (a class never predicted counts as F1 0; a class a
    resample happens to leave out entirely is not averaged in as 0). `seed`: an int or a numpy Generator."""
    from sklearn.metrics import confusion_matrix, f1_score

    pairs = np.column_stack([np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)])
    labels = list(labels)
    rng = np.random.default_rng(seed)

    def accuracy(p):
        return float(np.mean(p[:, 0] == p[:, 1]))

    def macro_f1(p):
        return float(f1_score(list(p[:, 0]), list(p[:, 1]), average="macro", zero_division=0))

    return {"accuracy": enclosing(bootstrap(accuracy, [pairs], resamples, confidence, rng)),
            "macro_f1": enclosing(bootstrap(macro_f1, [pairs], resamples, confidence, rng)),
            "labels": labels,
            "confusion": confusion_matrix(list(pairs[:, 0]), list(pairs[:, 1]), labels=labels).tolist()}


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(scores / temperature) along the last axis (scipy's, numerically stable)."""
    from scipy.special import softmax as _softmax

    return _softmax(np.asarray(scores, dtype=float) / temperature, axis=-1)
