"""The loss curves every trainer draws (``results/train/<model>/loss.png``), one figure style for all kinds."""

from __future__ import annotations

from typing import Any, Sequence

from pipeline_steps.common.figures import save_figure

__all__ = ["write_loss_plot"]


def write_loss_plot(path: str, epochs: Sequence[float], curves: Sequence[tuple[str, Sequence[float], dict[str, Any]]],
                    *, ylabel: str, title: str | None = None,
                    reference_lines: Sequence[tuple[float, str, dict[str, Any]]] = ()) -> None:
    """Curves (label, value per epoch, matplotlib style) against the epoch, plus horizontal reference
    lines (value, label, style), saved atomically as a 6 x 4 inch PNG at 100 dpi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, values, style in curves:
        axis.plot(epochs, values, label=label, **style)
    for value, label, style in reference_lines:
        axis.axhline(value, label=label, **style)
    axis.set(xlabel="epoch", ylabel=ylabel, **({"title": title} if title else {}))
    axis.legend(fontsize="small")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
