"""Representations of a 5x5 track covariance matrix as 15 numbers a generator can learn.

Physical input: the 15 upper-triangle elements ``cov_ij`` (i <= j, row-major: 00, 01, .., 04, 11,
.., 44), in the units of the track state (x, y, tx, ty, q/p). Each representation also has 15
numbers, stored in the same slots (the value in slot (i, j) belongs to the pair i, j), so a model's
target columns keep the ``cov_ij`` names whatever the representation:

- ``elements``: the 15 elements themselves (LHCb's covariance notebook);
- ``logdiag_corr``: slot (i, i) holds log(cov_ii) (log variance), slot (i, j) holds
  atanh(rho_ij) with rho_ij = cov_ij / sqrt(cov_ii cov_jj). atanh makes the correlations unbounded,
  so a network output never has to be clipped into (-1, 1); the inverse (tanh) always gives
  |rho| < 1, but the matrix is positive definite only if the correlations are consistent;
- ``cholesky``: cov = L L^T with L lower triangular; slot (i, i) holds log(L_ii), slot (i, j)
  (i < j) holds L_ji. Any 15 real numbers give a symmetric positive definite matrix.
"""

from __future__ import annotations

import numpy as np

from pipeline_steps.common.covariance import element_names  # noqa: F401 (the slot names, cov_00 .. cov_44)
from pipeline_steps.common.errors import InputError

REPRESENTATIONS = ("elements", "logdiag_corr", "cholesky")
SIZE = 5
UPPER_ROWS, UPPER_COLS = np.triu_indices(SIZE)
N_ELEMENTS = UPPER_ROWS.size  # 15
_DIAGONAL_SLOTS = UPPER_ROWS == UPPER_COLS


def elements_to_matrices(elements: np.ndarray) -> np.ndarray:
    """[n, 15] upper-triangle elements -> [n, 5, 5] symmetric matrices."""
    elements = _check_shape(elements)
    matrices = np.zeros((elements.shape[0], SIZE, SIZE))
    matrices[:, UPPER_ROWS, UPPER_COLS] = elements
    matrices[:, UPPER_COLS, UPPER_ROWS] = elements
    return matrices


def matrices_to_elements(matrices: np.ndarray) -> np.ndarray:
    """[n, 5, 5] -> [n, 15] upper-triangle elements (row-major)."""
    return np.asarray(matrices, dtype=np.float64)[:, UPPER_ROWS, UPPER_COLS]


def to_representation(elements: np.ndarray, representation: str) -> np.ndarray:
    """[n, 15] elements -> [n, 15] values of ``representation``."""
    _check_representation(representation)
    elements = _check_shape(elements)
    if representation == "elements":
        return elements.copy()
    if representation == "logdiag_corr":
        return _to_logdiag_corr(elements)
    return _to_cholesky(elements)


def from_representation(values: np.ndarray, representation: str) -> np.ndarray:
    """[n, 15] values of ``representation`` -> [n, 15] elements."""
    _check_representation(representation)
    values = _check_shape(values)
    if representation == "elements":
        return values.copy()
    if representation == "logdiag_corr":
        return _from_logdiag_corr(values)
    return _from_cholesky(values)


def _to_logdiag_corr(elements: np.ndarray) -> np.ndarray:
    variances = elements[:, _DIAGONAL_SLOTS]
    if np.any(variances <= 0):
        raise InputError(f"logdiag_corr: {int(np.sum(np.any(variances <= 0, axis=1)))} covariance matrices "
                         f"have a non-positive variance cov_ii; expected all variances > 0")
    sigma = np.sqrt(variances)
    rho = elements / (sigma[:, UPPER_ROWS] * sigma[:, UPPER_COLS])
    values = np.empty_like(elements)
    values[:, _DIAGONAL_SLOTS] = np.log(variances)
    off = ~_DIAGONAL_SLOTS
    if np.any(np.abs(rho[:, off]) >= 1):
        raise InputError("logdiag_corr: some correlation coefficients have |rho| >= 1; "
                         "expected valid covariance matrices")
    values[:, off] = np.arctanh(rho[:, off])
    return values


def _from_logdiag_corr(values: np.ndarray) -> np.ndarray:
    sigma = np.exp(0.5 * values[:, _DIAGONAL_SLOTS])
    rho = np.ones_like(values)
    rho[:, ~_DIAGONAL_SLOTS] = np.tanh(values[:, ~_DIAGONAL_SLOTS])
    return rho * sigma[:, UPPER_ROWS] * sigma[:, UPPER_COLS]


def _to_cholesky(elements: np.ndarray) -> np.ndarray:
    try:
        lower = np.linalg.cholesky(elements_to_matrices(elements))
    except np.linalg.LinAlgError as error:
        raise InputError("cholesky: some covariance matrices are not positive definite; "
                         "expected symmetric positive definite 5x5 matrices") from error
    values = lower[:, UPPER_COLS, UPPER_ROWS]  # slot (i, j) <- L[j, i]
    values[:, _DIAGONAL_SLOTS] = np.log(values[:, _DIAGONAL_SLOTS])
    return values


def _from_cholesky(values: np.ndarray) -> np.ndarray:
    factors = values.copy()
    factors[:, _DIAGONAL_SLOTS] = np.exp(factors[:, _DIAGONAL_SLOTS])
    lower = np.zeros((values.shape[0], SIZE, SIZE))
    lower[:, UPPER_COLS, UPPER_ROWS] = factors
    return matrices_to_elements(lower @ np.swapaxes(lower, 1, 2))


def _check_shape(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != N_ELEMENTS:
        raise InputError(f"covariance representation: expected an array [n, {N_ELEMENTS}], got shape {values.shape}")
    return values


def _check_representation(representation: str) -> None:
    if representation not in REPRESENTATIONS:
        from pipeline_steps.common.errors import ConfigError

        raise ConfigError(f"preprocessing.target_representation: expected one of {list(REPRESENTATIONS)}, "
                          f"got {representation!r}")
