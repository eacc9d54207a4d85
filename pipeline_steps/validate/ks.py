"""Kolmogorov-Smirnov distances between data and simulation, for weighted samples.

The CalRatio trainer records them per epoch on control-region validation jets (its epoch selection
keeps epochs with a small BIB KS), and the CalRatio validation quotes them on test jets and per pT bin.
"""

from __future__ import annotations

import numpy as np

from pipeline_steps.common.weights import effective_size

__all__ = ["KS_COLUMNS", "MIN_WORTH", "weighted_ks", "bootstrap_ks_error", "ks_per_output"]

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
    return _SortedPair(a, b).distance(weights_a, weights_b)


def bootstrap_ks_error(a, b, weights_a, weights_b, n_boot: int, seed: int, events_a: np.ndarray | None = None,
                       events_b: np.ndarray | None = None) -> float:
    """Standard deviation of ``weighted_ks`` over ``n_boot`` replicas, each sample drawn by its events
    (``resampling.replica_drawer``: an event's jets together; by entry without events). NaN when fewer
    than half the replicas have a distance: that error would be the spread of the lucky draws only. A
    replica's multiplicities halve a sample's Kish n_eff (about n / 2 for unit weights), so the error needs
    about twice the ``MIN_WORTH`` the distance needs (12 and 15 jets a side: a distance, no error; 20: both).
    The values are sorted once; a replica only reweights them."""
    from pipeline_steps.validate.resampling import replica_drawer

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    weights_a, weights_b = np.asarray(weights_a, np.float64), np.asarray(weights_b, np.float64)
    if n_boot < 2 or not len(a) or not len(b):
        return float("nan")
    pair = _SortedPair(a, b)
    rng = np.random.default_rng([seed, 11])
    draw_a, draw_b = replica_drawer(len(a), events_a), replica_drawer(len(b), events_b)
    distances = np.array([pair.distance(weights_a * draw_a(rng), weights_b * draw_b(rng)) for _ in range(n_boot)])
    finite = distances[np.isfinite(distances)]
    return float(np.std(finite, ddof=1)) if 2 * len(finite) >= n_boot else float("nan")


class _SortedPair:
    """Two samples' values merged and sorted once, for their KS distance under any weights."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        values = np.concatenate([a, b])
        self.order = np.argsort(values, kind="stable")
        sorted_values = values[self.order]
        # the CDFs' gap at the end of each run of equal values, but the last: both CDFs are 1 there, and the
        # rounding of 1 - 1 had printed a constant column's KS as 2e-16
        self.end_of_ties = np.r_[sorted_values[1:] != sorted_values[:-1], False]

    def distance(self, weights_a: np.ndarray, weights_b: np.ndarray) -> float:
        if not len(weights_a) or not len(weights_b) or min(effective_size(weights_a),
                                                           effective_size(weights_b)) < MIN_WORTH:
            return float("nan")
        steps = np.concatenate([weights_a / weights_a.sum(), -weights_b / weights_b.sum()])[self.order]
        return float(np.max(np.abs(np.cumsum(steps))[self.end_of_ties], initial=0.0))


def ks_per_output(probabilities: np.ndarray, is_data: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """KS distance data vs MC of each classifier output (``ks_sig``, ``ks_qcd``, ``ks_bib``)."""
    data = np.asarray(is_data) == 1
    return {
        column: weighted_ks(probabilities[data, index], probabilities[~data, index], weights[data], weights[~data])
        for column, index in KS_COLUMNS.items()
    }
