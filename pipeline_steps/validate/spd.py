"""Fraction of symmetric positive definite covariance matrices (LHCb covariance GAN check).

A generated covariance that is not SPD cannot be used by a track fit; the fraction is the first
thing to look at for a covariance model. Matrices are rebuilt from the unique ``cov_ij`` (i <= j).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_ELEMENT = re.compile(r"^cov_(\d)(\d)$")


def covariance_columns(columns) -> list[str]:
    """The ``cov_ij`` columns (i <= j) of a table, or [] when they do not form a full triangle."""
    found = [c for c in columns if _ELEMENT.match(c) and int(c[4]) <= int(c[5])]
    if not found:
        return []
    size = max(int(c[5]) for c in found) + 1
    return found if len(found) == size * (size + 1) // 2 else []


def spd_fraction(table: pd.DataFrame) -> float | None:
    """Share of rows whose matrix has all eigenvalues > 0 (None without covariance columns)."""
    names = covariance_columns(table.columns)
    if not names or not len(table):
        return None
    size = max(int(c[5]) for c in names) + 1
    matrices = np.zeros((len(table), size, size))
    for name in names:
        i, j = int(name[4]), int(name[5])
        matrices[:, i, j] = matrices[:, j, i] = table[name].to_numpy(np.float64)
    finite = np.isfinite(matrices).all(axis=(1, 2))
    eigen_min = np.full(len(table), -np.inf)
    if finite.any():
        eigen_min[finite] = np.linalg.eigvalsh(matrices[finite]).min(axis=1)
    return float(np.mean(eigen_min > 0))
