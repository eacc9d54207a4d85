"""What a weighted sample is worth: Kish's effective number of rows.

One definition for every stage that needs a minimum sample: the distances and the figure of merit
(SHiP's weighted muons), and the CalRatio KS distances, whose NLO weights are signed.
"""

from __future__ import annotations

import numpy as np


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective number of rows, (sum w)^2 / sum w^2: the n of an unweighted sample as precise.

    0 when the weights sum to 0 or less (or there are none): signed weights that cancel describe no
    sample, although their square is positive (a CDF normalised by a sum near 0 had given KS distances
    of 20)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = float(weights.sum()) if len(weights) else 0.0
    return total * total / float(np.sum(weights * weights)) if total > 0 else 0.0
