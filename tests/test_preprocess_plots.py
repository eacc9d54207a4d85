"""The preprocessing's distribution figure: fixed spacing instead of tight_layout, and no panel's text on another."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline_steps.common.figures import CROP_PAD_INCHES
from pipeline_steps.preprocess import plots


def _extreme_columns(rows: int = 3000) -> pd.DataFrame:
    """The widest tick labels and offset texts real columns give: LHCb covariances (1e-8 to 1e-4), momenta
    in MeV up to 4e5, small negative values, counts, a constant, and long names."""
    rng = np.random.default_rng(5)
    return pd.DataFrame({
        "cov_44": rng.exponential(2e-8, rows),
        "cov_33": np.r_[rng.exponential(2e-5, rows - 1), 2e-4],  # the toy's range
        "dxy": np.r_[rng.exponential(2e-3, rows - 1), 0.02],
        "cov_24": rng.normal(0, 1e-7, rows),
        "p": rng.exponential(4e4, rows),
        "tx": rng.normal(-0.0025, 0.001, rows),
        "nConstituents": rng.integers(0, 60, rows).astype(float),
        "constant": np.full(rows, -1.0),
        "a_rather_long_variable_name_from_a_real_ntuple": rng.normal(1e5, 3e4, rows),
        "an_even_longer_name_" * 5: rng.normal(size=rows),  # 100 characters: set smaller, then shortened
        "W" * 40: rng.normal(size=rows),  # the widest glyphs
        "Jet_btagDeepFlavB": rng.uniform(-1.0, 1.0, rows),
    })


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """plot_distributions on the extreme columns; the text boxes of its figure, taken just before it is saved."""
    saved = {}
    real_save = plots.save_figure

    def measure_then_save(figure, path, **kwargs):
        renderer = figure.canvas.get_renderer()
        saved["panels"] = [axis.get_tightbbox(renderer) for axis in figure.axes if axis.get_visible()]
        saved["suptitle"] = figure._suptitle.get_window_extent(renderer)
        saved["titles"] = [axis.title.get_window_extent(renderer) for axis in figure.axes[:plots.PANELS_PER_ROW]]
        saved["x_labels"] = {axis.get_title(): [label.get_window_extent(renderer) for label in axis.get_xticklabels()
                                                if label.get_visible() and label.get_text()]
                             for axis in figure.axes if axis.get_visible()}
        real_save(figure, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure", measure_then_save)
    before = _extreme_columns()
    after = (before - before.mean()) / before.std().replace(0, 1)
    after.columns = [f"targ__{name}" for name in before.columns]
    plots.plot_distributions(before, after, tmp_path / "distributions.png", title="toy")
    return saved, tmp_path / "distributions.png"


def test_no_panels_text_reaches_another_panel(drawn):
    """Fails when the fixed gaps are too small for the tick labels, offset texts and titles they must hold
    (as with gaps of 0.2 inch): tight_layout guaranteed this before."""
    saved, _ = drawn
    overlapping = [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(saved["panels"]), 2) if a.overlaps(b)]
    assert overlapping == []


def test_a_panels_x_tick_labels_do_not_run_into_each_other(drawn):
    """Fails with matplotlib's default formatting, which writes a covariance's ticks as "0.000025", "0.000050"
    ... side by side, instead of 0.25, 0.50 ... with "1e-4" beside the axis."""
    saved, _ = drawn
    crowded = [title for title, boxes in saved["x_labels"].items()
               if any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))]
    assert crowded == []


def test_the_suptitle_stays_above_the_first_rows_titles(drawn):
    saved, _ = drawn
    assert all(saved["suptitle"].y0 > title.y1 for title in saved["titles"])


def test_the_saved_figure_is_cropped_to_its_content(drawn):
    """The margins only hold the outer text: the PNG keeps the crop's pad of white around the ink."""
    _, path = drawn
    image = Image.open(path)
    pixels = np.asarray(image.convert("RGB"))
    ink = np.any(pixels != 255, axis=2)
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    pad = round(CROP_PAD_INCHES * image.info["dpi"][0])  # the dpi the figure was saved at, from the PNG
    assert (rows[0], columns[0]) == (pad, pad)
    assert (ink.shape[0] - 1 - rows[-1], ink.shape[1] - 1 - columns[-1]) == (pad, pad)
