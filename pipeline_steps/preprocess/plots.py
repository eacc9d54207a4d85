"""Diagnostic figures of the preprocessing, shown in the Snakemake report.

- distributions: each model variable before (physical / model-space units) and after its fitted
  transform, on the training split; a transform that misbehaves (a spike, a long tail left after
  a log) is visible at a glance;
- correlations: the Pearson correlation matrix of the conditions before and after the transforms.
  LHCb's covariance notebook checks that decorrelation removed strong correlations between
  conditions, which would otherwise starve the GAN discriminator.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.common.figures import save_figure  # noqa: E402

BINS = 50
PANELS_PER_ROW = 4  # two variables per row, each as a (before, after) pair


def plot_distributions(before: pd.DataFrame, after: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Histogram pairs (before | after) per variable; ``after`` columns match ``before`` by position."""
    names = list(before.columns)
    pairs_per_row = PANELS_PER_ROW // 2
    n_rows = max(1, math.ceil(len(names) / pairs_per_row))
    figure, axes = plt.subplots(n_rows, PANELS_PER_ROW, figsize=(3.2 * PANELS_PER_ROW, 2.4 * n_rows),
                                squeeze=False)
    for index, name in enumerate(names):
        row, column = divmod(index, pairs_per_row)
        _histogram(axes[row][2 * column], before[name].to_numpy(), f"{name}", "C0")
        _histogram(axes[row][2 * column + 1], after.iloc[:, index].to_numpy(), f"{after.columns[index]}", "C1")
    for index in range(len(names) * 2, n_rows * PANELS_PER_ROW):
        axes[index // PANELS_PER_ROW][index % PANELS_PER_ROW].set_visible(False)
    figure.suptitle(f"{title} (blue: before, orange: after the transforms)")
    figure.tight_layout(rect=(0, 0, 1, 0.98))  # room for the suptitle
    save_figure(figure, path, dpi=80)


def plot_correlations(before: pd.DataFrame, after: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Correlation matrices of the conditions before and after the transforms, side by side."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.5), squeeze=False)
    for axis, frame, label in ((axes[0][0], before, "before"), (axes[0][1], after, "after")):
        matrix = correlation_matrix(frame.to_numpy(np.float64))
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        labels = [str(c).removeprefix("cond__") for c in frame.columns]
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        off_diagonal = np.abs(matrix[~np.eye(len(matrix), dtype=bool)]) if len(matrix) > 1 else np.zeros(1)
        axis.set_title(f"{label}: max |off-diagonal| = {np.nanmax(off_diagonal):.2f}", fontsize=9)
    figure.colorbar(image, ax=[axes[0][0], axes[0][1]], shrink=0.8)
    figure.suptitle(title)
    save_figure(figure, path, dpi=80)  # no tight_layout: the colorbar spans both axes


def correlation_matrix(values: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns; a constant column gets 0 off the diagonal (not NaN)."""
    centred = values - values.mean(axis=0)
    std = centred.std(axis=0)
    std = np.where(std > 0, std, np.inf)
    normalised = centred / std
    matrix = normalised.T @ normalised / max(len(values), 1)
    np.fill_diagonal(matrix, 1.0)
    return matrix


def _histogram(axis, values: np.ndarray, label: str, color: str) -> None:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        try:
            axis.hist(finite, bins=BINS, color=color, histtype="stepfilled", alpha=0.7)
        except ValueError:  # a range too narrow for BINS distinct float edges (a near-constant column)
            axis.hist(finite, bins=1, color=color, histtype="stepfilled", alpha=0.7)
    axis.set_title(label, fontsize=8)
    axis.tick_params(labelsize=6)
