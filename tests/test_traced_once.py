"""``common/traced_once.py``: one trace for inputs of any batch size, the eager numbers, and a clear
refusal of inputs whose other dimensions changed."""

import numpy as np
import pytest

from pipeline_steps.common.traced_once import traced_once

tf = pytest.importorskip("tensorflow")


def _counting(weights):
    traces = []

    def step(inputs, scale):
        traces.append(tuple(inputs["x"].shape))  # once per trace, and once per eager call
        return tf.matmul(inputs["x"], weights) * scale[:, None]

    return step, traces


def _rounding_bound(x, weights, scale):
    """What graph and eager kernels (a fused multiply, another summation order) may each err by on
    ``(x @ weights) * scale``, doubled: a 4-term float32 dot product errs by at most ~4 u sum|x_i w_i|
    (Higham's gamma_4), the product by ``scale`` one u of it more, u = 2^-24. The floor keeps the
    comparison strict where both results are exactly zero."""
    u = 2.0 ** -24
    terms = (np.abs(x.astype(np.float64)) @ np.abs(np.asarray(weights, np.float64))) * np.abs(scale)[:, None]
    return 2 * 5 * u * terms + 1e-30


def test_batches_of_two_sizes_run_one_graph_with_the_eager_numbers():
    rng = np.random.default_rng(3)
    weights = tf.constant(rng.normal(size=(4, 2)).astype(np.float32))
    step, traces = _counting(weights)
    traced = traced_once(step)
    for rows in (724, 723, 724, 5):  # np.array_split's two sizes, then a remainder
        inputs = {"x": rng.normal(size=(rows, 4)).astype(np.float32)}
        scale = rng.random(rows).astype(np.float32)
        difference = np.abs(traced(inputs, scale) - step(inputs, scale))
        np.testing.assert_array_less(difference, _rounding_bound(inputs["x"], weights, scale))
    assert traces[0] == (None, 4) and len(traces) == 1 + 4  # one trace, then the four eager reference calls


def test_a_changed_feature_dimension_is_refused_not_retraced():
    step, traces = _counting(tf.ones((4, 2)))
    traced = traced_once(step)
    traced({"x": np.ones((3, 4), np.float32)}, np.ones(3, np.float32))
    with pytest.raises((TypeError, ValueError)):
        traced({"x": np.ones((3, 5), np.float32)}, np.ones(3, np.float32))
    assert len(traces) == 1
