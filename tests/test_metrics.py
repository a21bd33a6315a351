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


def test_fid_at_a_common_size_compares_sets_of_different_sizes_and_holds_its_point():
    """Plug-in FID falls with the sample size, so a 300-post set looks closer than a 20-post set drawn from the
    same distribution; at one common size they agree, and the median lies inside its percentile interval."""
    rng = np.random.default_rng(0)
    real, small, large = rng.normal(size=(300, 8)), rng.normal(size=(20, 8)), rng.normal(size=(300, 8))
    assert metrics.fid(small, real) > 2 * metrics.fid(large, real)  # the bias the common size removes
    at_small = metrics.fid_at_size(small, real, 10, draws=100, seed=0)
    at_large = metrics.fid_at_size(large, real, 10, draws=100, seed=0)
    for estimate in (at_small, at_large):
        assert estimate["low"] <= estimate["value"] <= estimate["high"] and estimate["size"] == 10
    assert abs(at_small["value"] - at_large["value"]) < 0.5 * at_large["value"]
    assert metrics.fid_at_size(small, real, 10, draws=100, seed=0) == at_small  # seeded
    with pytest.raises(ValueError, match="size must be in"):
        metrics.fid_at_size(small, real, 21)


def test_every_bootstrap_interval_holds_its_estimate():
    """A KS statistic of a few posts grows under resampling: its percentile interval can miss the plug-in
    value, and is then extended to it (and says so)."""
    from scipy.stats import ks_2samp

    for seed in range(20):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=6), rng.normal(size=40)
        estimate = metrics.bootstrap(lambda x, y: ks_2samp(x, y).statistic, [a, b], resamples=100, seed=seed)
        assert estimate["low"] <= estimate["value"] <= estimate["high"]


def test_permutation_pvalue():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=50), rng.normal(loc=1.5, size=50)
    assert metrics.permutation_pvalue(a, b, permutations=500) < 0.01
    assert metrics.permutation_pvalue(a, rng.normal(size=50), permutations=500) > 0.05
    assert metrics.permutation_pvalue([1.0], [1.0], permutations=10) == 1.0


def test_committed_demo_and_ci_baseline_numbers_are_strict_json_with_estimates_inside_their_intervals():
    """Issue 13: what the demo pipeline wrote (committed under reports/) parses with a strict JSON parser, and
    every {value, low, high} estimate lies inside its interval. reports/paper-sample is an archived run of an
    older commit (its README names it), made before FID moved to a common subsample size."""
    from conftest import REPO, assert_strict_reports

    assert assert_strict_reports(REPO / "reports", skip=("paper-sample",)) > 100
