"""Figures of the physics profiles (``profiles.py`` computes the numbers, this module only draws them).

Every figure shows real (blue, filled markers) and generated (orange, open markers) over a lower panel
generated/real, the convention of ``plots.py``. Bins left out for too few entries are said on the
panel, so an empty stretch of a curve is never mistaken for agreement.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.common.figures import save_figure  # noqa: E402
from pipeline_steps.validate.plots import (  # noqa: E402
    GENERATED,
    RATIO_RANGE,
    REAL,
    SAVE_OPTIONS,
    histograms_with_ratio,
    quantile_edges,
    ratio_grid,
    ratio_pair,
)

LOG_X_SPAN = 20.0  # an x variable spanning more than this factor (gen pt) is drawn on a log axis
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Figures:
    """Writes the PNGs of one model into a (temporary) folder and remembers their names.

    ``min_entries`` is the profiles' minimum per bin, only quoted in the notes on the figures.
    """

    def __init__(self, folder: Path, model: str, min_entries: int):
        self.folder, self.model, self.min_entries, self.written = folder, model, min_entries, []

    def save(self, fig, name: str) -> None:
        filename = _SAFE.sub("_", name) + ".png"
        save_figure(fig, self.folder / filename, **SAVE_OPTIONS)
        self.written.append(filename)

    def message(self, name: str, text: str) -> None:
        fig, axis = plt.subplots(figsize=(8, 3))
        axis.axis("off")
        axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
        self.save(fig, name)

    def residual_profile(self, spec, definition: str, versus: str, panels: Mapping[str, pd.DataFrame]) -> None:
        """Rows: flavour groups; columns: mean and resolution of ``definition`` in bins of ``versus``."""
        fig, grid = ratio_grid(len(panels), 2, width=5.0)
        centred = spec.op != "ratio"  # a residual's mean sits at 0: show generated - real, not a ratio
        for row, (group, table) in enumerate(panels.items()):
            for col, quantity in enumerate(("mean", "resolution")):
                top, bottom = ratio_pair(fig, grid, row, col)
                x, xerr = 0.5 * (table["low"] + table["high"]), 0.5 * (table["high"] - table["low"])
                for side, colour, face in (("real", REAL, REAL), ("generated", GENERATED, "none")):
                    top.errorbar(x, table[f"{quantity}_{side}"], table[f"{quantity}_error_{side}"], xerr,
                                 fmt="o", color=colour, mfc=face, ms=4, label=side)
                top.set_ylabel(f"{quantity} of {definition}" if len(definition) < 18 else quantity, fontsize=8)
                top.set_title(f"{group}: {quantity} vs {versus}", fontsize=9)
                _note_left_out(top, table, self.min_entries)
                if quantity == "mean" and centred:
                    bottom.errorbar(x, table["mean_difference"], table["mean_difference_error"], xerr, fmt="o",
                                    color="k", ms=3)
                    bottom.axhline(0.0, color="grey", lw=0.8, ls="--")
                    bottom.set_ylabel("gen - real", fontsize=7)
                else:
                    _ratio(bottom, x, table[f"{quantity}_ratio"], table[f"{quantity}_ratio_error"], xerr)
                bottom.set_xlabel(versus)
                top.set_xlim(table["low"].min(), table["high"].max())
                _log_x_if_wide(table["low"].to_numpy(), table["high"].to_numpy(), top, bottom)
                if row == 0 and col == 0:
                    top.legend(fontsize=7)
        fig.suptitle(f"{self.model}: {definition} vs {versus} (resolution: half 16-84 % range)", fontsize=10)
        self.save(fig, f"{spec.name}_vs_{versus}")

    def btag_distributions(self, score: str, per_flavour: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Normalised score distributions per flavour (log y: the b peak and the light tail both show)."""
        values = np.concatenate([r for r, _ in per_flavour.values()])
        edges = _range_edges(values)
        fig, grid = ratio_grid(1, len(per_flavour), width=4.0)
        for col, (flavour, (real, generated)) in enumerate(per_flavour.items()):
            top, bottom = ratio_pair(fig, grid, 0, col)
            histograms_with_ratio(top, bottom, real, generated, edges)
            _log_y(top)
            top.set_title(f"{flavour} jets: {len(real)} real, {len(generated)} generated", fontsize=9)
            bottom.set_xlabel(score)
        fig.suptitle(f"{self.model}: {score} per hadron flavour", fontsize=10)
        self.save(fig, f"btag_{score}")

    def btag_efficiencies(self, tables: Mapping[str, pd.DataFrame]) -> None:
        """Efficiency per flavour at the working points (light mistag 10 %, 1 %, 0.1 % in real jets)."""
        fig, grid = ratio_grid(1, len(tables), width=4.5)
        markers = {"light": "s", "c": "^", "b": "o"}
        for col, (score, table) in enumerate(tables.items()):
            top, bottom = ratio_pair(fig, grid, 0, col)
            points = table["light_mistag"].unique()
            position = {m: i for i, m in enumerate(points)}
            for flavour, rows in table.groupby("flavour", sort=False):
                x = rows["light_mistag"].map(position).to_numpy() + {"light": -0.1, "c": 0.0, "b": 0.1}[flavour]
                for side, colour, face in (("real", REAL, REAL), ("generated", GENERATED, "none")):
                    top.errorbar(x, rows[f"efficiency_{side}"], rows[f"error_{side}"], fmt=markers[flavour],
                                 color=colour, mfc=face, ms=5, label=f"{flavour} {side}")
                _ratio(bottom, x, rows["ratio"], rows["ratio_error"], None, marker=markers[flavour])
            _log_y(top)
            top.set_ylabel("efficiency")
            top.set_title(score, fontsize=9)
            missing = table.loc[table["cut"].isna(), "light_mistag"].unique()
            if len(missing):
                top.text(0.02, 0.02, f"no cut for mistag {', '.join(f'{m:g}' for m in missing)}: "
                         f"< {self.min_entries} real light jets pass", transform=top.transAxes, fontsize=6)
            bottom.set_xticks(range(len(points)), [f"{m:g}" for m in points])
            bottom.set_xlabel("working point (real light-jet mistag)")
            if col == 0:
                top.legend(fontsize=6, ncol=3)
        fig.suptitle(f"{self.model}: b-tagging efficiency per flavour at fixed cuts", fontsize=10)
        self.save(fig, "btag_efficiency")

    def btag_rocs(self, rocs: Mapping[tuple[str, str], Mapping[str, pd.DataFrame]]) -> None:
        """Mistag (light) rate versus b or c efficiency, one column per score; ratio gen/real of the mistag."""
        scores = list(dict.fromkeys(score for score, _ in rocs))
        signals = list(dict.fromkeys(signal for _, signal in rocs))
        fig, grid = ratio_grid(len(signals), len(scores), width=4.5)
        for (score, signal), curves in rocs.items():
            top, bottom = ratio_pair(fig, grid, signals.index(signal), scores.index(score))
            real, generated = curves["real"], curves["generated"]
            for side, curve, colour in (("real", real, REAL), ("generated", generated, GENERATED)):
                shown = curve[curve["mistag"] > 0]
                top.errorbar(shown["efficiency"], shown["mistag"], shown["mistag_error"], fmt="o-", color=colour,
                             ms=3, label=side)
            if len(real) and len(generated):
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = generated["mistag"].to_numpy() / real["mistag"].to_numpy()
                    error = ratio * np.hypot(generated["mistag_error"] / generated["mistag"],
                                             real["mistag_error"] / real["mistag"]).to_numpy()
                _ratio(bottom, real["efficiency"], np.where(real["mistag"] > 0, ratio, np.nan), error, None)
            else:
                top.text(0.5, 0.5, f"< {self.min_entries} {signal} or light jets", transform=top.transAxes,
                         ha="center", fontsize=8)
            _log_y(top)
            top.set_ylabel("light-jet mistag rate")
            top.set_title(f"{score}: {signal} vs light", fontsize=9)
            bottom.set_xlabel(f"{signal}-jet efficiency")
            top.legend(fontsize=7)
        fig.suptitle(f"{self.model}: b-tagging ROC curves", fontsize=10)
        self.save(fig, "btag_roc")

    def category(self, entry: Mapping, real: pd.DataFrame, generated: pd.DataFrame, real_weights: np.ndarray,
                 targets: list[str]) -> None:
        """The target distributions of one category (real weighted, generated unweighted draws)."""
        name = f"category_{entry['category']}"
        title = (f"{self.model}: category {entry['category']}: {entry['n_real']} real "
                 f"(weighted share {entry['share_real']:.3f}), {entry['n_generated']} generated "
                 f"(share {entry['share_generated']:.3f})")
        if entry["left_out"]:
            self.message(name, f"{title}\nleft out: fewer than {self.min_entries} rows on one side")
            return
        n_cols = min(3, len(targets))
        fig, grid = ratio_grid(-(-len(targets) // n_cols), n_cols, width=4.0)
        for index, target in enumerate(targets):
            top, bottom = ratio_pair(fig, grid, *divmod(index, n_cols))
            edges = _range_edges(real[target].to_numpy(np.float64))
            histograms_with_ratio(top, bottom, real[target].to_numpy(np.float64),
                                  generated[target].to_numpy(np.float64), edges, real_weights)
            bottom.set_xlabel(target)
            if index == 0:
                top.legend(fontsize=7)
        fig.suptitle(title, fontsize=10)
        self.save(fig, name)

    def covariance(self, real: pd.DataFrame, generated: pd.DataFrame, spd: Mapping[str, float | None]) -> None:
        """log10 of the uncertainties sqrt(cov_ii) and the correlation coefficients, with the SPD fractions."""
        spd_text = "SPD fraction: " + ", ".join(f"{side} {value:.3f}" if value is not None else f"{side} n/a"
                                                 for side, value in spd.items())
        for kind, prefix in (("sigmas", "sigma_"), ("correlations", "rho_")):
            columns = [c for c in real.columns if c.startswith(prefix)]
            if not columns:
                continue
            n_cols = min(5, len(columns))
            fig, grid = ratio_grid(-(-len(columns) // n_cols), n_cols, width=3.5)
            for index, column in enumerate(columns):
                top, bottom = ratio_pair(fig, grid, *divmod(index, n_cols))
                transform = np.log10 if kind == "sigmas" else (lambda v: v)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r, g = transform(real[column].to_numpy()), transform(generated[column].to_numpy())
                edges = np.linspace(-1.0, 1.0, 41) if kind == "correlations" else _range_edges(r)
                histograms_with_ratio(top, bottom, r, g, edges)
                bad = int(np.sum(~np.isfinite(g)))
                top.set_title(f"{column}" + (f" ({bad} gen. undefined)" if bad else ""), fontsize=8)
                bottom.set_xlabel(f"log10 {column}" if kind == "sigmas" else column, fontsize=8)
                if index == 0:
                    top.legend(fontsize=7)
            fig.suptitle(f"{self.model}: covariance {kind}; {spd_text}", fontsize=10)
            self.save(fig, f"covariance_{kind}")


def _ratio(axis, x, ratio, error, xerr, marker: str = "o") -> None:
    axis.errorbar(x, ratio, error, xerr, fmt=marker, color="k", ms=3)
    axis.axhline(1.0, color="grey", lw=0.8, ls="--")
    axis.set_ylim(*RATIO_RANGE)
    axis.set_ylabel("gen/real", fontsize=7)


def _range_edges(values: np.ndarray, bins: int = 40) -> np.ndarray:
    """Edges over the real sample's 0.1-99.9 % range: bounded scores keep their end peaks (b-tag at 1)."""
    return quantile_edges(values, bins, tail=0.001)


def _note_left_out(axis, table: pd.DataFrame, min_entries: int) -> None:
    kept = np.isfinite(table["mean_real"]) & np.isfinite(table["mean_generated"])
    if kept.all():
        return
    text = (f"{int((~kept).sum())} of {len(table)} bins left out (< {min_entries} entries)" if kept.any()
            else f"no bin with >= {min_entries} real and generated entries")
    axis.text(0.02, 0.95, text, transform=axis.transAxes, fontsize=7, va="top", color="darkred")


def _log_y(axis) -> None:
    """Log y only when something positive is drawn: a log axis with no data is a matplotlib error."""
    lows = [line.get_ydata() for line in axis.get_lines()] + [p.get_data()[0] for p in axis.patches
                                                                if hasattr(p, "get_data")]
    values = np.concatenate([np.asarray(v, dtype=float).ravel() for v in lows]) if lows else np.array([])
    if np.any(np.isfinite(values) & (values > 0)):
        axis.set_yscale("log")


def _log_x_if_wide(low: np.ndarray, high: np.ndarray, top, bottom) -> None:
    """A wide x range (gen pt) on a log axis, labelled 1, 2, 5 per decade in plain numbers (20, 50, 100).

    Why not matplotlib's default: on a span of one or two decades it labels the minor ticks too, in
    scientific notation ("2x10^1 3x10^1 4x10^1 ..."), which overlapped on these panels; and changing
    the scale gives the top panel its tick labels back, over the ratio panel that shares its x axis.
    """
    if not (len(low) and low.min() > 0 and high.max() / low.min() > LOG_X_SPAN):
        return
    bottom.set_xscale("log")  # the shared x axis: the top panel's too, locators and formatters included
    bottom.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    bottom.xaxis.set_minor_formatter(NullFormatter())
    top.tick_params(labelbottom=False)
