"""Figures a physicist reads: real vs generated per variable (with ratio), pairs in 2D, BDT output, response.

Real is drawn in blue, generated in orange (the LHCb/SHiP convention). Histograms are fractions of all
finite rows and weighted where the real data are weighted. Binning comes from the real sample's
0.5-99.5 % quantiles so a few generated outliers do not squash the picture; the rows beyond that range
are still counted in the total, and each panel says which share of each sample lies beyond it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.common.figures import save_figure  # noqa: E402

REAL, GENERATED = "tab:blue", "tab:orange"
SAVE_OPTIONS = {"dpi": 90, "crop": True}  # every validation figure (profiles too)
MAX_PAIR_VARIABLES = 6  # 15 pairs, the SHiP study's figure; more variables would be unreadable
RATIO_RANGE = (0.5, 1.5)  # +-50 % holds any usable model, a worse one is off-scale anyway
DISTRIBUTION_TAIL = 0.005  # 1D and 2D distributions span the real 0.5-99.5 % range: outliers do not squash them


def plot_distributions(real: pd.DataFrame, generated: pd.DataFrame, columns: list[str], path: str | Path,
                       bins: int = 50, real_weights: np.ndarray | None = None) -> None:
    """One panel per variable (normalised histograms) over a generated/real ratio panel."""
    n_cols = min(4, len(columns))
    fig, grid = ratio_grid(-(-len(columns) // n_cols), n_cols, width=4.0)
    for index, column in enumerate(columns):
        top, bottom = ratio_pair(fig, grid, *divmod(index, n_cols))
        values = real[column].to_numpy(np.float64)
        edges = log_edges(values, bins, DISTRIBUTION_TAIL)
        if edges is None:
            edges = quantile_edges(values, bins, DISTRIBUTION_TAIL)
        else:
            top.set_xscale("log")  # shared with the ratio panel
        histograms_with_ratio(top, bottom, values, generated[column].to_numpy(np.float64), edges, real_weights)
        top.set_title(column, fontsize=9)
        if index == 0:
            top.legend(fontsize=7)
    save_figure(fig, path, **SAVE_OPTIONS)


def ratio_grid(rows: int, cols: int, width: float):
    """A figure with a (main, ratio) pair of axes per cell: cells spaced for titles, pairs touching.

    One grid of 2 x rows with a single spacing either glued the ratio panel's tick labels to the next
    row's titles or, spaced for those, set each ratio panel apart from its own histogram; a cell per
    variable, split in two, spaces the two distances separately.
    """
    fig = plt.figure(figsize=(width * cols, 4.0 * rows))
    return fig, fig.add_gridspec(rows, cols, hspace=0.5, wspace=0.3)


def ratio_pair(fig, grid, row: int, col: int):
    """The (main, ratio) axes of one cell of :func:`ratio_grid`, sharing x; only the ratio's x is labelled."""
    cell = grid[row, col].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.12)
    top = fig.add_subplot(cell[0])
    bottom = fig.add_subplot(cell[1], sharex=top)
    top.tick_params(labelbottom=False)
    return top, bottom


def histograms_with_ratio(top, bottom, real: np.ndarray, generated: np.ndarray, edges: np.ndarray,
                          real_weights: np.ndarray | None = None) -> None:
    """Histograms as fractions of each sample's finite rows (real weighted when it is) over their ratio, and
    the share of each sample beyond the edges; empty samples draw nothing.

    Normalised to the binned rows only, 30 % of generated rows far beyond the range had drawn a perfect
    match (and a generator wholly outside it, no orange line at all). Non-finite values (and their weights)
    are left out, so one NaN row cannot blank a panel.
    """
    finite_real, finite_gen = np.isfinite(real), np.isfinite(generated)
    w_real = np.ones(len(real)) if real_weights is None else np.asarray(real_weights, dtype=np.float64)
    h_real, _ = np.histogram(real[finite_real], edges, weights=w_real[finite_real])
    h_gen, _ = np.histogram(generated[finite_gen], edges)
    total_real, total_gen = w_real[finite_real].sum(), float(finite_gen.sum())
    h_real = h_real / total_real if total_real > 0 else h_real * np.nan
    h_gen = h_gen / total_gen if total_gen > 0 else h_gen * np.nan
    top.stairs(h_real, edges, color=REAL, label="real")
    top.stairs(h_gen, edges, color=GENERATED, label="generated")
    top.set_ylabel("fraction", fontsize=7)
    beyond = [1.0 - h.sum() if np.isfinite(h).all() else float("nan") for h in (h_real, h_gen)]
    top.text(0.98, 0.97, f"beyond range: real {beyond[0]:.1%}, gen {beyond[1]:.1%}", transform=top.transAxes,
             ha="right", va="top", fontsize=5, color="dimgrey")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h_real > 0, h_gen / h_real, np.nan)
    bottom.stairs(ratio, edges, color="k")
    bottom.axhline(1.0, color="grey", lw=0.8, ls="--")
    bottom.set_ylim(*RATIO_RANGE)
    bottom.set_ylabel("gen/real", fontsize=7)


def quantile_edges(values: np.ndarray, bins: int, tail: float) -> np.ndarray:
    """``bins`` equal bins over the real sample's ``tail`` to ``1 - tail`` quantiles (finite values only), so
    a few outliers do not squash the picture; a constant or empty sample gets one unit around its value.

    Integer-valued samples (counts, IDs, flavours, vertex numbers) get bins centred on the integers, each
    holding the same number of them (one, where at most ``bins`` integers span the range): equal bins had
    held one or two integers alternately, so nConstituents and PV_npvs were drawn as combs of empty bins.
    """
    values = values[np.isfinite(values)]
    low, high = np.quantile(values, [tail, 1.0 - tail]) if len(values) else (0.0, 1.0)
    if _integer_valued(values) and high - low < INTEGER_SPAN_LIMIT:
        return _integer_edges(np.floor(low), np.ceil(high), bins)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


LOG_BINS_ABOVE = 100.0
"""A positive variable whose real 99.5 % / 0.5 % quantile ratio passes this (two decades) is binned in log: a
track's covariance diagonal spans 4-6 decades, and its equal bins had put 60-90 % of the rows in the first.
A sample with any zero keeps linear bins: a log axis cannot show its spike at 0 (real isolations: many)."""


def log_edges(values: np.ndarray, bins: int, tail: float) -> np.ndarray | None:
    """``bins`` log-spaced edges over the real ``tail`` quantiles of a positive sample spanning more than
    ``LOG_BINS_ABOVE``; None for any other sample (a zero or negative value, a narrow range, integers)."""
    values = values[np.isfinite(values)]
    if not len(values) or values.min() <= 0 or _integer_valued(values):
        return None
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return np.geomspace(low, high, bins + 1) if high > LOG_BINS_ABOVE * low else None


def _integer_valued(values: np.ndarray) -> bool:
    """Every (finite) value a whole number: counts, IDs, flavours, flags."""
    return bool(len(values)) and np.array_equal(values, np.round(values))


INTEGER_SPAN_LIMIT = 2.0**31
"""Integer bins only below this span: a -FLT_MAX sentinel in more than the tail share of an integer sample
(or uint64 event numbers) overflowed the bin arithmetic; so wide a range is binned like any other."""


def _integer_edges(low: float, high: float, bins: int) -> np.ndarray:
    """Edges at half-integers from ``low - 0.5``: at most ``bins`` bins of ``step`` integers covering low..high."""
    span = int(high - low) + 1
    step = -(-span // bins)
    return low - 0.5 + step * np.arange(-(-span // step) + 1)


def plot_pairs(real: pd.DataFrame, generated: pd.DataFrame, columns: list[str], path: str | Path,
               bins: int = 50, real_weights: np.ndarray | None = None) -> None:
    """2D histograms of every pair of the first variables, real (weighted when it is) and generated side by side."""
    columns = columns[:MAX_PAIR_VARIABLES]
    pairs = list(itertools.combinations(columns, 2)) or [(columns[0], columns[0])]
    per_row = 3
    n_rows = -(-len(pairs) // per_row)
    fig, axes = plt.subplots(n_rows, 2 * per_row, figsize=(3 * 2 * per_row, 3 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for index, (x, y) in enumerate(pairs):
        row, col = divmod(index, per_row)
        edges = tuple(quantile_edges(real[v].to_numpy(np.float64), bins, DISTRIBUTION_TAIL) for v in (x, y))
        for offset, (table, label, weights) in enumerate(((real, "real", real_weights), (generated, "generated", None))):
            ax = axes[row, 2 * col + offset]
            ax.set_axis_on()
            ax.hist2d(table[x], table[y], bins=edges, weights=weights, cmin=1e-300, cmap="viridis")
            ax.set_title(f"{label}: {y} vs {x}", fontsize=7)
            ax.tick_params(labelsize=6)
    save_figure(fig, path, **SAVE_OPTIONS)


def plot_bdt_output(scores_real: np.ndarray, scores_generated: np.ndarray, weights_real: np.ndarray,
                    weights_generated: np.ndarray, bins: int, path: str | Path, title: str = "") -> None:
    """BDT output of the evaluation rows: overlapping distributions mean a good generator."""
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(0, 1, bins + 1)
    ax.hist(scores_real, edges, weights=weights_real, density=True, histtype="step", color=REAL, label="real")
    ax.hist(scores_generated, edges, weights=weights_generated, density=True, histtype="step",
            color=GENERATED, label="generated")
    ax.set_xlabel("BDT output (probability of 'generated')")
    ax.set_ylabel("normalised")
    ax.set_title(title, fontsize=9)
    ax.legend()
    save_figure(fig, path, **SAVE_OPTIONS)


def plot_response(real: pd.DataFrame, generated: pd.DataFrame, condition: str, targets: list[str],
                  path: str | Path, n_bins: int = 10, real_weights: np.ndarray | None = None) -> None:
    """Median and 16-84 % band of each target in bins of a key condition, real vs generated.

    A discrete condition (<= 10 values, e.g. the SHiP category) gets one bin per value; a
    continuous one gets quantile bins of the real sample. The real quantiles are weighted when the real
    rows are: the generator learnt the weighted distribution (SHiP: real Px median 0.014 unweighted,
    0.345 weighted), so unweighted real quantiles had compared it with another one.
    """
    targets = targets[:4]
    fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.5), squeeze=False)
    centres, real_bins, gen_bins = _condition_bins(real[condition].to_numpy(), generated[condition].to_numpy(), n_bins)
    for ax, target in zip(axes[0], targets):
        for table, index, colour, label, weights in ((real, real_bins, REAL, "real", real_weights),
                                                      (generated, gen_bins, GENERATED, "generated", None)):
            q = _binned_quantiles(table[target].to_numpy(), index, len(centres), weights)
            ax.plot(centres, q[:, 1], "o-", color=colour, label=label, ms=3)
            ax.fill_between(centres, q[:, 0], q[:, 2], color=colour, alpha=0.25)
        ax.set_xlabel(condition)
        ax.set_ylabel(target)
        ax.legend(fontsize=7)
    fig.tight_layout()  # wide tick labels (covariances of 1e-5..1e2) had run into the next panel
    save_figure(fig, path, **SAVE_OPTIONS)


def _condition_bins(real: np.ndarray, generated: np.ndarray, n_bins: int):
    values = np.unique(real)
    if len(values) <= 10:
        return values.astype(float), np.searchsorted(values, real), np.searchsorted(values, generated)
    edges = np.unique(np.quantile(real, np.linspace(0, 1, n_bins + 1)))
    centres = 0.5 * (edges[1:] + edges[:-1])
    index = lambda x: np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(centres) - 1)  # noqa: E731
    return centres, index(real), index(generated)


def _binned_quantiles(values: np.ndarray, index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    result = np.full((n, 3), np.nan)
    for b in range(n):
        chosen = index == b
        if chosen.any():
            result[b] = (np.quantile(values[chosen], [0.16, 0.5, 0.84]) if weights is None
                         else weighted_quantiles(values[chosen], weights[chosen], [0.16, 0.5, 0.84]))
    return result


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, q) -> np.ndarray:
    """The smallest values whose cumulative weight share reaches each ``q`` (the inverted CDF, as numpy 2's
    ``quantile(weights=...)``; numpy 1.26 is allowed too). Unit weights give numpy's ``inverted_cdf``."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    positions = np.searchsorted(cumulative, np.asarray(q) * cumulative[-1], side="left")
    return np.asarray(values, dtype=np.float64)[order][np.minimum(positions, len(values) - 1)]


def plot_message(path: str | Path, message: str) -> None:
    """A figure that only says why the plot it stands in for could not be made (the report shows it)."""
    fig, axis = plt.subplots(figsize=(8, 3))
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    save_figure(fig, path, **SAVE_OPTIONS)
