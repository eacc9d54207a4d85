"""Saving a matplotlib figure as an output: atomically, and closing it so a long step does not pile up figures;
and the matplotlib settings the many-panel figures (validation, preprocessing) are drawn with."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from pipeline_steps.common.atomic import atomic_path

#: rcParams of the validation and preprocessing figures (applied by :func:`figure_style` while the axes are
#: created); the loss and CalRatio plots, a few axes each, have too few titles for it to matter.
#:
#: ``axes.titley``: by default (None) matplotlib lifts each axes title above whatever sits on the axes'
#: top edge (top tick labels, a top x label), and finds it with a tight bounding box of the axes at every
#: draw. No figure of ours puts anything there, so the fixed height 1.0 (the default's own starting point)
#: gives the same pixels (all 21 PNGs of the jets validation compared identical) without the boxes: the jets
#: validation (265 axes, each figure then drawn twice for ``bbox_inches="tight"``) went from 42.6 to 35.5 s,
#: its bounding boxes from 12.0 to 3.0 s (cProfile, 1 core).
FIGURE_STYLE = {"axes.titley": 1.0}


def figure_style() -> AbstractContextManager:
    """Context in which figures are made with :data:`FIGURE_STYLE` (axes read it when they are created)."""
    import matplotlib

    return matplotlib.rc_context(FIGURE_STYLE)


#: Margin kept around the drawn content of a cropped figure: matplotlib's ``savefig.pad_inches`` default,
#: the margin ``bbox_inches="tight"`` leaves.
CROP_PAD_INCHES = 0.1
#: How far content may run off the figure's canvas and still be kept by a cropped save: the x labels of a
#: figure laid out without a layout engine hang ~0.1-0.3 inch below it. Content reaching further is saved
#: the tight way (drawn twice).
OVERFLOW_INCHES = 1.0


def save_figure(figure, path: str | os.PathLike, *, crop: bool = False, **savefig_kwargs) -> None:
    """Write ``figure`` to ``path`` through a temporary name beside it, then close the figure.

    ``savefig_kwargs`` go to ``Figure.savefig`` unchanged (``dpi``, ``bbox_inches``, ``format``);
    the layout (``tight_layout``) is the caller's choice, made before. The format follows the
    suffix of ``path``: the temporary name keeps it. The figure is closed even when saving fails.
    ``crop=True`` writes a PNG cut down to what is drawn, as ``bbox_inches="tight"`` would, drawing the
    figure once instead of twice (:func:`_save_cropped_png`).
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            if crop:
                _save_cropped_png(figure, tmp, **savefig_kwargs)
            else:
                figure.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(figure)


def _save_cropped_png(figure, path: str | os.PathLike, dpi: float) -> None:
    """Draw ``figure`` once, on a canvas with room around it, and save the part that is not background.

    Why: ``savefig(bbox_inches="tight")`` draws a figure twice, once without output to measure every
    artist's extent, then for real; in the jets validation (21 figures, 265 axes) the measuring draw and
    the extents took ~45 % of the job (cProfile). An explicit box needs no measuring: the figure is drawn
    once on its canvas grown by :data:`OVERFLOW_INCHES` on every side (matplotlib draws what lies there
    too, as the tight way does for labels that run off the canvas), and the pixels are cropped to the
    ones that differ from the figure's background, plus the tight way's margin. It is the drawing of a
    plain ``savefig`` but for text, which Agg places on whole pixels: on a canvas of another height a
    label can land one pixel off. The tight way's box is the artists' extents, a pixel or two outside
    the ink where text has blank space around its glyphs. Content that reaches the grown canvas's edge
    may go on beyond it: such a figure is saved the tight way.
    """
    import io

    import matplotlib.image
    import numpy as np
    from matplotlib.colors import to_rgba
    from matplotlib.transforms import Bbox
    from PIL import Image

    width, height = figure.get_size_inches()
    room = OVERFLOW_INCHES
    grown = Bbox.from_extents(-room, -room, width + room, height + room)
    drawn = io.BytesIO()  # uncompressed: only read back below
    figure.savefig(drawn, format="png", dpi=dpi, bbox_inches=grown, pil_kwargs={"compress_level": 0})
    pixels = np.asarray(Image.open(drawn).convert("RGBA"))
    background = np.round(np.array(to_rgba(figure.get_facecolor())) * 255).astype(np.uint8)
    ink = np.any(pixels != background, axis=2)
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    height_px, width_px = ink.shape
    if not len(rows) or rows[0] == 0 or columns[0] == 0 or rows[-1] == height_px - 1 or columns[-1] == width_px - 1:
        figure.savefig(path, dpi=dpi, bbox_inches="tight", format="png")
        return
    pad = round(CROP_PAD_INCHES * dpi)
    top, bottom = max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, height_px)
    left, right = max(columns[0] - pad, 0), min(columns[-1] + 1 + pad, width_px)
    # contiguous: matplotlib < 3.9 hands the array's buffer to Pillow, whose frombuffer rejects a strided slice
    matplotlib.image.imsave(path, np.ascontiguousarray(pixels[top:bottom, left:right]), format="png", dpi=dpi)
