"""The fast inference path of the exports: the feature-major spline is zuko's, and the runner's batches
change no value."""

from __future__ import annotations

import numpy as np
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


def test_runner_batches_do_not_change_a_value(tmp_path):
    from pipeline_steps.export.run_bundle import Bundle

    bundle = Bundle(export_flow(tmp_path))
    rng = np.random.default_rng(3)
    n_conditions = bundle.session.get_inputs()[0].shape[1]
    feeds = {"conditions": rng.normal(size=(50, n_conditions)), "noise": rng.normal(size=(50, 3))}
    whole = bundle.run_onnx(feeds, batch_rows=1000)
    assert whole.shape == (50, 3)
    np.testing.assert_array_equal(bundle.run_onnx(feeds, batch_rows=16), whole)  # 4 calls of 12-13 rows
