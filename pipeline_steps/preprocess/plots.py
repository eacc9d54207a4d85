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
AXES_INCHES = (2.5, 1.65)  # each panel's axes; what tight_layout left them in a 3.2 x 2.4 in share of the figure

# The panel grid is spaced by these fixed distances instead of by ``tight_layout``, which measured every tick
# label of every panel: 2.0 of the 4.7 s the jets figure (50 panels) took to draw and save (2026-12-07, AMD
# EPYC AVX2, 1 core), in each of the four preprocess jobs of ``make run``. What tight_layout had found for
# the four default models: 0.55-0.58 in between panels and 0.50-0.68 in between rows, the most where an x
# offset text ("1e-5", the LHCb covariances) hangs under the tick labels. A panel's text is 6-pt tick labels
# (at most 7 characters: larger or smaller numbers go into the offset text, ``TICK_SCILIMITS``), a 6-pt offset
# text and an 8-pt title no wider than its axes (``_fitted_title``). On the widest values real columns give
# (tests/test_preprocess_plots.py: covariances of 1e-8, momenta of 4e5 MeV, names of 46 and 100 characters)
# the text left 0.35 in free between panels and 0.27 in between rows; the test fails once any reach another.
# The margins are cut off when saving (``save_figure(crop=True)``): they only have to hold the outer text.
PANEL_GAP_INCHES = 0.7  # between the panels of a row: the right panel's y tick labels
ROW_GAP_INCHES = 0.75  # between rows: x tick labels and offset text, then the title of the row below
MARGIN_INCHES = 0.7  # around the grid: y tick labels on the left, x tick labels below
TITLE_INCHES = 0.8  # above the grid: the suptitle, then the first row's titles
TICKS_PER_AXIS = 5  # at most (matplotlib: up to 9); each tick's text is drawn, ~700 ticks in the jets figure
TICK_SCILIMITS = (-3, 5)  # tick labels of at most 7 characters ("-0.0025", "-80000"), see _histogram
TITLE_POINTS = 8  # a panel's title, set smaller where it is wider than its axes (_fitted_title)
SMALLEST_TITLE_POINTS = 5


def plot_distributions(before: pd.DataFrame, after: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Histogram pairs (before | after) per variable; ``after`` columns match ``before`` by position."""
    names = list(before.columns)
    pairs_per_row = PANELS_PER_ROW // 2
    n_rows = max(1, math.ceil(len(names) / pairs_per_row))
    figure, axes = _panel_grid(n_rows, PANELS_PER_ROW)
    for index, name in enumerate(names):
        row, column = divmod(index, pairs_per_row)
        _histogram(axes[row][2 * column], before[name].to_numpy(), f"{name}", "C0")
        _histogram(axes[row][2 * column + 1], after.iloc[:, index].to_numpy(), f"{after.columns[index]}", "C1")
    for index in range(len(names) * 2, n_rows * PANELS_PER_ROW):
        axes[index // PANELS_PER_ROW][index % PANELS_PER_ROW].set_visible(False)
    height = figure.get_size_inches()[1]
    figure.suptitle(f"{title} (blue: before, orange: after the transforms)", y=1 - 0.3 / height)
    save_figure(figure, path, dpi=80, crop=True)


def _panel_grid(rows: int, columns: int):
    """A figure of ``rows`` x ``columns`` axes of :data:`AXES_INCHES`, spaced by the fixed distances above."""
    width = 2 * MARGIN_INCHES + columns * AXES_INCHES[0] + (columns - 1) * PANEL_GAP_INCHES
    height = MARGIN_INCHES + TITLE_INCHES + rows * AXES_INCHES[1] + (rows - 1) * ROW_GAP_INCHES
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    figure.subplots_adjust(left=MARGIN_INCHES / width, right=1 - MARGIN_INCHES / width,
                           bottom=MARGIN_INCHES / height, top=1 - TITLE_INCHES / height,
                           wspace=PANEL_GAP_INCHES / AXES_INCHES[0], hspace=ROW_GAP_INCHES / AXES_INCHES[1])
    return figure, axes


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
    title, points = _fitted_title(label)
    axis.set_title(title, fontsize=points)
    axis.tick_params(labelsize=6)
    # Numbers below 1e-3 or from 1e5 go into the offset text (by default only below 1e-5), at most 5 ticks
    # (by default up to 9): an LHCb covariance's x labels "0.000025", "0.000050", ... had run into each other.
    axis.ticklabel_format(style="sci", scilimits=TICK_SCILIMITS)
    axis.locator_params(nbins=TICKS_PER_AXIS)
    axis.xaxis.get_offset_text().set_fontsize(6)
    axis.yaxis.get_offset_text().set_fontsize(6)


def _fitted_title(label: str) -> tuple[str, float]:
    """(title, font size) no wider than the panel's axes: a longer name is set smaller, and below 5 pt loses
    its middle. With the fixed gaps a title overhanging its axes runs into the next panel's tick labels: 46
    wide characters at 8 pt did. Widths come from the font's glyphs (no renderer: ~0.5 ms a title)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    measure, room = TextToPath(), AXES_INCHES[0] * 72

    def width(text: str, points: float) -> float:
        return measure.get_text_width_height_descent(text, FontProperties(size=points), ismath=False)[0]

    points = min(TITLE_POINTS, TITLE_POINTS * room / max(width(label, TITLE_POINTS), 1e-9))
    if points >= SMALLEST_TITLE_POINTS:
        return label, points
    keep = len(label) // 2
    while keep > 1 and width(f"{label[:keep]}…{label[-keep:]}", SMALLEST_TITLE_POINTS) > room:
        keep -= 1
    return f"{label[:keep]}…{label[-keep:]}", SMALLEST_TITLE_POINTS
