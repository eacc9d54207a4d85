"""Extra float32 rounding draws of a model for export verification: every weight moved one ulp.

Why (``pipeline_steps/export/verify.py``): the verification scales what it allows by the framework's own
float32 error, measured once per element against a float64 run. On a badly conditioned row (a cancelling
dot product, an inverse spline at its minimum slope) that single measurement is one random draw of a
rounding error and can come out lucky: a covariance GAN exported under ``ONEDNN_MAX_CPU_ISA=SSE41`` erred
2.4e-6 of a column's spread on a row where ONNX Runtime and TensorFlow with FMA kernels both erred 5.5e-5.

Moving every float32 weight one ulp up or down at random is a rounding of the weights, the same size as
the roundings float32 arithmetic makes (Monte Carlo arithmetic on the model's inputs of largest count),
and the output moves by the row's amplification of such roundings. On that GAN four draws erred 8.2e-5,
6.6e-5, 6.6e-5 and 1.3e-5 on the row, while their median and 99.9% errors over the batch (1.2e-7,
1.9-2.9e-6) stayed those of the plain float32 run (1.1e-7, 2.3e-6): a draw estimates the error's scale
without inflating it. ``DRAWS`` of them, with the plain run, make a lucky low on the worst row unlikely:
the chance that all three fall 16x below another implementation's is ~(2 / 16 pi)^3, against ~4% for one.
"""

from __future__ import annotations

import numpy as np

DRAWS = 2


def one_ulp_away(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each floating value moved to its neighbour above or below (half and half, at random); same dtype.

    Non-float arrays (integer state, counters) are returned unchanged: they are not rounded quantities.
    """
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return values
    direction = np.where(rng.random(values.shape) < 0.5, -np.inf, np.inf).astype(values.dtype)
    return np.nextafter(values, direction)


def draw_rng(seed: int, draw: int) -> np.random.Generator:
    """The generator of draw ``draw`` (the export's seed, so the batch is the same on every rerun)."""
    return np.random.default_rng([int(seed), 7919, int(draw)])
