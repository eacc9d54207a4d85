"""Saving a matplotlib figure as an output: atomically, and closing it so a long step does not pile up figures."""

from __future__ import annotations

import os

from pipeline_steps.common.atomic import atomic_path


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
