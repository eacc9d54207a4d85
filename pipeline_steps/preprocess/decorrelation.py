"""Decorrelation of a model's variable set: ZCA whitening fitted on the training split.

Applied after the per-variable transforms (``transforms.VariableTransforms``) when a model asks for
it; stored as three float64 arrays in ``transforms.npz``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass
class Decorrelation:
    """ZCA whitening y = W (x - mean), W = E diag(1/sqrt(lambda)) E^T of the training covariance.

    ZCA (rather than a PCA rotation) keeps each output close to its own input variable, so the
    columns keep their names' meaning. Directions with (numerically) zero variance are left
    unscaled, so W stays invertible.
    """

    mean: np.ndarray
    matrix: np.ndarray
    inverse_matrix: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Decorrelation":
        mean = x.mean(axis=0)
        covariance = np.atleast_2d(np.cov(x - mean, rowvar=False))
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        tiny = eigenvalues <= 1e-12 * max(float(eigenvalues.max()), 1e-300)
        scale = np.where(tiny, 1.0, np.sqrt(np.where(tiny, 1.0, eigenvalues)))
        matrix = eigenvectors @ np.diag(1.0 / scale) @ eigenvectors.T
        inverse_matrix = eigenvectors @ np.diag(scale) @ eigenvectors.T
        return cls(mean, matrix, inverse_matrix)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.matrix.T

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y @ self.inverse_matrix.T + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "matrix": self.matrix, "inverse_matrix": self.inverse_matrix}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decorrelation":
        return cls(*(np.asarray(data[key], dtype=np.float64) for key in ("mean", "matrix", "inverse_matrix")))
