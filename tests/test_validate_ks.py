"""Weighted two-sample KS distances (CalRatio data vs MC): equal to scipy's, weights as repetitions."""

import numpy as np
import pytest
from scipy import stats

from pipeline_steps.validate import ks as ks_metrics


def test_unweighted_ks_equals_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(0.3, 1.2, size=150)
    assert ks_metrics.weighted_ks(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    ties_a, ties_b = rng.integers(0, 5, 100).astype(float), rng.integers(0, 6, 80).astype(float)
    assert ks_metrics.weighted_ks(ties_a, ties_b) == pytest.approx(stats.ks_2samp(ties_a, ties_b).statistic, abs=1e-12)


def test_integer_weights_equal_repeated_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(0.5, size=40)
    weights_a, weights_b = rng.integers(1, 4, 50), rng.integers(1, 4, 40)
    expected = stats.ks_2samp(np.repeat(a, weights_a), np.repeat(b, weights_b)).statistic
    assert ks_metrics.weighted_ks(a, b, weights_a, weights_b) == pytest.approx(expected, abs=1e-12)


def test_ks_per_output_separates_data_from_mc():
    probabilities = np.repeat(np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]), 10, axis=0)  # 10 data, 10 MC jets
    ks = ks_metrics.ks_per_output(probabilities, np.repeat([1, 0], 10), np.ones(20))
    assert ks == pytest.approx({"ks_sig": 0.0, "ks_qcd": 1.0, "ks_bib": 1.0}, abs=1e-12)  # sums of ten 0.1 steps


def test_a_sample_worth_fewer_than_ten_entries_has_no_ks():
    """Half-negative NLO weights had given KS distances of 20 (a CDF normalised by a near-cancelling sum);
    nine positive entries scatter too much to decide the selection's 0.3 cut."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(size=400)
    cancelling = np.where(np.arange(400) % 2 == 0, 1.0, -0.98)  # sum 4, n_eff 0.04
    assert np.isnan(ks_metrics.weighted_ks(a, b, cancelling, None))
    assert np.isnan(ks_metrics.weighted_ks(a, b, -np.ones(400), None))  # a negative total: no sample at all
    assert np.isnan(ks_metrics.weighted_ks(a[:9], b))
    assert 0.0 <= ks_metrics.weighted_ks(a[:10], b) <= 1.0
    nlo = np.where(np.arange(400) % 5 == 0, -1.0, 1.0)  # 20 % negative: n_eff 144, a KS in [0, 1]
    assert 0.0 <= ks_metrics.weighted_ks(a, b, nlo, None) <= 1.0


def test_samples_with_equal_cdfs_are_exactly_zero_apart():
    """A constant column's KS (and its floor) had printed 2e-16: the rounding of 1 - 1 where both CDFs end."""
    from pipeline_steps.validate.distances import MergedSample

    rng = np.random.default_rng(4)
    weights_a, weights_b = rng.uniform(0.1, 3.0, 57), rng.uniform(0.1, 3.0, 43)
    assert ks_metrics.weighted_ks(np.full(57, 0.3), np.full(43, 0.3), weights_a, weights_b) == 0.0
    values = rng.normal(size=57)
    assert ks_metrics.weighted_ks(values, values, weights_a, weights_a) == 0.0
    w1, ks = MergedSample(np.full(57, 0.3), np.full(43, 0.3)).weighted(weights_a, weights_b)
    assert w1 == 0.0 and ks == 0.0
    a, b = rng.normal(size=300), rng.normal(0.2, 1.0, 200)  # the maximum elsewhere is untouched
    assert ks_metrics.weighted_ks(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert MergedSample(a, b).weighted(None, None)[1] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
