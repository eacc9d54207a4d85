"""Kolmogorov-Smirnov distances between data and simulation, for weighted samples.

The CalRatio trainer records them per epoch on control-region validation jets (its epoch selection
keeps epochs with a small BIB KS), and the CalRatio validation quotes them on test jets and per pT bin.
"""

from __future__ import annotations

import numpy as np

from pipeline_steps.common.weights import effective_size

__all__ = ["KS_COLUMNS", "MIN_WORTH", "weighted_ks", "ks_per_output"]

#: Kish n_eff each sample needs for a KS distance: a floor, below which a KS is noise at the scale of the epoch
#: selection's default ks_threshold (0.3), not a size that resolves it. Two samples of one distribution differ
#: by a mean KS of 0.34 at 10 entries each and exceed 0.3 in 79 % of pairs (0.25 and 39 % at 15-20; 4000
#: pairs of normal samples, scipy's ks_2samp). It also stops signed (NLO) weights that nearly cancel, whose
#: CDF is normalised by a sum near 0 and exceeds 1: half-negative MC weights had given KS distances of 20 in
#: metrics.json and in the selection's ks_bib. Ten equal positive weights pass; unequal ones need more entries.
MIN_WORTH = 10.0

#: Classifier output index of each KS column (CalRatio: signal, QCD, BIB).
KS_COLUMNS = {"ks_sig": 0, "ks_qcd": 1, "ks_bib": 2}


def weighted_ks(a, b, weights_a=None, weights_b=None) -> float:
    """Two-sample Kolmogorov-Smirnov distance max|F_a - F_b| of (weighted) empirical CDFs.

    With unit weights this is ``scipy.stats.ks_2samp(a, b).statistic``. NaN if a sample is empty or worth
    fewer than ``MIN_WORTH`` unweighted entries (Kish n_eff = (sum w)^2 / sum w^2; 0 for a sum <= 0).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    weights_a = np.ones_like(a) if weights_a is None else np.asarray(weights_a, np.float64)
    weights_b = np.ones_like(b) if weights_b is None else np.asarray(weights_b, np.float64)
    if len(a) == 0 or len(b) == 0 or min(effective_size(weights_a), effective_size(weights_b)) < MIN_WORTH:
        return float("nan")
    values = np.concatenate([a, b])
    order = np.argsort(values, kind="stable")
    step_a = np.concatenate([weights_a / weights_a.sum(), np.zeros_like(b)])[order]
    step_b = np.concatenate([np.zeros_like(a), weights_b / weights_b.sum()])[order]
    sorted_values = values[order]
    end_of_ties = np.r_[sorted_values[1:] != sorted_values[:-1], True]
    return float(np.max(np.abs(np.cumsum(step_a) - np.cumsum(step_b))[end_of_ties]))


def ks_per_output(probabilities: np.ndarray, is_data: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """KS distance data vs MC of each classifier output (``ks_sig``, ``ks_qcd``, ``ks_bib``)."""
    data = np.asarray(is_data) == 1
    return {
        column: weighted_ks(probabilities[data, index], probabilities[~data, index], weights[data], weights[~data])
        for column, index in KS_COLUMNS.items()
    }
