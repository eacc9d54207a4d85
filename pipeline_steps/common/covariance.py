"""Covariance matrices stored as their elements ``cov_ij`` (i <= j), and the share of them that are SPD.

LHCb stores a track's covariance as the upper triangle of a symmetric matrix, one column per
element, ``cov_00, cov_01, .., cov_44`` (row-major). Preprocessing learns these columns (under any
representation), training and validation rebuild the matrices from them. A generated covariance
that is not symmetric positive definite (SPD) cannot be used by a track fit, so the SPD fraction is
the first number to look at for a covariance model.

Missing values: with no matrices to judge (the columns are not a full ``cov_ij`` triangle, or there
are no rows) the fraction is ``None``, not NaN. It is written into JSON documents (``spd.json``,
``metrics.json``, ``profiles.json``), where ``null`` is valid and NaN is not; the one table that wants a
number (the training ``history.csv``) turns ``None`` into NaN where it writes it.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import numpy as np

PREFIX = "cov_"
_ELEMENT = re.compile(rf"^{PREFIX}(\d)(\d)$")


def element_names(size: int = 5, prefix: str = PREFIX) -> list[str]:
    """``cov_00, cov_01, ..., cov_{size-1}{size-1}``: the upper triangle, row-major."""
    return [f"{prefix}{i}{j}" for i in range(size) for j in range(i, size)]


def covariance_columns(columns: Iterable[str]) -> list[str]:
    """The ``cov_ij`` (i <= j) among ``columns``, or [] when they do not form a full upper triangle."""
    found = [c for c in columns if (match := _ELEMENT.match(str(c))) and int(match[1]) <= int(match[2])]
    if not found:
        return []
    size = covariance_size(found)
    return found if len(found) == size * (size + 1) // 2 else []


def covariance_size(names: Iterable[str]) -> int:
    """The dimension d of the matrices the ``cov_ij`` ``names`` belong to (0 without any)."""
    return max((int(_ELEMENT.match(name)[2]) + 1 for name in names), default=0)


def covariance_matrices(elements: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Stack the ``cov_ij`` columns of ``elements`` (a DataFrame or a dict of arrays) into symmetric
    float64 matrices [n, d, d]; None when they are not a full upper triangle.

    Columns of other names are ignored. The matrices are symmetric by construction: only the upper
    triangle is learnt.
    """
    names = covariance_columns(list(elements))
    if not names:
        return None
    size = covariance_size(names)
    matrices = np.empty((len(elements[names[0]]), size, size), dtype=np.float64)
    for name in names:
        i, j = (int(index) for index in _ELEMENT.match(name).groups())
        matrices[:, i, j] = matrices[:, j, i] = np.asarray(elements[name], dtype=np.float64)
    return matrices


def spd_fraction(matrices: np.ndarray) -> float | None:
    """Fraction of the matrices [n, d, d] that are symmetric positive definite (all eigenvalues > 0).

    A matrix with a non-finite element counts as not SPD. None for n = 0 (see the module's note).
    """
    return float(np.mean(spd_mask(matrices))) if len(matrices) else None


def spd_mask(matrices: np.ndarray) -> np.ndarray:
    """Per matrix [n, d, d]: symmetric positive definite (all eigenvalues > 0, every element finite)."""
    finite = np.isfinite(matrices).all(axis=(1, 2))
    spd = np.zeros(len(matrices), dtype=bool)
    good = matrices[finite]
    if len(good):
        symmetric = np.isclose(good, np.swapaxes(good, 1, 2)).all(axis=(1, 2))
        spd[finite] = symmetric & (np.linalg.eigvalsh(good).min(axis=1) > 0)
    return spd


def elements_spd_fraction(elements: Mapping[str, np.ndarray]) -> float | None:
    """``spd_fraction`` of the matrices in the ``cov_ij`` columns of ``elements``; None without them."""
    matrices = covariance_matrices(elements)
    return None if matrices is None else spd_fraction(matrices)
