"""save_figure(crop=True): the one drawing, cut to its content with matplotlib's tight margin."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline_steps.common.figures import CROP_PAD_INCHES, save_figure  # noqa: E402
from pipeline_steps.validate import plots as validate_plots  # noqa: E402

DPI = 90
WHITE = np.array([255, 255, 255, 255], dtype=np.uint8)


def _figure(note_x: float | None = None):
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.plot([0, 1, 2], [2, 0, 1], color="tab:orange")
    axis.set_xlabel("pt [GeV]")
    axis.set_title("generated vs real")
    figure.subplots_adjust(bottom=0.3, top=0.8, left=0.2, right=0.9)  # room on every side of the content
    if note_x is not None:  # a note starting at note_x (figure fraction), running off the right edge if near 1
        figure.text(note_x, 0.5, "a note that runs on", ha="left")
    return figure


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def _ink_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    ink = np.any(pixels != WHITE, axis=2)
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1] + 1, columns[0], columns[-1] + 1


def _differing_fraction(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean(np.any(first != second, axis=2)))


# How the one drawing may differ from a plain savefig: Agg puts each text's origin on a whole pixel, and on
# the grown canvas (another height; y runs downwards) the rounding can go the other way, moving a label by
# one pixel. Only glyph edges change then: ~0.1 % of the pixels of these figures; 1 % would be a label in
# the wrong place or a wrong crop.
MOVED_GLYPH_EDGES = 0.01


def test_the_crop_is_the_drawing_cut_to_its_ink_with_the_tight_margin(tmp_path):
    save_figure(_figure(), tmp_path / "plain.png", dpi=DPI)
    save_figure(_figure(), tmp_path / "cropped.png", dpi=DPI, crop=True)
    plain, cropped = _pixels(tmp_path / "plain.png"), _pixels(tmp_path / "cropped.png")
    pad = round(CROP_PAD_INCHES * DPI)
    assert _ink_box(cropped) == (pad, cropped.shape[0] - pad, pad, cropped.shape[1] - pad)
    top, bottom, left, right = _ink_box(plain)
    assert top > pad and left > pad and bottom < plain.shape[0] - pad and right < plain.shape[1] - pad
    same_box = plain[top - pad : bottom + pad, left - pad : right + pad]
    assert abs(cropped.shape[0] - same_box.shape[0]) <= 1 and abs(cropped.shape[1] - same_box.shape[1]) <= 1
    rows, columns = min(len(cropped), len(same_box)), min(cropped.shape[1], same_box.shape[1])
    assert _differing_fraction(cropped[:rows, :columns], same_box[:rows, :columns]) < MOVED_GLYPH_EDGES


def test_content_running_off_the_canvas_is_kept_in_the_one_drawing(tmp_path):
    """A note ~0.4 inch past the right edge: shown, as the tight way shows it, in the same box to a few pixels."""
    save_figure(_figure(note_x=0.8), tmp_path / "plain.png", dpi=DPI)
    save_figure(_figure(note_x=0.8), tmp_path / "cropped.png", dpi=DPI, crop=True)
    save_figure(_figure(note_x=0.8), tmp_path / "tight.png", dpi=DPI, bbox_inches="tight")
    plain, cropped, tight = (_pixels(tmp_path / f"{name}.png") for name in ("plain", "cropped", "tight"))
    _, _, left, _ = _ink_box(plain)
    assert cropped.shape[1] > plain.shape[1] - left + 0.2 * DPI  # wider than all that lies on the canvas
    assert all(abs(a - b) <= 3 for a, b in zip(cropped.shape[:2], tight.shape[:2])), (cropped.shape, tight.shape)


def test_content_beyond_the_room_around_the_canvas_is_saved_the_tight_way(tmp_path):
    save_figure(_figure(note_x=1.2), tmp_path / "cropped.png", dpi=DPI, crop=True)  # starts 0.8 in off the canvas
    save_figure(_figure(note_x=1.2), tmp_path / "tight.png", dpi=DPI, bbox_inches="tight")
    assert np.array_equal(_pixels(tmp_path / "cropped.png"), _pixels(tmp_path / "tight.png"))


def test_validation_figures_keep_the_tight_size_to_a_few_pixels(tmp_path, monkeypatch):
    """The ink box lies inside the tight box (text's blank space around the glyphs); never far from it."""
    assert validate_plots.SAVE_OPTIONS.get("crop") is True  # what the validation uses
    rng = np.random.default_rng(5)
    columns = ["pt", "eta", "phi", "mass", "btag"]
    real = pd.DataFrame(rng.normal(size=(3000, 5)), columns=columns)
    generated = pd.DataFrame(rng.normal(size=(3000, 5)), columns=columns)
    sizes = {}
    for label, options in (("tight", {"dpi": DPI, "bbox_inches": "tight"}), ("cropped", {"dpi": DPI, "crop": True})):
        monkeypatch.setattr(validate_plots, "SAVE_OPTIONS", options)
        validate_plots.plot_distributions(real, generated, columns, tmp_path / f"{label}_d.png")
        validate_plots.plot_pairs(real, generated, columns, tmp_path / f"{label}_p.png")
        sizes[label] = [Image.open(tmp_path / f"{label}_{kind}.png").size for kind in "dp"]
    for tight, cropped in zip(sizes["tight"], sizes["cropped"]):
        assert all(abs(a - b) <= 3 for a, b in zip(tight, cropped)), (tight, cropped)
