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
#: validation (265 axes, each figure drawn twice for ``bbox_inches="tight"``) went from 42.6 to 35.5 s,
#: its bounding boxes from 12.0 to 3.0 s (cProfile, 1 core).
FIGURE_STYLE = {"axes.titley": 1.0}


def figure_style() -> AbstractContextManager:
    """Context in which figures are made with :data:`FIGURE_STYLE` (axes read it when they are created)."""
    import matplotlib

    return matplotlib.rc_context(FIGURE_STYLE)


def save_figure(figure, path: str | os.PathLike, **savefig_kwargs) -> None:
    """Write ``figure`` to ``path`` through a temporary name beside it, then close the figure.

    ``savefig_kwargs`` go to ``Figure.savefig`` unchanged (``dpi``, ``bbox_inches``, ``format``);
    the layout (``tight_layout``) is the caller's choice, made before. The format follows the
    suffix of ``path``: the temporary name keeps it. The figure is closed even when saving fails.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(figure)
