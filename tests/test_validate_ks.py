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
    probabilities = np.array([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    ks = ks_metrics.ks_per_output(probabilities, np.array([1, 1, 0, 0]), np.ones(4))
    assert ks == {"ks_sig": 0.0, "ks_qcd": 1.0, "ks_bib": 1.0}
