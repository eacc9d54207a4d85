"""Weighted ROC curves and AUCs from score ranks, valid for negative weights.

scikit-learn's ``roc_curve``/``roc_auc_score`` integrate with ``auc``, which requires the false-positive
rate to be monotonic; with NLO generators' negative event weights it is not, and ATLAS signal and
background MC carry them (``mcEventWeight``), so the CalRatio plots had stopped on "x is neither
increasing nor decreasing". The weighted Mann-Whitney statistic, sum over pairs of w_s w_b
([s_s > s_b] + [tie] / 2) / (W_s W_b), is linear in each weight and needs no ordering of the curve.
"""

from __future__ import annotations

import numpy as np


def rank_auc(rank_negative: np.ndarray, rank_positive: np.ndarray, weights_negative: np.ndarray,
             weights_positive: np.ndarray, n_ranks: int) -> float:
    """Weighted P(score_positive > score_negative) + P(tie) / 2 from the scores' ranks (0 .. n_ranks - 1):
    roc_auc_score's value in O(n) (no sort per bootstrap replica), and defined for negative weights."""
    negative = np.bincount(rank_negative, weights_negative, minlength=n_ranks)
    positive = np.bincount(rank_positive, weights_positive, minlength=n_ranks)
    below = np.cumsum(negative) - negative
    return float(positive @ (below + 0.5 * negative) / (negative.sum() * positive.sum()))


def weighted_roc(scores: np.ndarray, is_positive: np.ndarray, weights: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """(true-positive rate, false-positive rate, AUC) with one point per distinct score, from the highest
    down, after (0, 0). With negative weights a rate can step back; the AUC stays the pair statistic."""
    scores, is_positive = np.asarray(scores, np.float64), np.asarray(is_positive, bool)
    weights = np.asarray(weights, np.float64)
    values, ranks = np.unique(scores, return_inverse=True)
    positive = np.bincount(ranks[is_positive], weights[is_positive], minlength=len(values))
    negative = np.bincount(ranks[~is_positive], weights[~is_positive], minlength=len(values))
    true_positive = np.r_[0.0, np.cumsum(positive[::-1])] / positive.sum()
    false_positive = np.r_[0.0, np.cumsum(negative[::-1])] / negative.sum()
    auc = rank_auc(ranks[~is_positive], ranks[is_positive], weights[~is_positive], weights[is_positive], len(values))
    return true_positive, false_positive, auc
