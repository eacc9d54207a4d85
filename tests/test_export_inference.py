"""The fast inference path of the exports: the feature-major spline is zuko's, and the runner's batches
change no value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from zuko.transforms import MonotonicRQSTransform

from tests.test_export_bundle import export_flow


def test_feature_major_spline_inverse_is_zukos_inside_and_outside_the_bound():
    from pipeline_steps.export.torch_export import spline_inverse
    from pipeline_steps.models.flow import SPLINE_BOUND
    from pipeline_steps.models.rqs_spline import MIN_SLOPE

    n_bins, generator = 8, torch.Generator().manual_seed(0)
    parameters = 2.0 * torch.randn(500, 3, 3 * n_bins - 1, generator=generator)   # [n, d, 3K-1]
    y = 4.0 * torch.randn(500, 3, generator=generator)                               # ~20% beyond +-5
    widths, heights, derivatives = parameters.split([n_bins, n_bins, n_bins - 1], dim=-1)
    expected = MonotonicRQSTransform(widths, heights, derivatives, bound=SPLINE_BOUND,
                                     slope=MIN_SLOPE).inv(y)
    found = spline_inverse(parameters.permute(1, 2, 0), y.T, n_bins).T
    outside = y.abs() > SPLINE_BOUND
    assert outside.any() and torch.equal(found[outside], y[outside])
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-5)


def test_the_flow_graph_takes_its_structure_before_tracing_so_torch_export_traces_it():
    """The couplings' masks and the permutations' orders are Python values taken before tracing (``inverse_steps``):
    read inside the graph (``mask.tolist()`` on a traced buffer), ``torch.export``, the exporter torch keeps after
    the TorchScript one it says it will remove, refused the flow as data-dependent. Its program of a categorised
    model, traced on 8 rows, runs 100 with the module's values: the same aten ops in the same order (equal to the
    last bit here); torch's float32 defaults (rtol 1.3e-6, atol 1e-5) allow a reordered sum, not a wrong step (a
    coupling applied to the wrong variables moves values by O(1))."""
    from pipeline_steps.export.torch_export import FlowInverse
    from pipeline_steps.models.flow import FlowHyperparameters, FlowPart, FlowSpec, build_flow

    torch.manual_seed(0)
    spec = FlowSpec(["category", "a", "b"], ["x", "y", "z"], FlowHyperparameters(n_bins=6, hidden_dim=16, n_blocks=1),
                    [FlowPart(0, 0.0, ["x", "y", "z"]), FlowPart(1, 1.0, ["x", "y"], fill={"z": 0.5})],
                    split_by="category")
    module = FlowInverse(build_flow(spec).eval())
    rows = torch.export.Dim("rows")
    with torch.no_grad():
        program = torch.export.export(module, (torch.zeros(8, 3), torch.zeros(8, 3)),
                                      dynamic_shapes=({0: rows}, {0: rows}))
        conditions, noise = torch.randn(100, 3), torch.randn(100, 3)
        conditions[:, 0] = (torch.rand(100) < 0.5).float()
        torch.testing.assert_close(program.module()(conditions, noise), module(conditions, noise))


def test_runner_batches_do_not_change_a_value(tmp_path):
    from pipeline_steps.export.run_bundle import Bundle

    bundle = Bundle(export_flow(tmp_path))
    rng = np.random.default_rng(3)
    n_conditions = bundle.session.get_inputs()[0].shape[1]
    feeds = {"conditions": rng.normal(size=(50, n_conditions)), "noise": rng.normal(size=(50, 3))}
    whole = bundle.run_onnx(feeds, batch_rows=1000)
    assert whole.shape == (50, 3)
    np.testing.assert_array_equal(bundle.run_onnx(feeds, batch_rows=16), whole)  # 4 calls of 12-13 rows


def test_runner_measures_a_large_inputs_call_size_without_changing_a_value(tmp_path):
    from pipeline_steps.export.run_bundle import CALL_ROWS_TRIED, MEASURE_FROM_ROWS, Bundle

    bundle = Bundle(export_flow(tmp_path))
    rng = np.random.default_rng(4)
    n_conditions = bundle.session.get_inputs()[0].shape[1]

    def feeds(n):
        return {"conditions": rng.normal(size=(n, n_conditions)), "noise": rng.normal(size=(n, 3))}

    bundle.run_onnx(feeds(MEASURE_FROM_ROWS - 1))  # too small to be worth measuring: the default size
    assert bundle.batch_rows is None and not bundle.rows_per_s_by_call
    large = feeds(MEASURE_FROM_ROWS + 1001)
    measured = bundle.run_onnx(large)
    assert bundle.batch_rows in CALL_ROWS_TRIED and set(bundle.rows_per_s_by_call) == set(CALL_ROWS_TRIED)
    np.testing.assert_array_equal(measured, bundle.run_onnx(large, batch_rows=1000))
    found = bundle.rows_per_s_by_call
    bundle.run_onnx(large)
    assert bundle.rows_per_s_by_call is found  # measured once a bundle, kept for its later inputs


def test_call_size_measurement_keeps_row_order_and_each_sizes_fastest_call():
    from pipeline_steps.export.run_bundle import CallSizeMeasurement

    seconds_per_row = {64: 3e-6, 128: 1e-6, 256: 2e-6}
    now, seen = [0.0], set()

    class Session:  # advances the clock by each call's cost; a size's first call pays 50x (allocations)
        def run(self, names, feeds):
            rows = len(feeds["x"])
            now[0] += rows * seconds_per_row[rows] * (1 if rows in seen else 50)
            seen.add(rows)
            return [feeds["x"][:, 0]]

    x = np.arange(2000.0)[:, None].repeat(2, axis=1)
    measurement = CallSizeMeasurement(sizes=(64, 128, 256), rounds=3, clock=lambda: now[0])
    outputs, done = measurement.run_some(Session(), {"x": x})
    rates = measurement.rates
    assert done == 3 * (64 + 128 + 256)
    np.testing.assert_array_equal(np.concatenate(outputs), np.arange(done))
    assert rates == pytest.approx({size: 1 / cost for size, cost in seconds_per_row.items()})
    assert max(rates, key=rates.get) == 128


def test_call_size_measurement_spans_short_inputs_and_never_leaves_a_call_under_eight_rows():
    """The runner's steps (9,614 CalRatio jets) are shorter than the 23,040 timed rows: the timed calls go on
    from one input to the next, and stop before one that would leave 1-7 rows (another kernel path)."""
    from pipeline_steps.export.run_bundle import MIN_CALL_ROWS, CallSizeMeasurement

    class Session:
        def run(self, names, feeds):
            return [feeds["x"][:, 0]]

    measurement = CallSizeMeasurement(sizes=(64, 128, 256), rounds=3, clock=iter(range(100)).__next__)
    assert measurement.run_some(Session(), {"x": np.zeros((195, 2))})[1] == 64  # 128 more would leave 3 rows
    assert measurement.planned[0] == 128 and set(measurement.rates) == {64}
    covered = []
    while measurement.planned and len(covered) < 10:  # inputs of 300 rows until every planned call has run
        covered.append(measurement.run_some(Session(), {"x": np.zeros((300, 2))})[1])
    assert covered == [128, 256, 256, 128 + 64 + 64, 128, 256]  # in the planned order, as many as fit
    assert 64 + sum(covered) == 3 * (64 + 128 + 256) and set(measurement.rates) == {64, 128, 256}
    assert all(300 - c == 0 or 300 - c >= MIN_CALL_ROWS for c in covered)


def test_runner_measures_the_call_size_over_short_inputs_without_changing_a_value(tmp_path):
    from pipeline_steps.export.run_bundle import CALL_ROWS_TRIED, Bundle

    bundle = Bundle(export_flow(tmp_path))
    rng = np.random.default_rng(5)
    n_conditions = bundle.session.get_inputs()[0].shape[1]
    bundle.measure_call_rows()  # as run_file does for a large file read in short steps
    for _ in range(6):  # 5000 rows each: the 23,040 timed rows take six of them
        feeds = {"conditions": rng.normal(size=(5000, n_conditions)), "noise": rng.normal(size=(5000, 3))}
        np.testing.assert_array_equal(bundle.run_onnx(feeds), bundle.run_onnx(feeds, batch_rows=1000))
    assert bundle.measurement is None and bundle.batch_rows in CALL_ROWS_TRIED
    assert set(bundle.rows_per_s_by_call) == set(CALL_ROWS_TRIED)
