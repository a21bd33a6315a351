"""Metric math against known answers."""

import numpy as np
import pytest

from hivelm import metrics


def test_fid_of_identical_and_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    # Same covariance, shifted mean: FID = ||shift||^2 (+ sampling noise).
    assert metrics.fid(a, a + shift) == pytest.approx(5.0, abs=1e-6)
    b = rng.normal(size=(4000, 4)) * 2.0  # covariance 4I vs I: trace term 4 * (1 + 4 - 2*2) = 4
    assert metrics.fid(a, b) == pytest.approx(4.0, rel=0.1)


def test_js_alignment_of_known_distributions():
    assert metrics.js_alignment([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.js_alignment([1, 0], [0, 1]) == pytest.approx(0.0)  # disjoint: distance 1 in base 2
    # JSD([.5,.5],[1,0]) = H(.75,.25) - 0.5*H(.5,.5) = 0.811278 - 0.5 = 0.311278 bits; distance = sqrt.
    assert metrics.js_alignment([0.5, 0.5], [1, 0]) == pytest.approx(1 - np.sqrt(0.311278), abs=1e-5)
    assert np.isnan(metrics.js_alignment([0, 0], [1, 1]))


def test_auc_of_separable_and_identical_sets():
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(metrics.auc([1, 1], [0.2, 0.3]))


def test_discriminator_separates_different_texts_but_not_the_same_kind():
    rng = np.random.default_rng(0)
    keto = ["almond", "flour", "butter", "cheese", "bacon", "avocado", "eggs", "salmon", "macros", "carbs"]
    run = ["tempo", "intervals", "marathon", "pace", "shoes", "miles", "splits", "taper", "hills", "cadence"]
    make = lambda words, n: [" ".join(rng.choice(words, 8)) for _ in range(n)]  # noqa: E731
    labels, scores = metrics.discriminator_scores(make(keto, 60), make(run, 60))
    assert metrics.auc(labels, scores) > 0.95
    labels, scores = metrics.discriminator_scores(make(keto, 60), make(keto, 60))
    assert 0.3 < metrics.auc(labels, scores) < 0.7


def test_toxicity_shift():
    shift = metrics.toxicity_shift([0.5, 0.5, 0.5], [0.1, 0.1, 0.1])
    assert shift == pytest.approx({"wasserstein": 0.4, "ks": 1.0, "mean_diff": 0.4})
    same = metrics.toxicity_shift([0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert same["wasserstein"] == pytest.approx(0.0) and same["ks"] == 0.0


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    rng = np.random.default_rng(1)
    sample = rng.normal(loc=3.0, size=400)
    estimate = metrics.bootstrap(np.mean, [sample], resamples=500, seed=0)
    assert estimate["low"] < 3.0 < estimate["high"] and estimate["high"] - estimate["low"] < 0.3
    assert metrics.bootstrap(np.mean, [sample], resamples=500, seed=0) == estimate
    two = metrics.bootstrap(lambda a, b: a.mean() - b.mean(), [sample, sample + 1.0], resamples=200)
    assert two["value"] == pytest.approx(-1.0) and two["low"] < -1.0 < two["high"]


def test_basic_bootstrap_corrects_the_sample_size_bias_of_fid():
    """FID from 60 posts is biased upward and resamples (with repeated points) are biased more, so the
    percentile interval sits above the truth; the basic interval reflects the shift back and covers it."""
    true_fid = 8 * 0.5 ** 2
    for seed in range(3):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(60, 8)), rng.normal(loc=0.5, size=(60, 8))
        percentile = metrics.bootstrap(metrics.fid, [a, b], resamples=200, seed=0)
        basic = metrics.bootstrap(metrics.fid, [a, b], resamples=200, seed=0, method="basic")
        assert basic["value"] == percentile["value"] > true_fid
        assert true_fid < percentile["low"]
        assert basic["low"] < true_fid < basic["high"]
    with pytest.raises(ValueError, match="percentile or basic"):
        metrics.bootstrap(np.mean, [a], method="bca")


def test_permutation_pvalue():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=50), rng.normal(loc=1.5, size=50)
    assert metrics.permutation_pvalue(a, b, permutations=500) < 0.01
    assert metrics.permutation_pvalue(a, rng.normal(size=50), permutations=500) > 0.05
    assert metrics.permutation_pvalue([1.0], [1.0], permutations=10) == 1.0
