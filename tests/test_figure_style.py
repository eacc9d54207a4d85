"""The project's figure style (common/figures.FIGURE_STYLE) saves work without changing a pixel."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline_steps.common.figures import figure_style
from pipeline_steps.preprocess import plots as preprocess_plots
from pipeline_steps.validate import plots as validate_plots


def _frames(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    columns = ["pt", "eta", "phi", "mass"]
    real = pd.DataFrame(rng.normal(size=(2000, 4)) * [20, 1, 1, 3] + [50, 0, 0, 10], columns=columns)
    generated = pd.DataFrame(rng.normal(size=(2000, 4)) * [21, 1, 1, 3] + [50, 0, 0, 10], columns=columns)
    return real, generated


def _draw_every_titled_kind(folder) -> None:
    real, generated = _frames()
    validate_plots.plot_distributions(real, generated, list(real.columns), folder / "distributions.png")
    validate_plots.plot_pairs(real, generated, list(real.columns), folder / "pairs.png")
    scores = np.linspace(0.0, 1.0, 500)
    validate_plots.plot_bdt_output(scores, scores[::-1], None, None, 20, folder / "bdt.png", "AUC 0.5")
    preprocess_plots.plot_distributions(real, generated, folder / "preprocess.png", title="toy")
    preprocess_plots.plot_correlations(real, generated, folder / "correlations.png", title="toy")


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every titled kind of figure, drawn once with matplotlib's defaults and once with the style."""
    folders = {}
    for label, context in (("default", contextlib.nullcontext), ("styled", figure_style)):
        folders[label] = tmp_path_factory.mktemp(label)
        with context():
            _draw_every_titled_kind(folders[label])
    return folders


@pytest.mark.parametrize("name", ["distributions", "pairs", "bdt", "preprocess", "correlations"])
def test_the_style_draws_the_same_pixels_as_matplotlibs_defaults(drawn, name):
    """Fails when a figure puts something on an axes' top edge: its title must then move, as by default."""
    first = np.asarray(Image.open(drawn["default"] / f"{name}.png").convert("RGB"))
    second = np.asarray(Image.open(drawn["styled"] / f"{name}.png").convert("RGB"))
    assert first.shape == second.shape
    assert np.array_equal(first, second)


def test_under_the_style_titles_no_longer_move_for_the_top_edge():
    """The mechanism the saving rests on: by default a title is lifted over top tick labels, styled it is not."""
    import matplotlib.pyplot as plt

    heights = {}
    for label, context in (("default", contextlib.nullcontext), ("styled", figure_style)):
        with context():
            figure, axis = plt.subplots()
            axis.xaxis.tick_top()
            axis.set_title("title")
            figure.canvas.draw()
            heights[label] = axis.title.get_window_extent().y0 - axis.get_window_extent().y1
            plt.close(figure)
    assert heights["default"] > heights["styled"] + 5  # pixels: lifted above the tick labels by default


def test_ratio_panels_sit_under_their_histogram_and_clear_the_next_rows_titles(monkeypatch):
    """The distributions figure once spaced all its rows alike: each ratio panel's tick labels touched the
    next variable's title, and the panel sat as far from its own histogram as from the next row's.

    Measured on the drawn figure (display pixels): the tick labels of a ratio panel end below the title of
    the histogram under it, and a histogram lies closer to its ratio panel than that panel to the next row.
    """
    import matplotlib.pyplot as plt

    drawn = {}
    monkeypatch.setattr(validate_plots, "save_figure", lambda figure, path, **_: drawn.setdefault("figure", figure))
    real, generated = _frames()
    columns = list(real.columns) + ["pt_copy"]  # 5 variables: two rows of four columns
    real["pt_copy"], generated["pt_copy"] = real["pt"], generated["pt"]
    validate_plots.plot_distributions(real, generated, columns, "unused.png")
    figure = drawn["figure"]
    try:
        renderer = figure.canvas.get_renderer()
        figure.canvas.draw()
        first_top, first_ratio, second_top = figure.axes[0], figure.axes[1], figure.axes[8]
        assert [first_top.get_title(), second_top.get_title()] == ["pt", "pt_copy"]
        ratio_labels = first_ratio.xaxis.get_tightbbox(renderer)
        next_title = second_top.title.get_window_extent(renderer)
        assert ratio_labels.y0 > next_title.y1  # y grows upwards: the labels end above the next title's top
        gap_to_own_ratio = first_top.get_window_extent(renderer).y0 - first_ratio.get_window_extent(renderer).y1
        gap_to_next_row = ratio_labels.y0 - second_top.get_window_extent(renderer).y1
        assert 0 < gap_to_own_ratio < gap_to_next_row
    finally:
        plt.close(figure)
