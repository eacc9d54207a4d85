"""The physical check of a bundle on columns stored with a reduced mantissa (pipeline_steps/export/verify.py).

A jets export with 10 training epochs failed its verification: ONNX's float32 output, through the
stored-precision rounding of NanoAOD's b-tag and quark-gluon columns, landed one grid point away from the
float64 reference on one row where the framework's own float32 output did not, a difference 1e4 times
the float32 error that caused it. These tests pin the rule that replaced the comparison of such flips.
"""

import numpy as np
import pytest

from pipeline_steps.export.verify import BundleVerificationError, check_physical, stored_precision_step
from pipeline_steps.preprocess.transforms import round_mantissa

BITS = 10
TOLERANCE = 1e-4


def _grid_values(rows: int, seed: int = 0) -> np.ndarray:
    """Values in (0, 1] spanning several binades, rounded to BITS mantissa bits as the bundle stores them."""
    rng = np.random.default_rng(seed)
    return round_mantissa(rng.uniform(0.01, 1.0, rows), BITS)


def _next_grid_value(values: np.ndarray, direction: int) -> np.ndarray:
    """The neighbouring BITS-bit float32 of each (positive) grid value, by its bit pattern."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.int64) + direction * (1 << (23 - BITS))
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def test_one_step_reaches_both_neighbours_and_no_further():
    values = _grid_values(10_000)
    step = stored_precision_step(values, BITS)
    up, down = _next_grid_value(values, +1), _next_grid_value(values, -1)
    assert np.allclose(up - values, step, rtol=0, atol=0)  # within a binade: exactly one step
    assert np.all(values - down <= step) and np.all(values - down >= step / 2)  # across a power of two: half
    assert np.any(values - down == step / 2)  # the sample does cross binades
    assert stored_precision_step(np.array([0.0, np.nan]), BITS).tolist() == [0.0, 0.0]


def _batch(rows: int = 512):
    """reference: a rounded column and a plain one; own: the framework's float32 rounding noise on them."""
    reference = {"btag": _grid_values(rows), "pt": np.random.default_rng(1).exponential(50.0, rows)}
    own = {"btag": reference["btag"].copy(), "pt": reference["pt"] * (1 + 2.0 ** -24)}
    return reference, own


def test_a_rounding_flip_of_onnx_alone_passes_with_the_stored_precision_and_failed_without():
    reference, own = _batch()
    found = {name: values.copy() for name, values in own.items()}
    found["btag"][17] = _next_grid_value(reference["btag"][17:18], +1)[0]  # one row crosses a rounding boundary
    report = check_physical(found, own, reference, TOLERANCE, mantissa_bits={"btag": BITS})
    assert report["continuous"]["found"]["max"] < report["continuous"]["allowed"]["max"]
    with pytest.raises(BundleVerificationError, match="beyond the float32 bound"):
        check_physical(found, own, reference, TOLERANCE)  # the rule before: the flip counted as an error


@pytest.mark.parametrize("steps", [2, 3])
def test_a_shift_of_more_than_one_stored_step_still_fails(steps):
    reference, own = _batch()
    found = {"btag": reference["btag"] + steps * stored_precision_step(reference["btag"], BITS), "pt": own["pt"]}
    with pytest.raises(BundleVerificationError, match="beyond the float32 bound"):
        check_physical(found, own, reference, TOLERANCE, mantissa_bits={"btag": BITS})


def test_an_unrounded_column_keeps_the_plain_rule():
    reference, own = _batch()
    found = {"btag": own["btag"], "pt": reference["pt"] * (1 + 1e-3)}  # 1e-3 relative: far beyond float32
    with pytest.raises(BundleVerificationError, match="beyond the float32 bound"):
        check_physical(found, own, reference, TOLERANCE, mantissa_bits={"btag": BITS})
