"""One row that holds most of a column's spread: the sign of a sentinel or a corrupt value.

Across n rows the squared deviations from the mean sum to n var; a row holding more than half of that
sum sets the column's scale by itself, so a standardisation or a min-max normalisation squeezes every
other row towards one value (one rho of 1e30 left a condition with two distinct values; one SHiP Px at
float32's maximum turned its category's other momenta into one number). For n normal rows that needs a
deviation of sqrt(n / 2) standard deviations, beyond 7 from n = 100 on (P ~ 1e-12 per row): no healthy
continuous column of that size has one. Below ``MIN_ROWS`` rows a chance deviation can, so none is named.
"""

from __future__ import annotations

import numpy as np

MIN_ROWS = 100
DOMINANT_SHARE = 0.5


def dominating_row(values: np.ndarray) -> tuple[int, float] | None:
    """(position, share of the squared deviations) of the row farthest from the mean when it holds more
    than half of them, else None (also for fewer than ``MIN_ROWS`` rows)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < MIN_ROWS:
        return None
    squares = np.square(x - x.mean())
    total = float(squares.sum())
    top = int(np.argmax(squares))
    share = float(squares[top]) / total if total > 0 else 0.0
    return (top, share) if share > DOMINANT_SHARE else None
