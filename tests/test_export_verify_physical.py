"""The physical checks of a bundle on columns stored with a reduced mantissa (pipeline_steps/export/verify.py).

A jets export with 10 training epochs failed its verification: ONNX's float32 output, through the
stored-precision rounding of NanoAOD's b-tag columns, landed one grid point away from the float64
reference on a row where the framework's own float32 output did not, a move 1e4 times the float32 error
behind it. The float32 rule now runs on the physical values before that rounding, and the rounding is
checked where it belongs: the bundle's transforms, rounding included, must give the project's values.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline_steps.export import run_bundle
from pipeline_steps.export.verify import (BundleVerificationError, _check_physical_outputs, check_bundle_transforms,
                                          check_physical, stored_precision_step)
from pipeline_steps.preprocess.physical_support import round_mantissa

BITS = 10
TOLERANCE = 1e-4
ROWS = 512
# btag = 0.5 + 0.3 y: a rounded column; pt = exp(4 + y): a full-precision one
DOCUMENT = {
    "targets": {"variables": [
        {"name": "btag", "kind": "standard", "params": {"mean": 0.5, "std": 0.3}},
        {"name": "pt", "kind": "log_standard", "params": {"mean": 4.0, "std": 1.0}},
    ]},
    "support": {"ranges": {"btag": [-1.0, 2.0], "pt": [0.0, 1.0e4]}, "mantissa_bits": {"btag": BITS}},
}
BUNDLE = SimpleNamespace(transforms=DOCUMENT, categories=None)


def _grid_values(rows: int, seed: int = 0) -> np.ndarray:
    """Values in (0, 1] spanning several binades, rounded to BITS mantissa bits as the bundle stores them."""
    return round_mantissa(np.random.default_rng(seed).uniform(0.01, 1.0, rows), BITS)


def _next_grid_value(values: np.ndarray, direction: int) -> np.ndarray:
    """The neighbouring BITS-bit float32 of each (positive) grid value, by its bit pattern."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.int64) + direction * (1 << (23 - BITS))
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def test_one_step_reaches_both_neighbours_and_no_further():
    values = _grid_values(10_000)
    step = stored_precision_step(values, BITS)
    up, down = _next_grid_value(values, +1), _next_grid_value(values, -1)
    assert np.array_equal(up - values, step)  # within a binade: exactly one step
    assert np.all(values - down <= step) and np.all(values - down >= step / 2)  # across a power of two: half
    assert np.any(values - down == step / 2)  # the sample does cross binades
    assert stored_precision_step(np.array([0.0, np.nan]), BITS).tolist() == [0.0, 0.0]


def _batch_with_a_flip() -> tuple[dict, np.ndarray]:
    """A verification batch whose ONNX output differs from the float64 reference by float32 rounding only
    (~1e-7), with one row's btag on a rounding boundary that ONNX crosses and the framework does not."""
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((ROWS, 2))
    boundary = 0.5 * (_grid_values(1, 7)[0] + _next_grid_value(_grid_values(1, 7), +1)[0])  # a rounding tie
    reference[17, 0] = (boundary - 0.5) / 0.3 - 3.3e-7  # physical btag 1.5 float32 ulps below it
    own = reference * (1 + 6e-8 * rng.standard_normal(reference.shape))
    onnx = reference * (1 + 6e-8 * rng.standard_normal(reference.shape))
    own[17, 0], onnx[17, 0] = reference[17, 0], reference[17, 0] + 6.7e-7  # ONNX alone crosses the tie
    physical = lambda output: run_bundle.physical_outputs(BUNDLE, output, {})  # noqa: E731
    batch = {"conditions_physical": {}, "expected": {"output": own}, "reference": {"output": reference},
             "physical": physical(own), "reference_physical": physical(reference)}
    return batch, onnx


def test_a_rounding_flip_of_onnx_alone_passes_before_rounding_and_failed_after():
    batch, onnx = _batch_with_a_flip()
    rounded = run_bundle.physical_outputs(BUNDLE, onnx, {})
    assert rounded["btag"][17] != batch["reference_physical"]["btag"][17]  # the flip is there
    assert batch["physical"]["btag"][17] == batch["reference_physical"]["btag"][17]
    report = _check_physical_outputs(BUNDLE, batch, onnx, TOLERANCE)
    assert report["physical_onnx_vs_reference"]["continuous"]["margin"] > 1
    assert report["bundle_transforms_vs_project"] == {"float64": 0.0, "float32": 0.0}
    with pytest.raises(BundleVerificationError, match="beyond the float32 bound"):  # the rule on rounded values
        check_physical(rounded, batch["physical"], batch["reference_physical"], TOLERANCE)


def test_a_changed_onnx_output_still_fails_in_physical_units():
    batch, onnx = _batch_with_a_flip()
    with pytest.raises(BundleVerificationError, match="beyond the float32 bound.*: q50"):  # most rows move
        _check_physical_outputs(BUNDLE, batch, onnx * (1 + 1e-3), TOLERANCE)


def _project_values() -> dict:
    return {"btag": _grid_values(ROWS), "pt": np.random.default_rng(1).exponential(50.0, ROWS),
            "n": np.arange(ROWS) % 7}


def test_bundle_transforms_may_differ_from_the_project_by_one_stored_step_and_no_more():
    project = _project_values()
    flipped = {**project, "btag": project["btag"].copy()}
    flipped["btag"][5] = _next_grid_value(project["btag"][5:6], +1)[0]
    assert check_bundle_transforms("t", flipped, project, TOLERANCE, {"btag": BITS}, ["n"]) == 0.0
    shifted = {**project, "btag": project["btag"] + 2 * stored_precision_step(project["btag"], BITS)}
    with pytest.raises(BundleVerificationError, match="'btag' differs from this project's transforms"):
        check_bundle_transforms("t", shifted, project, TOLERANCE, {"btag": BITS}, ["n"])


@pytest.mark.parametrize("column, change", [("pt", lambda v: v * (1 + 1e-3)), ("n", lambda v: (v + 1) % 7)])
def test_bundle_transforms_off_on_a_full_precision_or_discrete_column_fail(column, change):
    project = _project_values()
    found = {**project, column: change(project[column])}
    with pytest.raises(BundleVerificationError, match=repr(column)):
        check_bundle_transforms("t", found, project, TOLERANCE, {"btag": BITS}, ["n"])
